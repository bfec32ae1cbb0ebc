package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
)

// BenchOptions tune the load runs.
type BenchOptions struct {
	// Duration of each wrk run (default 15s), Threads and Connections its -t and -c (default 2 and 16).
	// Each run follows a warm-up run of Warmup (default 3s, not measured): PHP workers started, OPcache filled.
	// Runs is how many times each target and page is measured, the targets in turn (default 2); the best
	// run is kept, the one least disturbed by whatever else the machine runs.
	Duration    time.Duration
	Warmup      time.Duration
	Runs        int
	Threads     int
	Connections int
}

func (b *BenchOptions) defaults() {
	if b.Duration == 0 {
		b.Duration = 15 * time.Second
	}
	if b.Warmup == 0 {
		b.Warmup = 3 * time.Second
	}
	if b.Runs == 0 {
		b.Runs = 2
	}
	if b.Threads == 0 {
		b.Threads = 2
	}
	if b.Connections == 0 {
		b.Connections = 16
	}
	if b.Connections%b.Threads != 0 {
		b.Connections += b.Threads - b.Connections%b.Threads
	}
}

// Load is one wrk run's result.
type Load struct {
	Target   string // "cluster" or "naive"
	Page     string // "login" or "dashboard"
	Path     string
	Requests int
	RPS      float64
	P50, P99 time.Duration
	// Errors are socket errors plus responses other than 200 (a dashboard request that lost its session is
	// a 303 to the login page, which wrk alone would count as a success).
	Errors int
	// AllRPS are the requests/s of every run; the others fields are the best run's.
	AllRPS []float64
}

// BenchResult is one bench run.
type BenchResult struct {
	Date     time.Time
	Commit   string
	NProc    int
	MemTotal string
	Command  string
	Fixture  bool
	Code     string
	Options  BenchOptions
	// HostsStart is how long the lab took to start the demo's hosts; Create the first terraform apply on
	// them (everything installed and configured from scratch); EmptyPlan a plan of the applied site; AddBackend
	// the apply that adds a third web node, RemoveBackend the one that drains and removes it again.
	HostsStart, Create, EmptyPlan, AddBackend, RemoveBackend time.Duration
	// CreateSteps and AddSteps are each resource's part of the create and of the apply adding web3.
	CreateSteps, AddSteps []Step
	Loads                 []Load
	// LoadBefore is the machine's 1-minute load average when the bench started: work of others that
	// competes with the hosts for the CPUs.
	LoadBefore string
	// NaiveSessions says where the naive host keeps sessions.
	NaiveSessions string
}

