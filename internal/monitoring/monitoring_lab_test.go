package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/monitoring"
	"github.com/mohd-dev/mohd/internal/remote"
)

// labNote is a label value with what YAML and JSON quote: it must reach Prometheus unchanged.
const labNote = "it's \"quoted\": #1 <b> ü\\"

func exporter(t *testing.T, job, host string, labels map[string]string) monitoring.Target {
	t.Helper()
	tg, err := monitoring.Exporter(job, host, labels)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// waitScrapes polls Inspect until every target of member has health want in Prometheus' view.
func waitScrapes(ctx context.Context, t *testing.T, h remote.Host, member string, targets []monitoring.Target, want string, within time.Duration) monitoring.State {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := monitoring.Inspect(ctx, h, member, targets)
		if err != nil {
			t.Fatal(err)
		}
		done := st.PrometheusError == "" && len(st.Scrapes) == len(targets)
		for _, s := range st.Scrapes {
			done = done && s.Discovered && s.Health == want
		}
		if done {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %s: not every target %s after %s:\n%s%s", member, want, within, st.Report(), st.PrometheusError)
		}
		time.Sleep(2 * time.Second)
	}
}

// hook is the test's Mattermost: it records the path of every webhook request and the alert names it carries.
type hook struct {
	mu   sync.Mutex
	seen map[string][]string // path: bodies
}

func (k *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	k.mu.Lock()
	k.seen[r.URL.Path] = append(k.seen[r.URL.Path], string(b))
	k.mu.Unlock()
	_, _ = io.WriteString(w, "ok") // what Mattermost and Slack answer
}

func (k *hook) waitFor(t *testing.T, path, alert string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		k.mu.Lock()
		bodies := slices.Clone(k.seen[path])
		k.mu.Unlock()
		if slices.ContainsFunc(bodies, func(b string) bool { return strings.Contains(b, alert) }) {
			return
		}
		time.Sleep(time.Second)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	t.Fatalf("no notification of %s on %s within %s; received: %v", alert, path, within, k.seen)
}

