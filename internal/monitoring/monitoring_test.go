package monitoring

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
	"github.com/mohd-dev/mohd/internal/roles"
)

func mustExporter(t *testing.T, job, host string, labels map[string]string) Target {
	t.Helper()
	tg, err := Exporter(job, host, labels)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// The jobs and ports are the role's: every file_sd job of its prometheus.yml, with the file this package writes,
// and the exporters' ports opened by the roles that run them.
func TestJobsAreTheRoles(t *testing.T) {
	r, err := roles.Get("monitoring")
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Files(roles.Params{ClusterCIDR: "10.20.0.0/24", Hardening: "baseline"})
	if err != nil {
		t.Fatal(err)
	}
	var cfg string
	for _, f := range files {
		if f.Path == "/etc/prometheus/prometheus.yml" {
			cfg = string(f.Content)
		}
	}
	if cfg == "" {
		t.Fatal("the monitoring role has no /etc/prometheus/prometheus.yml")
	}
	jobRE := regexp.MustCompile(`(?m)^  - job_name: (\S+)\n((?:    .*\n|\s*\n)*)`)
	fileRE := regexp.MustCompile(`files: \['([^']+)'\]`)
	got := map[string]string{}
	for _, m := range jobRE.FindAllStringSubmatch(cfg, -1) {
		if f := fileRE.FindStringSubmatch(m[2]); f != nil {
			got[m[1]] = f[1]
		}
	}
	if len(got) != len(Jobs()) {
		t.Errorf("the role's file_sd jobs are %v, this package's %v", got, Jobs())
	}
	for _, j := range Jobs() {
		if got[j] != JobFile(j) {
			t.Errorf("job %s: the role reads %q, this package writes %q", j, got[j], JobFile(j))
		}
	}
	// The node exporter (node, nfs) is common to every role: its 9100 is in the common firewall, not in Ports.
	for job, role := range map[string]string{JobHAProxy: "haproxy", JobApache: "web", JobMySQLd: "db", JobRedis: "redis"} {
		r, err := roles.Get(role)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := ExporterPort(job)
		if !slices.ContainsFunc(r.Ports, func(x roles.Port) bool { return x.Port == p && !x.Public }) {
			t.Errorf("job %s: role %s does not open port %d to the cluster network", job, role, p)
		}
	}
	if p, _ := ExporterPort(JobNode); p != 9100 || !strings.Contains(cfg, "Node exporter (9100)") {
		t.Errorf("node exporter port %d, or the role's prometheus.yml no longer says 9100", p)
	}
}

func TestTargetValidation(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{Target{Job: "php", Address: "10.0.0.1:9100"}, `unknown job "php"`},
		{Target{Job: "node", Address: "10.0.0.1"}, "is not host:port"},
		{Target{Job: "node", Address: "10.0.0.1:0"}, "is not a number in 1-65535"},
		{Target{Job: "node", Address: "10.0.0.1:09100"}, "is not a number"},
		{Target{Job: "node", Address: "bad_host:9100"}, "neither an IP address nor a host name"},
		{Target{Job: "node", Address: "10.0.0.1:9100", Labels: map[string]string{"job": "x"}}, `label "job" is set by MOHD`},
		{Target{Job: "node", Address: "10.0.0.1:9100", Labels: map[string]string{MemberLabel: "x"}}, "is set by MOHD"},
		{Target{Job: "node", Address: "10.0.0.1:9100", Labels: map[string]string{"__scheme__": "x"}}, "Prometheus' own"},
		{Target{Job: "node", Address: "10.0.0.1:9100", Labels: map[string]string{"1role": "x"}}, "label name"},
		{Target{Job: "node", Address: "10.0.0.1:9100", Labels: map[string]string{"role": ""}}, "is empty"},
		{Target{Job: "node", Address: "10.0.0.1:9100", Labels: map[string]string{"role": "\xff"}}, "UTF-8"},
	} {
		if _, err := tc.t.normalized(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.t, err, tc.want)
		}
	}
	for _, ok := range []Target{
		{Job: "node", Address: "[fd00::1]:9100"},
		{Job: "redis", Address: "redis1.example.org:9121", Labels: map[string]string{"instance": "redis1", "role": "redis"}},
	} {
		if _, err := ok.normalized(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	if _, err := normalizeTargets([]Target{{Job: "node", Address: "10.0.0.1:9100"}, {Job: "node", Address: "10.0.0.1:9100", Labels: map[string]string{"a": "b"}}}); err == nil ||
		!strings.Contains(err.Error(), "given twice") {
		t.Errorf("a target twice: %v", err)
	}
	for _, m := range []string{"", "/backend", "backend web1", strings.Repeat("a", 129), "ü"} {
		if validMember(m) == nil {
			t.Errorf("member %q accepted", m)
		}
	}
	if tg, err := Exporter(JobMySQLd, "fd00::2", nil); err != nil || tg.Address != "[fd00::2]:9104" {
		t.Errorf("Exporter(mysqld, fd00::2): %+v, %v", tg, err)
	}
	if _, err := Exporter("php", "10.0.0.1", nil); err == nil {
		t.Error("Exporter of an unknown job")
	}
}

func TestRenderJob(t *testing.T) {
	reg := registry{Version: 1, Members: map[string][]Target{
		"backend/web2": {{Job: "node", Address: "10.0.0.12:9100", Labels: map[string]string{"role": "web"}}},
		"backend/web1": {
			{Job: "apache", Address: "10.0.0.11:9117"},
			{Job: "node", Address: "10.0.0.11:9100", Labels: map[string]string{"role": "web", "note": "it's \"quoted\"\nü #1 <b>"}},
		},
	}}
	got := string(renderJob(reg, "node"))
	want := `# Managed by MOHD: Prometheus' targets of job node, rendered from /etc/prometheus/mohd-targets.json
# (each Terraform resource registers its own hosts' exporters there, as member mohd_member).
# Do not edit: a change by hand shows as drift and the next apply undoes it.
- targets: ["10.0.0.11:9100"]
  labels: {"mohd_member": "backend/web1", "note": "it's \"quoted\"\nü #1 <b>", "role": "web"}
- targets: ["10.0.0.12:9100"]
  labels: {"mohd_member": "backend/web2", "role": "web"}
`
	if got != want {
		t.Errorf("node.yml:\n%s\nwant:\n%s", got, want)
	}
	if got := string(renderJob(reg, "mysqld")); !strings.HasSuffix(got, "undoes it.\n[]\n") {
		t.Errorf("a job without targets:\n%s", got)
	}
	// Deterministic: the same registry renders the same bytes, whatever the order it was built in.
	for i := 0; i < 20; i++ {
		if string(renderJob(reg.clone(), "node")) != want || string(reg.clone().marshal()) != string(reg.marshal()) {
			t.Fatal("rendering is not deterministic")
		}
	}
}

// Two members with the same job and address make one scrape: the first member by name keeps it.
func TestRenderSharedTarget(t *testing.T) {
	reg := registry{Version: 1, Members: map[string][]Target{
		"cluster/site": {{Job: "node", Address: "10.0.0.5:9100", Labels: map[string]string{"role": "db"}}},
		"replica/db2":  {{Job: "node", Address: "10.0.0.5:9100", Labels: map[string]string{"role": "replica"}}},
	}}
	got := string(renderJob(reg, "node"))
	if strings.Count(got, "10.0.0.5:9100") != 1 || !strings.Contains(got, `"cluster/site"`) {
		t.Errorf("shared target:\n%s", got)
	}
	if o := reg.owner(Target{Job: "node", Address: "10.0.0.5:9100"}); o != "cluster/site" {
		t.Errorf("owner %q", o)
	}
	delete(reg.Members, "cluster/site")
	if got := string(renderJob(reg, "node")); !strings.Contains(got, `"replica/db2", "role": "replica"`) {
		t.Errorf("once the first member is gone the other's entry is scraped:\n%s", got)
	}
}

func TestRegisterAndUnregister(t *testing.T) {
	ctx := context.Background()
	m := newFakeMon(t)
	web1 := []Target{
		mustExporter(t, JobNode, "10.0.0.11", map[string]string{"role": "web"}),
		mustExporter(t, JobApache, "10.0.0.11", map[string]string{"role": "web"}),
	}
	changed, err := Register(ctx, m.f, "backend/web1", web1)
	if err != nil || !changed {
		t.Fatalf("first Register: changed %t, %v", changed, err)
	}
	// The registry and every job file, with their modes and owners.
	for _, p := range []string{RegistryFile, JobFile("node"), JobFile("apache"), JobFile("mysqld")} {
		f, ok := m.f.File(p)
		if !ok {
			t.Fatalf("%s was not written", p)
		}
		want := "644 root:root"
		if p == RegistryFile {
			want = "640 root:prometheus"
		}
		if got := remote.ModeOctal(f.Mode) + " " + f.Owner + ":" + f.Group; got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
	if got := m.content(JobFile("apache")); !strings.Contains(got, `- targets: ["10.0.0.11:9117"]`+"\n"+`  labels: {"mohd_member": "backend/web1", "role": "web"}`) {
		t.Errorf("apache.yml:\n%s", got)
	}
	if got := m.content(JobFile("redis")); !strings.HasSuffix(got, "\n[]\n") {
		t.Errorf("redis.yml without targets:\n%s", got)
	}
	if got := m.f.LocksTaken(); !slices.Equal(got, []string{LockName}) {
		t.Errorf("locks %v", got)
	}

	// Again: nothing to do, nothing uploaded.
	ups := len(m.f.Uploads())
	if changed, err := Register(ctx, m.f, "backend/web1", []Target{web1[1], web1[0]}); err != nil || changed {
		t.Fatalf("second Register: changed %t, %v", changed, err)
	}
	if n := len(m.f.Uploads()); n != ups {
		t.Errorf("the second Register uploaded %d files", n-ups)
	}

	// Another member; then web1's targets replaced: the other member stays.
	db := []Target{mustExporter(t, JobNode, "10.0.0.21", nil), mustExporter(t, JobMySQLd, "10.0.0.21", nil)}
	if changed, err := Register(ctx, m.f, "cluster/site", db); err != nil || !changed {
		t.Fatalf("Register cluster/site: %t, %v", changed, err)
	}
	ups = len(m.f.Uploads())
	web1b := []Target{mustExporter(t, JobNode, "10.0.0.11", map[string]string{"role": "web", "az": "b"})}
	if changed, err := Register(ctx, m.f, "backend/web1", web1b); err != nil || !changed {
		t.Fatalf("Register web1 again: %t, %v", changed, err)
	}
	// Only what changed: the registry, node.yml and apache.yml.
	var written []string
	for _, u := range m.f.Uploads()[ups:] {
		written = append(written, u.Path)
	}
	if want := []string{RegistryFile, JobFile("apache"), JobFile("node")}; !slices.Equal(written, want) {
		t.Errorf("uploaded %v, want %v", written, want)
	}
	node := m.content(JobFile("node"))
	if !strings.Contains(node, `"az": "b", "mohd_member": "backend/web1"`) || !strings.Contains(node, `"10.0.0.21:9100"`) {
		t.Errorf("node.yml:\n%s", node)
	}
	if got := m.content(JobFile("apache")); !strings.HasSuffix(got, "\n[]\n") {
		t.Errorf("apache.yml once web1 has no apache target:\n%s", got)
	}

	st, err := Inspect(ctx, m.f, "backend/web1", web1b)
	if err != nil {
		t.Fatal(err)
	}
	if !st.InSync || !st.Registered || !st.RegistryInSync || !st.FilesInSync || len(st.Diffs) != 0 {
		t.Errorf("converged: %+v", st)
	}

	if err := Unregister(ctx, m.f, "backend/web1"); err != nil {
		t.Fatal(err)
	}
	if node := m.content(JobFile("node")); strings.Contains(node, "10.0.0.11") || !strings.Contains(node, "10.0.0.21") {
		t.Errorf("node.yml after Unregister:\n%s", node)
	}
	if strings.Contains(m.content(RegistryFile), "backend/web1") {
		t.Error("the registry still has backend/web1")
	}
	ups, reads := len(m.f.Uploads()), m.stateReads
	if err := Unregister(ctx, m.f, "backend/web1"); err != nil {
		t.Fatal(err)
	}
	if len(m.f.Uploads()) != ups || m.stateReads != reads+1 {
		t.Errorf("Unregister of an absent member uploaded %d files", len(m.f.Uploads())-ups)
	}
	// Registering no targets is unregistering.
	if changed, err := Register(ctx, m.f, "cluster/site", nil); err != nil || !changed {
		t.Fatalf("Register(nil): %t, %v", changed, err)
	}
	if got := m.content(RegistryFile); got != "{\n  \"version\": 1,\n  \"members\": {}\n}\n" {
		t.Errorf("empty registry:\n%s", got)
	}
	st, err = Inspect(ctx, m.f, "cluster/site", nil)
	if err != nil || !st.InSync || st.Registered {
		t.Errorf("an unregistered member, wanting nothing: %+v, %v", st, err)
	}
}

// Concurrent Registers of different members (one lock on the host) all stay.
func TestRegisterConcurrent(t *testing.T) {
	ctx := context.Background()
	m := newFakeMon(t)
	m.delay = 2 * time.Millisecond
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			host := fmt.Sprintf("10.0.1.%d", i+1)
			_, err := Register(ctx, m.f, fmt.Sprintf("backend/web%d", i), []Target{
				mustExporter(t, JobNode, host, nil), mustExporter(t, JobApache, host, nil)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	reg, err := parseRegistry([]byte(m.content(RegistryFile)))
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.Members) != n {
		t.Errorf("registry has %d members, want %d (a lost update)", len(reg.Members), n)
	}
	if c := strings.Count(m.content(JobFile("apache")), "- targets:"); c != n {
		t.Errorf("apache.yml has %d targets, want %d", c, n)
	}
	if got := m.f.LocksTaken(); len(got) != n {
		t.Errorf("locks taken %v", got)
	}
}

// Register waits for the lock held by another writer (another process or connection), and gives up with ctx.
func TestRegisterWaitsForTheLock(t *testing.T) {
	m := newFakeMon(t)
	unlock, err := m.f.Lock(context.Background(), LockName)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Register(short, m.f, "cluster/site", nil); err == nil || !strings.Contains(err.Error(), "lock") {
		t.Errorf("Register with the lock held elsewhere: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Register(context.Background(), m.f, "cluster/site", []Target{mustExporter(t, JobRedis, "10.0.0.31", nil)})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if m.stateReads != 0 {
		t.Fatal("Register read the host while another held the lock")
	}
	_ = unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Register did not proceed once the lock was free")
	}
	if !strings.Contains(m.content(JobFile("redis")), "10.0.0.31:9121") {
		t.Error("redis.yml lacks the target")
	}
}

const promTargetsJSON = `{"status":"success","data":{"activeTargets":[
 {"discoveredLabels":{"__address__":"10.0.0.11:9100","job":"node","mohd_member":"backend/web1"},"labels":{"instance":"10.0.0.11:9100","job":"node","mohd_member":"backend/web1"},
  "scrapePool":"node","scrapeUrl":"http://10.0.0.11:9100/metrics","lastError":"","lastScrape":"2025-01-02T03:04:05.5Z","health":"up"},
 {"discoveredLabels":{"__address__":"10.0.0.11:9117","job":"apache"},"labels":{"instance":"10.0.0.11:9117","job":"apache"},
  "scrapePool":"apache","scrapeUrl":"http://10.0.0.11:9117/metrics","lastError":"Get \"http://10.0.0.11:9117/metrics\": context deadline exceeded","lastScrape":"2025-01-02T03:04:06Z","health":"down"},
 {"discoveredLabels":{"__address__":"10.0.0.11:9100","job":"nfs"},"labels":{"job":"nfs"},"scrapePool":"nfs","health":"up"}
]}}`

func TestInspect(t *testing.T) {
	ctx := context.Background()
	m := newFakeMon(t)
	web1 := []Target{mustExporter(t, JobNode, "10.0.0.11", nil), mustExporter(t, JobApache, "10.0.0.11", nil)}

	// Nothing registered yet: in sync with wanting nothing, not with wanting web1's targets.
	st, err := Inspect(ctx, m.f, "backend/web1", nil)
	if err != nil || !st.InSync {
		t.Fatalf("fresh host, nothing wanted: %+v, %v", st, err)
	}
	if st.PrometheusError == "" || len(st.Notes()) != 1 {
		t.Errorf("Prometheus not answering: %q %v", st.PrometheusError, st.Notes())
	}
	st, err = Inspect(ctx, m.f, "backend/web1", web1)
	if err != nil || st.InSync || st.RegistryInSync || len(st.Diffs) != 2 {
		t.Fatalf("fresh host, targets wanted: %+v, %v", st, err)
	}

	if _, err := Register(ctx, m.f, "backend/web1", web1); err != nil {
		t.Fatal(err)
	}
	m.promAnswer = promTargetsJSON
	st, err = Inspect(ctx, m.f, "backend/web1", web1)
	if err != nil || !st.InSync || !st.PrometheusActive || !st.AlertmanagerActive {
		t.Fatalf("registered: %+v, %v", st, err)
	}
	// A target that is down is reported, not drift.
	up, _ := st.Scrape(JobNode, "10.0.0.11:9100")
	down, _ := st.Scrape(JobApache, "10.0.0.11:9117")
	if !up.Discovered || up.Health != "up" || up.Member != "backend/web1" || up.LastScrape.IsZero() ||
		!down.Discovered || down.Health != "down" || !strings.Contains(down.LastError, "deadline") {
		t.Errorf("scrapes: %+v", st.Scrapes)
	}
	if notes := st.Notes(); len(notes) != 1 || !strings.Contains(notes[0], "apache 10.0.0.11:9117 is down") {
		t.Errorf("notes %v", notes)
	}

	// Wanting more or other targets is drift; so are a hand-edited file, a missing one, a changed mode, and
	// Prometheus stopped. Prometheus' view covers the wanted targets too.
	want := append(slices.Clone(web1), mustExporter(t, JobRedis, "10.0.0.11", nil))
	want[0].Labels = map[string]string{"role": "web"}
	m.handEdit(JobFile("node"), "- targets: ['10.9.9.9:9100']\n")
	f, _ := m.f.File(JobFile("haproxy"))
	f.Mode = 0o600
	m.f.SetFile(f)
	m.deletedAt[JobFile("nfs")] = m.uploadCount(JobFile("nfs"))
	m.active[prometheusUnit] = "failed"
	st, err = Inspect(ctx, m.f, "backend/web1", want)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{
		"member backend/web1: target node 10.0.0.11:9100 has labels {}, want {\"role\":\"web\"}",
		"member backend/web1: target redis 10.0.0.11:9121 is not registered",
		JobFile("node") + " differs from the registry's rendering (edited by hand?)",
		JobFile("haproxy") + " is mode 600 root:root, want 644 root:root",
		JobFile("nfs") + " is missing",
		"prometheus is failed, want active",
	} {
		if !slices.Contains(st.Diffs, d) {
			t.Errorf("diffs lack %q:\n%s", d, strings.Join(st.Diffs, "\n"))
		}
	}
	if len(st.Diffs) != 6 || st.InSync || st.FilesInSync || st.RegistryInSync || st.PrometheusActive {
		t.Errorf("drift: %+v", st)
	}
	if s, ok := st.Scrape(JobRedis, "10.0.0.11:9121"); !ok || s.Discovered || s.Member != "" {
		t.Errorf("a wanted target not registered: %+v", s)
	}
	if m.stateReads == 0 || len(m.f.Uploads()) != 7 {
		t.Errorf("Inspect wrote: %d uploads", len(m.f.Uploads()))
	}

	// Register repairs it all, and starts Prometheus.
	if changed, err := Register(ctx, m.f, "backend/web1", web1); err != nil || !changed {
		t.Fatalf("repair: %t, %v", changed, err)
	}
	if !slices.Equal(m.starts, []string{prometheusUnit}) {
		t.Errorf("started %v", m.starts)
	}
	st, err = Inspect(ctx, m.f, "backend/web1", web1)
	if err != nil || !st.InSync {
		t.Fatalf("after repair: %+v, %v", st, err)
	}

	// A target another member registered first is scraped as that member's.
	if _, err := Register(ctx, m.f, "backend/a", []Target{mustExporter(t, JobNode, "10.0.0.11", nil)}); err != nil {
		t.Fatal(err)
	}
	st, err = Inspect(ctx, m.f, "backend/web1", web1)
	if err != nil || !st.InSync {
		t.Fatalf("shared: %+v, %v", st, err)
	}
	if s, _ := st.Scrape(JobNode, "10.0.0.11:9100"); s.Member != "backend/a" ||
		!slices.ContainsFunc(st.Notes(), func(n string) bool { return strings.Contains(n, "as member backend/a's") }) {
		t.Errorf("shared target: %+v %v", s, st.Notes())
	}
}

func TestRegisterRefuses(t *testing.T) {
	ctx := context.Background()
	m := newFakeMon(t)
	m.targetsDir = false
	if _, err := Register(ctx, m.f, "cluster/site", nil); err == nil || !strings.Contains(err.Error(), "monitoring role image") {
		t.Errorf("not a monitoring host: %v", err)
	}
	m.targetsDir = true
	m.f.SetFile(remote.File{Path: RegistryFile, Content: []byte("{not json"), Mode: 0o640, Owner: "root", Group: "prometheus"})
	if _, err := Register(ctx, m.f, "cluster/site", nil); err == nil || !strings.Contains(err.Error(), "fix or remove it") {
		t.Errorf("broken registry: %v", err)
	}
	if _, err := Inspect(ctx, m.f, "cluster/site", nil); err == nil {
		t.Error("Inspect with a broken registry")
	}
	if len(m.f.Uploads()) != 0 {
		t.Error("something was written")
	}
	if _, err := Register(ctx, m.f, "cluster site", nil); err == nil {
		t.Error("invalid member")
	}
	if _, err := Register(ctx, m.f, "cluster/site", []Target{{Job: "node", Address: "x"}}); err == nil || !strings.Contains(err.Error(), "member cluster/site") {
		t.Errorf("invalid target: %v", err)
	}
}

func TestConfigureAlerting(t *testing.T) {
	ctx := context.Background()
	m := newFakeMon(t)
	const url1 = "https://chat.example.org/hooks/s3cr3tt0ken1"
	const url2 = "https://chat.example.org/hooks/s3cr3tt0ken2"

	if d, err := InspectAlerting(ctx, m.f, url1); err != nil || !slices.Equal(d, []string{MattermostURLFile + " is missing: Alertmanager's notifications fail"}) {
		t.Errorf("before: %q, %v", d, err)
	}
	if changed, err := ConfigureAlerting(ctx, m.f, url1); err != nil || !changed {
		t.Fatalf("ConfigureAlerting: %t, %v", changed, err)
	}
	f, _ := m.f.File(MattermostURLFile)
	if string(f.Content) != url1 || remote.ModeOctal(f.Mode) != "640" || f.Owner != "root" || f.Group != "prometheus" {
		t.Errorf("URL file: %+v", f)
	}
	if changed, err := ConfigureAlerting(ctx, m.f, url1); err != nil || changed {
		t.Fatalf("again: %t, %v", changed, err)
	}
	if d, err := InspectAlerting(ctx, m.f, url1); err != nil || len(d) != 0 {
		t.Errorf("in sync: %q, %v", d, err)
	}
	if d, _ := InspectAlerting(ctx, m.f, url2); !slices.Equal(d, []string{MattermostURLFile + " holds another webhook URL"}) {
		t.Errorf("another URL: %q", d)
	}
	f.Mode, f.Group = 0o644, "root"
	m.f.SetFile(f)
	m.active[alertmanagerUnit] = "inactive"
	d, _ := InspectAlerting(ctx, m.f, url1)
	if !slices.Equal(d, []string{MattermostURLFile + " is mode 644 root:root, want 640 root:prometheus", "prometheus-alertmanager is inactive, want active"}) {
		t.Errorf("mode and service: %q", d)
	}
	if changed, err := ConfigureAlerting(ctx, m.f, url2); err != nil || !changed {
		t.Fatalf("new URL: %t, %v", changed, err)
	}
	if f, _ := m.f.File(MattermostURLFile); string(f.Content) != url2 || f.Group != "prometheus" || !slices.Equal(m.starts, []string{alertmanagerUnit}) {
		t.Errorf("new URL: %+v, started %v", f, m.starts)
	}
	// Empty: the file goes.
	if changed, err := ConfigureAlerting(ctx, m.f, ""); err != nil || !changed {
		t.Fatalf("no URL: %t, %v", changed, err)
	}
	if d, err := InspectAlerting(ctx, m.f, ""); err != nil || len(d) != 0 {
		t.Errorf("no URL, in sync: %q, %v", d, err)
	}
	if d, _ := InspectAlerting(ctx, m.f, url1); len(d) != 1 || !strings.Contains(d[0], "is missing") {
		t.Errorf("removed: %q", d)
	}
	if changed, err := ConfigureAlerting(ctx, m.f, ""); err != nil || changed {
		t.Fatalf("no URL again: %t, %v", changed, err)
	}
	// The URL is a secret: never in a command, always in the Secrets of the commands run while it is set.
	for _, c := range m.f.Calls() {
		if strings.Contains(c.Command, "s3cr3t") || strings.Contains(c.Desc, "s3cr3t") {
			t.Errorf("the URL is in a command: %q", c.Command)
		}
	}
	if !slices.ContainsFunc(m.f.Calls(), func(c remote.Cmd) bool { return slices.Contains(c.Secrets, url1) }) {
		t.Error("no command lists the URL in Secrets")
	}
	for _, bad := range []string{"ftp://chat.example.org/hooks/s3cr3t", "https:///hooks/s3cr3t", "https://chat.example.org/hooks/s3cr3t\n", "s3cr3t"} {
		_, err := ConfigureAlerting(ctx, m.f, bad)
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("invalid URL %q: %v", bad, err)
		}
	}
}

// Register returns once Prometheus has read the job files; one it missed (written while it was starting) is
// nudged, and Inspect reports it meanwhile.
func TestRegisterMakesPrometheusRead(t *testing.T) {
	ctx := context.Background()
	m := newFakeMon(t)
	site := []Target{mustExporter(t, JobNode, "10.0.0.5", nil), mustExporter(t, JobRedis, "10.0.0.5", nil)}

	m.missEvents = true
	if changed, err := Register(ctx, m.f, "cluster/site", site); err != nil || !changed {
		t.Fatalf("Register while Prometheus misses events: %t, %v", changed, err)
	}
	if len(m.nudges) != len(Jobs()) {
		t.Errorf("nudged %v, want every job file", m.nudges)
	}
	if strings.Count(strings.Join(m.f.Commands(), "\n"), "sec sd-files") < 2 {
		t.Error("Register did not check what Prometheus read")
	}
	m.missEvents = false

	// A file Prometheus has not read as it is: drift, and Register repairs it without writing anything.
	m.mu.Lock()
	delete(m.promRead, JobFile("redis"))
	m.mu.Unlock()
	st, err := Inspect(ctx, m.f, "cluster/site", site)
	if err != nil {
		t.Fatal(err)
	}
	if st.InSync || st.PrometheusRead || !st.FilesInSync ||
		!slices.Equal(st.Diffs, []string{"Prometheus has not read " + JobFile("redis") + " since it changed (it re-reads it within 5 minutes)"}) {
		t.Errorf("unread file: %+v", st)
	}
	ups, nudges := len(m.f.Uploads()), len(m.nudges)
	if changed, err := Register(ctx, m.f, "cluster/site", site); err != nil || !changed {
		t.Fatalf("repair: %t, %v", changed, err)
	}
	if len(m.f.Uploads()) != ups || !slices.Equal(m.nudges[nudges:], []string{JobFile("redis")}) {
		t.Errorf("repair uploaded %d files, nudged %v", len(m.f.Uploads())-ups, m.nudges[nudges:])
	}
	if st, err := Inspect(ctx, m.f, "cluster/site", site); err != nil || !st.InSync || !st.PrometheusRead {
		t.Errorf("after repair: %+v, %v", st, err)
	}

	// A Prometheus that is not ready (a long start) reads the files when it is: no error, no nudge.
	m.promReady = false
	nudges = len(m.nudges)
	if _, err := Register(ctx, m.f, "backend/web1", []Target{mustExporter(t, JobApache, "10.0.0.11", nil)}); err != nil || len(m.nudges) != nudges {
		t.Errorf("Prometheus not ready: %v, nudged %v", err, m.nudges[nudges:])
	}
	m.promReady = true

	// One that runs but never reads a file does not run the role's configuration.
	m.promNever[JobFile("mysqld")] = true
	_, err = Register(ctx, m.f, "replica/db2", []Target{mustExporter(t, JobMySQLd, "10.0.0.22", nil)})
	if err == nil || !strings.Contains(err.Error(), "has not read "+JobFile("mysqld")) || !strings.Contains(err.Error(), "prometheus.yml") {
		t.Errorf("a file Prometheus never reads: %v", err)
	}
}