// Bench measures the demo cluster from one run. A create can only be measured from scratch on fresh hosts
// (deleting moodle_cluster leaves the hosts configured), so a running demo is removed first and brought up
// again; the demo is left running afterwards, as `make demo` leaves it. Then: an empty plan; adding a third
// web node (and removing it again); and requests/s and latency with wrk, run from a lab host of its own, on
// the login page and on the dashboard of a logged-in user, through HAProxy at the VIP and on one naive host
// of the same web image at the CPU quota of one web node (Apache prefork + mod_php, file sessions).
func Bench(ctx context.Context, opts Options, bo BenchOptions) (*BenchResult, error) {
	if err := opts.resolve(); err != nil {
		return nil, err
	}
	if opts.Provider == "" {
		return nil, errors.New("demo: no provider binary given (make build writes bin/terraform-provider-moodle)")
	}
	bo.defaults()
	unlock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	o := &opts
	res := &BenchResult{Date: time.Now().UTC(), NProc: runtime.NumCPU(), MemTotal: memTotal(), Options: bo,
		Commit: commit(ctx, o.Root), Command: "make bench", LoadBefore: loadAverage()}
	if o.MoodleSource != "" {
		res.Command = "MOODLE_SOURCE=" + o.MoodleSource + " make bench"
	}

	if st, err := readState(o.statePath()); err == nil {
		o.say("bench: a create is measured on fresh hosts: removing the running demo (lab %s) first", st.LabID)
		if err := removeLab(ctx, o, st); err != nil {
			return nil, err
		}
		if err := os.Remove(o.statePath()); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	site, err := up(ctx, o)
	if err != nil {
		return nil, err
	}
	res.Fixture, res.Code = site.Fixture, site.Code
	res.HostsStart, res.Create, res.CreateSteps = site.HostsStart, site.Apply, applySteps(site.applyOut)

	o.say("bench: terraform plan of the applied site")
	empty, took, err := site.tf.plan(ctx, filepath.Join(o.Dir, "bench.tfplan"))
	if err != nil {
		return nil, err
	}
	res.EmptyPlan = took
	if !empty {
		return nil, errors.New("bench: terraform plan right after apply is not empty: the provider reports drift on a site it just applied")
	}

	if err := benchBackend(ctx, site, res); err != nil {
		return nil, err
	}

	b := &bencher{site: site, opts: bo}
	defer b.cleanup()
	if err := b.startClient(ctx); err != nil {
		return nil, err
	}
	naiveURL, err := b.startNaive(ctx)
	if err != nil {
		return nil, err
	}
	res.NaiveSessions = b.naiveSessions
	targets := []struct{ name, url string }{{"cluster", site.State.URL()}, {"naive", naiveURL}}
	sessions := map[string][]string{}
	for _, t := range targets {
		o.say("bench: logging %d sessions in on %s", bo.Connections, t.url)
		for range bo.Connections {
			c, err := Login(ctx, t.url, "admin", site.secrets.Admin)
			if err != nil {
				return nil, err
			}
			sessions[t.name] = append(sessions[t.name], c)
		}
	}
	for _, page := range []struct{ name, path string }{{"login", "/login/index.php"}, {"dashboard", "/my/index.php"}} {
		best := map[string]*Load{}
		for run := 1; run <= bo.Runs; run++ {
			for _, t := range targets {
				var cookies []string
				if page.name == "dashboard" {
					cookies = sessions[t.name]
				}
				l, err := b.load(ctx, t.name, t.url, page.name, page.path, cookies, run)
				if err != nil {
					return nil, err
				}
				if prev := best[t.name]; prev == nil || l.RPS > prev.RPS {
					if prev != nil {
						l.AllRPS = prev.AllRPS
					}
					best[t.name] = &l
				}
				best[t.name].AllRPS = append(best[t.name].AllRPS, l.RPS)
			}
		}
		for _, t := range targets {
			res.Loads = append(res.Loads, *best[t.name])
		}
	}
	return res, nil
}

// benchBackend times adding a third web node (a host started for it, then `terraform apply`) and removing
// it again (drained, then taken out of the front ends), and removes its host.
func benchBackend(ctx context.Context, site *Site, res *BenchResult) error {
	o, st := &site.opts, site.State
	web1, _ := st.Host("web1")
	o.say("bench: starting a third web node web3")
	hosts, err := site.Lab.Start(ctx, hostSpec("web3", lab.RoleImage{Role: "web", Ref: web1.Image}, st.Volume))
	if err != nil {
		return err
	}
	h := hosts[0]
	st.Hosts = append(st.Hosts, HostState{Name: h.Name, Role: "web", Image: web1.Image, Addr: h.Addr, Port: h.Port,
		Container: h.Container, HostKey: h.HostKey})
	if err := writeState(o.statePath(), st); err != nil {
		return err
	}
	three := DefaultLayout()
	three.Backends = append(three.Backends, "web3")
	if err := site.writeTFVars(three); err != nil {
		return err
	}
	o.say("bench: terraform apply adding web3 to the backends")
	start := time.Now()
	_, out, err := site.tf.apply(ctx)
	if err != nil {
		return err
	}
	res.AddBackend, res.AddSteps = time.Since(start), applySteps(out)
	if err := site.writeTFVars(DefaultLayout()); err != nil {
		return err
	}
	o.say("bench: terraform apply removing web3 again (drained first)")
	start = time.Now()
	if _, _, err := site.tf.apply(ctx); err != nil {
		return err
	}
	res.RemoveBackend = time.Since(start)
	if _, err := docker(ctx, "rm", "-f", "-v", h.Container); err != nil {
		return err
	}
	st.Hosts = st.Hosts[:len(st.Hosts)-1]
	if err := writeState(o.statePath(), st); err != nil {
		return err
	}
	return site.writeTFVars(DefaultLayout())
}

// bencher holds the bench's extra hosts: the load generator and the naive single host.
type bencher struct {
	site          *Site
	opts          BenchOptions
	client, naive *lab.Host
	naiveSessions string
}

func (b *bencher) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, h := range []*lab.Host{b.client, b.naive} {
		if h != nil {
			_, _ = docker(ctx, "rm", "-f", "-v", h.Container)
		}
	}
}

// startClient starts the load generator: a host of the base image with Debian's wrk, so the bench needs
// nothing installed on the machine it runs on.
func (b *bencher) startClient(ctx context.Context) error {
	o := &b.site.opts
	o.say("bench: starting the load generator (base image + Debian's wrk)")
	hosts, err := b.site.Lab.Start(ctx, lab.HostSpec{Name: "wrk", Memory: "512m"})
	if err != nil {
		return err
	}
	b.client = hosts[0]
	// netbase: wrk resolves the "http" service through /etc/services, which the minimal base image lacks.
	_, err = execRoot(ctx, b.client.Container, aptInstall("wrk", "netbase")+" && wrk --version 2>&1 | head -1")
	return err
}