func TestLabMonitoring(t *testing.T) {
	l := labtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	imgs, err := lab.EnsureRoleImages(ctx, lab.RoleImageOptions{Roles: []string{"monitoring", "redis"}, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	hosts := labtest.Start(t, l, lab.RoleHostSpec("mon1", imgs[0]), lab.RoleHostSpec("redis1", imgs[1]))
	mon, rds := hosts[0], hosts[1]
	rh := labtest.Remote(t, mon)
	rh2 := labtest.Remote(t, mon) // another pool: another SSH connection, as another resource's

	// The cluster registers the redis host's node and Redis exporters.
	site := []monitoring.Target{
		exporter(t, monitoring.JobNode, rds.Addr, map[string]string{"role": "redis", "note": labNote}),
		exporter(t, monitoring.JobRedis, rds.Addr, map[string]string{"role": "redis"}),
	}
	start := time.Now()
	changed, err := monitoring.Register(ctx, rh, "cluster/site", site)
	if err != nil || !changed {
		t.Fatalf("first Register: changed %t, %v", changed, err)
	}
	t.Logf("first Register: %s", time.Since(start).Round(10*time.Millisecond))
	// Register returns once Prometheus has read the files (even one written while it was starting).
	if st, err := monitoring.Inspect(ctx, rh, "cluster/site", site); err != nil || !st.InSync || !st.PrometheusRead {
		t.Fatalf("right after Register: %+v, %v", st, err)
	}
	start = time.Now()
	if changed, err := monitoring.Register(ctx, rh, "cluster/site", site); err != nil || changed {
		t.Fatalf("second Register: changed %t, %v", changed, err)
	}
	t.Logf("second Register (nothing to do): %s", time.Since(start).Round(10*time.Millisecond))
	if got := labtest.Exec(t, mon, "cd /etc/prometheus && stat -c '%a %U:%G %n' mohd-targets.json targets/node.yml targets/mysqld.yml"); got !=
		"640 root:prometheus mohd-targets.json\n644 root:root targets/node.yml\n644 root:root targets/mysqld.yml" {
		t.Errorf("modes and owners:\n%s", got)
	}

	start = time.Now()
	st := waitScrapes(ctx, t, rh, "cluster/site", site, "up", 2*time.Minute)
	t.Logf("Prometheus scrapes both targets up %s after Register:\n%s", time.Since(start).Round(time.Second), st.Report())
	if !st.InSync || len(st.Diffs) != 0 || !st.PrometheusActive || !st.AlertmanagerActive {
		t.Errorf("converged: %+v", st)
	}
	// The labels reach Prometheus as given (the job files' quoting), with the member; the empty job files parse.
	var labels map[string]string
	raw := labtest.Exec(t, mon, `curl -fsS 'http://127.0.0.1:9090/api/v1/targets?state=active' |
		jq -c '.data.activeTargets[] | select(.scrapePool == "node" and .discoveredLabels.__address__ == "`+site[0].Address+`") | .labels'`)
	if err := json.Unmarshal([]byte(raw), &labels); err != nil || labels["note"] != labNote || labels["mohd_member"] != "cluster/site" || labels["role"] != "redis" {
		t.Errorf("the node target's labels in Prometheus: %s (%v)", raw, err)
	}
	// Read from Prometheus' own /metrics, not through a query: its self-scrape may not have happened yet.
	if got := labtest.Exec(t, mon, `curl -fsS http://127.0.0.1:9090/metrics | awk '/^prometheus_sd_file_read_errors_total/ {n++; s += $2} END {print n ? s : "absent"}'`); strings.TrimSpace(got) != "0" {
		t.Errorf("Prometheus failed to read job files: prometheus_sd_file_read_errors_total = %s", got)
	}

	// Other resources register at the same time, over two connections; every member stays.
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for _, c := range []struct {
		h      remote.Host
		prefix string
		job    string
	}{{rh, "backend/web", monitoring.JobApache}, {rh2, "replica/db", monitoring.JobMySQLd}} {
		// Exporters that do not run there: Prometheus' scrapes of them fail.
		var ts []monitoring.Target
		for i := 1; i <= 3; i++ {
			ts = append(ts, monitoring.Target{Job: c.job, Address: net.JoinHostPort(rds.Addr, fmt.Sprint(19100+i)), Labels: map[string]string{"n": fmt.Sprint(i)}})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, tg := range ts {
				_, err := monitoring.Register(ctx, c.h, fmt.Sprintf("%s%d", c.prefix, i+1), []monitoring.Target{tg})
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var reg struct {
		Members map[string][]monitoring.Target `json:"members"`
	}
	if err := json.Unmarshal([]byte(labtest.Exec(t, mon, "cat "+monitoring.RegistryFile)), &reg); err != nil {
		t.Fatal(err)
	}
	if len(reg.Members) != 7 {
		t.Fatalf("registry after concurrent Registers has %d members, want 7: %v", len(reg.Members), reg.Members)
	}
	for _, job := range []string{"apache", "mysqld"} {
		if n := strings.Count(labtest.Exec(t, mon, "cat "+monitoring.JobFile(job)), "- targets:"); n != 3 {
			t.Errorf("%s.yml has %d targets, want 3", job, n)
		}
	}
	// A target that is down is reported with its error, and is no drift.
	web1 := []monitoring.Target{{Job: monitoring.JobApache, Address: net.JoinHostPort(rds.Addr, "19101"), Labels: map[string]string{"n": "1"}}}
	st = waitScrapes(ctx, t, rh2, "backend/web1", web1, "down", 90*time.Second)
	if !st.InSync || st.Scrapes[0].LastError == "" {
		t.Errorf("a down target: %+v", st)
	}
	t.Logf("backend/web1: %s", st.Report())

	// Unregister: gone; again: nothing on the host changes.
	for _, m := range []string{"replica/db1", "replica/db2", "replica/db3", "backend/web2", "backend/web3"} {
		if err := monitoring.Unregister(ctx, rh, m); err != nil {
			t.Fatal(err)
		}
	}
	if got := labtest.Exec(t, mon, "cat "+monitoring.JobFile("mysqld")); !strings.HasSuffix(got, "\n[]") {
		t.Errorf("mysqld.yml once every replica is gone:\n%s", got)
	}
	stamp := "stat -c '%i %Y %n' /etc/prometheus/mohd-targets.json /etc/prometheus/targets/*.yml"
	before := labtest.Exec(t, mon, stamp)
	if err := monitoring.Unregister(ctx, rh2, "replica/db2"); err != nil {
		t.Fatal(err)
	}
	if changed, err := monitoring.Register(ctx, rh2, "cluster/site", site); err != nil || changed {
		t.Fatalf("Register unchanged: %t, %v", changed, err)
	}
	if after := labtest.Exec(t, mon, stamp); after != before {
		t.Errorf("files touched by a no-op:\n%s\n%s", before, after)
	}

	// A job file edited by hand is drift; Register puts it back.
	labtest.Exec(t, mon, "sed -i 's/:9121/:9122/' "+monitoring.JobFile("redis"))
	st, err = monitoring.Inspect(ctx, rh, "cluster/site", site)
	if err != nil {
		t.Fatal(err)
	}
	if st.InSync || st.FilesInSync || !slices.Contains(st.Diffs, monitoring.JobFile("redis")+" differs from the registry's rendering (edited by hand?)") {
		t.Errorf("hand-edited redis.yml: %+v", st)
	}
	if changed, err := monitoring.Register(ctx, rh, "cluster/site", site); err != nil || !changed {
		t.Fatalf("repair: %t, %v", changed, err)
	}
	// Prometheus stopped: drift, and Register starts it.
	labtest.Exec(t, mon, "systemctl stop prometheus")
	if st, err = monitoring.Inspect(ctx, rh, "cluster/site", site); err != nil || st.InSync || st.PrometheusActive || st.PrometheusError == "" {
		t.Errorf("Prometheus stopped: %+v, %v", st, err)
	}
	if changed, err := monitoring.Register(ctx, rh2, "cluster/site", site); err != nil || !changed {
		t.Fatalf("Register with Prometheus stopped: %t, %v", changed, err)
	}
	st = waitScrapes(ctx, t, rh, "cluster/site", site, "up", 2*time.Minute)
	if !st.InSync {
		t.Errorf("after repair: %+v", st)
	}

	// Alerting: the test plays Mattermost, on this machine's address on the lab's network.
	gw := strings.TrimSpace(labtest.Exec(t, mon, "ip route show default | awk '{print $3; exit}'"))
	ln, err := net.Listen("tcp", net.JoinHostPort(gw, "0"))
	if err != nil {
		t.Fatalf("listening on the lab's gateway %s: %v", gw, err)
	}
	k := &hook{seen: map[string][]string{}}
	srv := &http.Server{Handler: k, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + ln.Addr().String() + "/hooks/"
	url1, url2 := base+"s3cr3t-one", base+"s3cr3t-two"

	if changed, err := monitoring.ConfigureAlerting(ctx, rh, url1); err != nil || !changed {
		t.Fatalf("ConfigureAlerting: %t, %v", changed, err)
	}
	if changed, err := monitoring.ConfigureAlerting(ctx, rh, url1); err != nil || changed {
		t.Fatalf("ConfigureAlerting again: %t, %v", changed, err)
	}
	if got := labtest.Exec(t, mon, "stat -c '%a %U:%G' "+monitoring.MattermostURLFile+"; cat "+monitoring.MattermostURLFile); got != "640 root:prometheus\n"+url1 {
		t.Errorf("URL file:\n%q", got)
	}
	if d, err := monitoring.InspectAlerting(ctx, rh, url1); err != nil || len(d) != 0 {
		t.Errorf("InspectAlerting: %q, %v", d, err)
	}
	amState := "systemctl show -p MainPID --value prometheus-alertmanager; curl -fsS http://127.0.0.1:9093/metrics | grep '^alertmanager_config_last_reload_success_timestamp_seconds '"
	amBefore := labtest.Exec(t, mon, amState)
	fire := func(name string) {
		labtest.Exec(t, mon, `curl -fsS -XPOST -H 'Content-Type: application/json' http://127.0.0.1:9093/api/v2/alerts -d '[{"labels":{"alertname":"`+name+`","severity":"warning","instance":"lab"},"annotations":{"summary":"lab probe"}}]'`)
	}
	// group_wait is 30 s.
	start = time.Now()
	fire("MohdLabProbeOne")
	k.waitFor(t, "/hooks/s3cr3t-one", "MohdLabProbeOne", 2*time.Minute)
	t.Logf("first notification after %s", time.Since(start).Round(time.Second))

	// Another URL is used from the next notification on, with no reload.
	if changed, err := monitoring.ConfigureAlerting(ctx, rh2, url2); err != nil || !changed {
		t.Fatalf("ConfigureAlerting, new URL: %t, %v", changed, err)
	}
	if d, _ := monitoring.InspectAlerting(ctx, rh, url1); !slices.Equal(d, []string{monitoring.MattermostURLFile + " holds another webhook URL"}) {
		t.Errorf("InspectAlerting of the old URL: %q", d)
	}
	fire("MohdLabProbeTwo")
	k.waitFor(t, "/hooks/s3cr3t-two", "MohdLabProbeTwo", 2*time.Minute)
	if after := labtest.Exec(t, mon, amState); after != amBefore {
		t.Errorf("Alertmanager was restarted or reloaded:\n%s\n%s", amBefore, after)
	}
	if out, err := mon.Exec(ctx, "systemctl is-active prometheus-alertmanager && if command -v amtool >/dev/null; then amtool check-config /etc/prometheus/alertmanager.yml; else echo 'no amtool'; fi"); err != nil {
		t.Errorf("Alertmanager after ConfigureAlerting: %v\n%s", err, out)
	} else {
		t.Logf("amtool: %s", strings.TrimSpace(out))
	}
	// The URL is in no process' command line or environment on the host.
	if got := labtest.Exec(t, mon, "ps -eo args; cat /proc/$(systemctl show -p MainPID --value prometheus-alertmanager)/environ | tr '\\0' '\\n'"); strings.Contains(got, "s3cr3t") {
		t.Errorf("the webhook URL shows in a command line or the environment:\n%s", got)
	}

	// No URL: the file goes, Alertmanager keeps running.
	if changed, err := monitoring.ConfigureAlerting(ctx, rh, ""); err != nil || !changed {
		t.Fatalf("ConfigureAlerting(\"\"): %t, %v", changed, err)
	}
	if got := labtest.Exec(t, mon, "test -e "+monitoring.MattermostURLFile+" && echo present; systemctl is-active prometheus-alertmanager"); strings.TrimSpace(got) != "active" {
		t.Errorf("without a URL: %q", got)
	}
	if d, err := monitoring.InspectAlerting(ctx, rh, ""); err != nil || len(d) != 0 {
		t.Errorf("InspectAlerting(\"\"): %q, %v", d, err)
	}
	if changed, err := monitoring.ConfigureAlerting(ctx, rh, ""); err != nil || changed {
		t.Errorf("ConfigureAlerting(\"\") again: %t, %v", changed, err)
	}
}
