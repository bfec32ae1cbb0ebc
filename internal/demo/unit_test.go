package demo

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func testState() *State {
	return &State{
		LabID: "mohd-demo-0a1b2c3d", Network: "mohd-demo-0a1b2c3d", Subnet: "172.30.7.0/24", User: "debian",
		KeyFile: "/work/.demo/id_ed25519", Volume: "mohd-demo-0a1b2c3d-moodledata", VIP: "172.30.7.200/24",
		Hosts: []HostState{
			{Name: "web1", Role: "web", Addr: "172.30.7.12", Port: 22, HostKey: "ssh-ed25519 AAAAweb1"},
			{Name: "lb1", Role: "haproxy", Addr: "172.30.7.10", Port: 22, HostKey: "ssh-ed25519 AAAAlb1"},
			{Name: "mon1", Role: "monitoring", Addr: "172.30.7.18", Port: 22, HostKey: "ssh-ed25519 AAAAmon1"},
		},
	}
}

func TestRenderTFVars(t *testing.T) {
	sec := Secrets{Admin: "adm-1", Database: "db-2", Replication: "repl-3", Redis: "red-4"}
	got := renderTFVars(testState(), DefaultLayout(), "/src/moodle ${x}", sec)
	for _, want := range []string{
		`ssh_private_key_file = "/work/.demo/id_ed25519"`,
		`cluster_cidr         = "172.30.7.0/24"`,
		`vip                  = "172.30.7.200/24"`,
		`code_path            = "/src/moodle $${x}"`, // a template sequence stays literal
		`  lb1  = { address = "172.30.7.10", host_key = "ssh-ed25519 AAAAlb1" }`,
		`  mon1 = { address = "172.30.7.18", host_key = "ssh-ed25519 AAAAmon1" }`,
		`  web1 = { address = "172.30.7.12", host_key = "ssh-ed25519 AAAAweb1" }`,
		`monitoring = "mon1"`,
		`backends   = ["web1", "web2"]`,
		`db_hosts   = ["db1", "db2"]`,
		`db_primary = "db1"`,
		`admin_password       = "adm-1"`,
		`redis_password       = "red-4"`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("tfvars lack %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "lb1 ") > strings.Index(got, "web1 ") {
		t.Errorf("hosts are not in name order:\n%s", got)
	}
	if again := renderTFVars(testState(), DefaultLayout(), "/src/moodle ${x}", sec); again != got {
		t.Error("the same demo renders different tfvars")
	}
}

func TestHCLString(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:      `"plain"`,
		`a"b\c`:      `"a\"b\\c"`,
		"l1\nl2":     `"l1\nl2"`,
		`${v} %{if}`: `"$${v} %%{if}"`,
	} {
		if got := hclString(in); got != want {
			t.Errorf("hclString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		p, err := password()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 24 || !regexp.MustCompile(`^[A-Za-z0-9]{20}-a7Z$`).MatchString(p) {
			t.Fatalf("password %q: want 20 letters or digits then -a7Z", p)
		}
		if seen[p] {
			t.Fatalf("password %q generated twice", p)
		}
		seen[p] = true
	}
}

func TestLoadSecretsKeepsThem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", "secrets.json")
	a, err := loadSecrets(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := loadSecrets(path)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a.Admin == a.Database {
		t.Errorf("secrets not kept or not distinct: %+v then %+v", a, b)
	}
}

func TestVIPOf(t *testing.T) {
	_, n, _ := net.ParseCIDR("172.30.42.0/24")
	if got := vipOf(n); got != "172.30.42.200/24" {
		t.Errorf("vipOf = %s", got)
	}
	st := &State{VIP: "172.30.42.200/24"}
	if st.URL() != "http://172.30.42.200/" {
		t.Errorf("URL = %s", st.URL())
	}
}

func TestApplyChanged(t *testing.T) {
	for out, want := range map[string]bool{
		"Apply complete! Resources: 0 added, 0 changed, 0 destroyed.\n": false,
		"Apply complete! Resources: 5 added, 0 changed, 0 destroyed.\n": true,
		"Apply complete! Resources: 0 added, 1 changed, 0 destroyed.\n": true,
	} {
		got, err := applyChanged(out)
		if err != nil || got != want {
			t.Errorf("applyChanged(%q) = %v, %v", out, got, err)
		}
	}
	if _, err := applyChanged("Error: boom"); err == nil {
		t.Error("an output without summary must be an error")
	}
}

const wrkOutput = `Running 15s test @ http://172.30.7.200/my/index.php
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    41.83ms   20.27ms 208.15ms   71.10%
    Req/Sec   193.51     38.92   290.00     70.33%
  Latency Distribution
     50%   38.90ms
     75%   51.35ms
     90%   67.21ms
     99%  110.42ms
  5787 requests in 15.03s, 8.43MB read
  Socket errors: connect 0, read 0, write 0, timeout 2
Requests/sec:    385.13
Transfer/sec:    574.39KB
non-200 responses: 3
`

func TestParseWrk(t *testing.T) {
	l, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	if l.RPS != 385.13 || l.Requests != 5787 || l.P50 != 38900*time.Microsecond || l.P99 != 110420*time.Microsecond || l.Errors != 5 {
		t.Errorf("parsed %+v", l)
	}
	if _, err := parseWrk(strings.Replace(wrkOutput, "non-200 responses: 3\n", "", 1)); err == nil {
		t.Error("a run without the script's count must be refused")
	}
	if _, err := parseWrk("unable to connect to 172.30.7.200:80 Connection refused"); err == nil {
		t.Error("a failed run must be refused")
	}
	us := strings.Replace(strings.Replace(wrkOutput, "38.90ms", "912.00us", 1), "110.42ms", "1.20s", 1)
	if l, err := parseWrk(us); err != nil || l.P50 != 912*time.Microsecond || l.P99 != 1200*time.Millisecond {
		t.Errorf("units: %+v, %v", l, err)
	}
}

func TestWrkScript(t *testing.T) {
	s := wrkScript("/my/index.php", []string{"MoodleSession=a", `MoodleSession=b"c`}, 2)
	for _, want := range []string{`local path = "/my/index.php"`, `"MoodleSession=a",`, `"MoodleSession=b\"c",`,
		"local nthreads = 2", `cookies[id * per + (i % per) + 1]`, `if status ~= 200 then`, `non-200 responses: %d`} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
}

func TestBenchDefaults(t *testing.T) {
	b := BenchOptions{Threads: 3, Connections: 16}
	b.defaults()
	if b.Connections != 18 || b.Duration != 15*time.Second {
		t.Errorf("defaults: %+v (connections must be a multiple of threads: each thread has its own sessions)", b)
	}
}

func TestGuide(t *testing.T) {
	r := &BenchResult{
		Date: time.Date(2025, 11, 27, 6, 0, 0, 0, time.UTC), Commit: "4453282abcde-dirty", NProc: 2, MemTotal: "23 GiB",
		Command: "make bench", Fixture: true, Options: BenchOptions{Duration: 15 * time.Second, Warmup: 5 * time.Second, Runs: 2, Threads: 2, Connections: 16},
		HostsStart: 41 * time.Second, Create: 3*time.Minute + 5*time.Second, EmptyPlan: 6500 * time.Millisecond,
		AddBackend: 52 * time.Second, RemoveBackend: 35 * time.Second, NaiveSessions: "Redis (fixture)", LoadBefore: "0.42",
		CreateSteps: []Step{{"module.moodle.moodle_cluster.this", "18s"}, {`module.moodle.moodle_backend.this["web1"]`, "9s"}},
		Loads: []Load{
			{Target: "cluster", Page: "login", Path: "/login/index.php", RPS: 300, P50: 40 * time.Millisecond, P99: 90 * time.Millisecond},
			{Target: "naive", Page: "login", Path: "/login/index.php", RPS: 120, P50: 100 * time.Millisecond, P99: 300 * time.Millisecond},
			{Target: "cluster", Page: "dashboard", Path: "/my/index.php", RPS: 250, P50: 50 * time.Millisecond, P99: 120 * time.Millisecond, Errors: 1, AllRPS: []float64{250, 231.5}},
			{Target: "naive", Page: "dashboard", Path: "/my/index.php", RPS: 100, P50: 150 * time.Millisecond, P99: 400 * time.Millisecond},
		},
	}
	g, err := r.Guide()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"page_title: \"Benchmark",
		"Measured 2025-11-27 06:00 UTC on 2 CPUs, 23 GiB RAM (load average 0.42 when the bench started), commit `4453282abcde-dirty`, with `make bench`",
		"| empty `terraform plan` of the applied site | 6.5 s | |",
		"| login | **ratio MOHD / naive** | **2.50×** | 0.40× | 0.30× | | |",
		"| dashboard `/my/index.php` | MOHD: VIP → HAProxy → 2 web nodes (event + PHP-FPM, Redis sessions) | 250.0 | 50.0 ms | 120.0 ms | 1 | 250.0, 231.5 |",
		"| full create: first `terraform apply` on fresh hosts | 3 min 05 s | moodle_cluster 18s, moodle_backend web1 9s |",
		"load average 0.42 when the bench started",
		"measured 2 times, the targets in turn",
		"-t2 -c16 -d15s --latency` after an unmeasured warm-up run of 5 s",
		"--cpus 1 --memory 1536m",
		"Moodle-shaped test fixture, not Moodle",
	} {
		if !strings.Contains(g, want) {
			t.Errorf("guide lacks %q:\n%s", want, g)
		}
	}
	if strings.Contains(g, "{{") {
		t.Error("the guide must hold no template action for tfplugindocs")
	}
}