func aptInstall(pkgs ...string) string {
	return "export DEBIAN_FRONTEND=noninteractive; apt-get -o DPkg::Lock::Timeout=300 update -qq && " +
		"apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends " + strings.Join(pkgs, " ") + " >/dev/null"
}

// naiveSetup turns a host of the web image into the usual single Moodle server: Apache with the prefork MPM
// and mod_php instead of the event MPM and PHP-FPM, Debian's PHP settings, one plain virtual host, PHP's file
// sessions.
const naiveSetup = `set -e
a2dismod -q mpm_event proxy_fcgi >/dev/null
a2enmod -q mpm_prefork >/dev/null
%s
a2enmod -q php8.2 >/dev/null
a2disconf -q php8.2-fpm >/dev/null 2>&1 || true
cat > /etc/apache2/sites-available/naive.conf <<'EOF'
<VirtualHost *:80>
	DocumentRoot /var/www/moodle/current
	<Directory /var/www/moodle>
		Options FollowSymLinks
		AllowOverride None
		Require all granted
	</Directory>
	DirectoryIndex index.php index.html
	AcceptPathInfo On
</VirtualHost>
EOF
for s in /etc/apache2/sites-enabled/*.conf; do a2dissite -q "$(basename "$s" .conf)" >/dev/null; done
a2ensite -q naive >/dev/null
printf '[PHP]\nsession.save_handler = files\n' > /etc/php/8.2/apache2/conf.d/99-naive.ini
systemctl disable -q --now php8.2-fpm mohd-php-fpm-metrics.timer 2>/dev/null || true
systemctl restart apache2
apache2ctl -M 2>/dev/null | grep -E 'mpm_|php'
`

// startNaive starts the naive single host at one web node's CPU quota and memory, with the deployed Moodle
// release and site configuration copied from web1 (its own wwwroot; file sessions where the code supports
// them) and the shared moodledata, and returns its URL.
func (b *bencher) startNaive(ctx context.Context) (string, error) {
	o, st := &b.site.opts, b.site.State
	web1, _ := st.Host("web1")
	o.say("bench: starting the naive single host (web image, --cpus %s --memory %s, prefork + mod_php)", WebCPUs, WebMemory)
	hosts, err := b.site.Lab.Start(ctx, hostSpec("naive", lab.RoleImage{Role: "web", Ref: web1.Image}, st.Volume))
	if err != nil {
		return "", err
	}
	b.naive = hosts[0]
	out, err := execRoot(ctx, b.naive.Container, fmt.Sprintf(naiveSetup, aptInstall("libapache2-mod-php8.2")))
	if err != nil {
		return "", err
	}
	o.say("bench: naive host's Apache modules: %s", strings.Join(strings.Fields(out), " "))
	if err := copyTree(ctx, web1.Container, b.naive.Container, "var/www/moodle", "etc/moodle"); err != nil {
		return "", err
	}
	naiveURL := "http://" + b.naive.Addr
	// config.php: this host's own wwwroot (Moodle redirects any other host name to wwwroot); sessions in
	// files unless the fixture is deployed (it keeps sessions in Redis only).
	sed := fmt.Sprintf("s|^\\$CFG->wwwroot = .*|$CFG->wwwroot = '%s';|\n", naiveURL)
	b.naiveSessions = "Redis (MOHD's fixture supports no other session handler)"
	if !b.site.Fixture {
		sed += "/^\\$CFG->session_redis_/d\ns|^\\$CFG->session_handler_class = .*|$CFG->session_handler_class = '\\\\core\\\\session\\\\file';|\n"
		b.naiveSessions = "files (moodledata/sessions)"
	}
	if _, err := dockerIn(ctx, strings.NewReader(sed), "exec", "-i", b.naive.Container, "sed", "-i", "-f", "/dev/stdin", "/etc/moodle/config.php"); err != nil {
		return "", err
	}
	if _, err := execRoot(ctx, b.naive.Container, "systemctl restart apache2"); err != nil {
		return "", err
	}
	if err := CheckLoginPage(ctx, naiveURL+"/"); err != nil {
		return "", fmt.Errorf("naive host: %w", err)
	}
	return naiveURL + "/", nil
}