func TestResourceChanges(t *testing.T) {
	js := `{"format_version":"1.2","resource_changes":[
{"address":"module.moodle.moodle_cluster.this","change":{"actions":["no-op"]}},
{"address":"module.moodle.moodle_backend.this[\"web3\"]","change":{"actions":["create"]}},
{"address":"module.moodle.moodle_backend.this[\"web1\"]","change":{"actions":["delete","create"]}}],
"output_changes":{"replicas":{"actions":["update"]}}}`
	got, err := resourceChanges([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	want := `module.moodle.moodle_backend.this["web3"] (create), module.moodle.moodle_backend.this["web1"] (delete+create)`
	if strings.Join(got, ", ") != want {
		t.Errorf("changes %q, want %q (output changes do not count)", got, want)
	}
	if got, err := resourceChanges([]byte(`{"format_version":"1.2"}`)); err != nil || len(got) != 0 {
		t.Errorf("an empty plan: %v, %v", got, err)
	}
}

func TestApplySteps(t *testing.T) {
	out := `module.moodle.moodle_cluster.this: Creation complete after 18s [id=demo]
module.moodle.moodle_backend.this["web3"]: Creation complete after 6s [id=demo/web3]
module.moodle.moodle_backend.this["web1"]: Modifications complete after 4s [id=demo/web1]
module.moodle.moodle_backend.this["web3"]: Destruction complete after 1s
module.moodle.moodle_backend.this["web2"]: Still creating... [10s elapsed]
`
	got := applySteps(out)
	want := []Step{{"module.moodle.moodle_cluster.this", "18s"}, {`module.moodle.moodle_backend.this["web3"]`, "6s"},
		{`module.moodle.moodle_backend.this["web1"]`, "4s"}, {`module.moodle.moodle_backend.this["web3"]`, "1s"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	if f := fmtSteps(got[:2]); f != "moodle_cluster 18s, moodle_backend web3 6s" {
		t.Errorf("fmtSteps = %q", f)
	}
}

func TestScrapeReport(t *testing.T) {
	// The report, not the wait: this Prometheus has no target for some of the site's jobs, for good.
	defer func(w time.Duration) { scrapeWait = w }(scrapeWait)
	scrapeWait = 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/targets" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"status":"success","data":{"activeTargets":[
{"labels":{"job":"node","instance":"172.30.7.10:9100"},"health":"up"},
{"labels":{"job":"node","instance":"172.30.7.12:9100"},"health":"down","lastError":"connection refused"},
{"labels":{"job":"haproxy","instance":"172.30.7.10:8405"},"health":"up"},
{"labels":{"job":"prometheus","instance":"localhost:9090"},"health":"up"}]}}`))
	}))
	defer srv.Close()
	got, err := scrapeReport(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	want := "scrapes haproxy 1/1 up, node 1/2 up, prometheus 1/1 up; no targets registered for apache, mysqld, redis, nfs\n" +
		"DOWN: node 172.30.7.12:9100 (down: connection refused)"
	if got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
}