// load runs wrk on base+path from the load generator (a warm-up run first), with the given session cookies.
func (b *bencher) load(ctx context.Context, target, base, page, path string, cookies []string, run int) (Load, error) {
	o := &b.site.opts
	script := wrkScript(path, cookies, b.opts.Threads)
	if _, err := dockerIn(ctx, strings.NewReader(script), "exec", "-i", b.client.Container, "sh", "-c", "cat > /root/bench.lua"); err != nil {
		return Load{}, err
	}
	u := strings.TrimSuffix(base, "/") + path
	wrk := func(d time.Duration) (string, error) {
		return execRoot(ctx, b.client.Container, fmt.Sprintf("wrk -t%d -c%d -d%ds --timeout 10s --latency -s /root/bench.lua %s",
			b.opts.Threads, b.opts.Connections, int(d.Seconds()), u))
	}
	if _, err := wrk(b.opts.Warmup); err != nil {
		return Load{}, err
	}
	o.say("bench: run %d/%d: wrk -t%d -c%d -d%s --latency %s", run, b.opts.Runs, b.opts.Threads, b.opts.Connections, b.opts.Duration, u)
	out, err := wrk(b.opts.Duration)
	if err != nil {
		return Load{}, err
	}
	l, err := parseWrk(out)
	if err != nil {
		return Load{}, fmt.Errorf("%w:\n%s", err, out)
	}
	l.Target, l.Page, l.Path = target, page, path
	o.say("bench: %s %s: %.1f requests/s, p50 %s, p99 %s, %d errors", target, page, l.RPS, l.P50, l.P99, l.Errors)
	return l, nil
}

// wrkScript is wrk's Lua script: every request of a thread goes to path with the next of that thread's own
// session cookies (so two requests of one session seldom wait for each other on Moodle's session lock), and
// every response other than 200 is counted.
func wrkScript(path string, cookies []string, threads int) string {
	var b strings.Builder
	b.WriteString("local path = " + luaString(path) + "\nlocal cookies = {\n")
	for _, c := range cookies {
		b.WriteString("  " + luaString(c) + ",\n")
	}
	fmt.Fprintf(&b, "}\nlocal nthreads = %d\n", threads)
	b.WriteString(`local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  bad = 0
  i = 0
  per = math.floor(#cookies / nthreads)
end
function request()
  if per == 0 then
    return wrk.format("GET", path)
  end
  i = i + 1
  return wrk.format("GET", path, { ["Cookie"] = cookies[id * per + (i % per) + 1] })
end
function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("bad")
  end
  io.write(string.format("non-200 responses: %d\n", total))
end
`)
	return b.String()
}

func luaString(s string) string { return strconv.Quote(s) }

var (
	wrkRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon200   = regexp.MustCompile(`(?m)^non-200 responses: (\d+)`)
)

// parseWrk reads requests/s, the p50 and p99 latencies and the errors from wrk --latency's output (with
// wrkScript's line of non-200 responses).
func parseWrk(out string) (Load, error) {
	var l Load
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return l, errors.New("wrk printed no Requests/sec")
	}
	l.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkRequests.FindStringSubmatch(out); m != nil {
		l.Requests, _ = strconv.Atoi(m[1])
	}
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		d, err := time.ParseDuration(m[2] + m[3])
		if err != nil {
			return l, err
		}
		if m[1] == "50" {
			l.P50 = d
		} else {
			l.P99 = d
		}
	}
	if l.P50 == 0 || l.P99 == 0 {
		return l, errors.New("wrk printed no latency distribution")
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, n := range m[1:] {
			v, _ := strconv.Atoi(n)
			l.Errors += v
		}
	}
	m = wrkNon200.FindStringSubmatch(out)
	if m == nil {
		return l, errors.New("the bench script printed no count of non-200 responses")
	}
	v, _ := strconv.Atoi(m[1])
	l.Errors += v
	return l, nil
}

var loginToken = regexp.MustCompile(`name="logintoken" value="([^"]+)"`)

// Login logs user in on the Moodle at base through its login form (with its login token, following
// Moodle's redirects) and returns the session's Cookie header; it checks that the dashboard then answers 200.
func Login(ctx context.Context, base, user, password string) (string, error) {
	base = strings.TrimSuffix(base, "/")
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", err
	}
	client := &http.Client{Timeout: 20 * time.Second, Jar: jar}
	get := func(c *http.Client, u string) (status string, body string, err error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return "", "", err
		}
		resp, err := c.Do(req)
		if err != nil {
			return "", "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.Status, string(b), err
	}
	_, body, err := get(client, base+"/login/index.php")
	if err != nil {
		return "", err
	}
	m := loginToken.FindStringSubmatch(body)
	if m == nil {
		return "", fmt.Errorf("no login token on %s/login/index.php", base)
	}
	form := url.Values{"username": {user}, "password": {password}, "logintoken": {m[1]}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/login/index.php", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	noFollow := &http.Client{Timeout: 20 * time.Second, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	status, _, err := get(noFollow, base+"/my/index.php")
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(status, "200 ") {
		return "", fmt.Errorf("logging in as %s on %s: the dashboard answers %s (the login failed)", user, base, status)
	}
	u, _ := url.Parse(base + "/")
	var parts []string
	for _, c := range jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; "), nil
}

// loadAverage is the machine's 1-minute load average.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	var kb int64
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
}

// commit is the checkout's commit, "-dirty" when it has uncommitted changes.
func commit(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "-dirty"
	}
	return c
}
