package haproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/remote"
)

// labSite is the lab of TestLabFrontEnds: two front ends of the haproxy role image and three web servers of
// the web role image (Apache + PHP-FPM; the real /mohd-health answers 200 while no database is configured).
type labSite struct {
	lab      *lab.Lab
	lb1, lb2 *lab.Host
	webs     []*lab.Host
	rh1, rh2 remote.Host
}

func TestLabFrontEnds(t *testing.T) {
	l := labtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	imgs, err := lab.EnsureRoleImages(ctx, lab.RoleImageOptions{Roles: []string{"haproxy", "web"}, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	hap, web := imgs[0], imgs[1]
	hosts := labtest.Start(t, l, lab.RoleHostSpec("lb1", hap), lab.RoleHostSpec("lb2", hap),
		lab.RoleHostSpec("web1", web), lab.RoleHostSpec("web2", web), lab.RoleHostSpec("web3", web))
	s := &labSite{lab: l, lb1: hosts[0], lb2: hosts[1], webs: hosts[2:]}
	s.rh1, s.rh2 = slowLog{labtest.Remote(t, s.lb1), t}, slowLog{labtest.Remote(t, s.lb2), t}
	for _, w := range s.webs {
		// The test's pages in the placeholder release: the server's name, and a slow answer.
		labtest.Exec(t, w, fmt.Sprintf(`cd /var/www/moodle/releases/placeholder &&
printf '%%s\n' '<?php echo "%[1]s\n";' > index.php &&
printf '%%s\n' '<?php sleep((int) ($_GET["s"] ?? 5)); echo "%[1]s slow\n";' > slow.php`, w.Name))
	}
	for _, w := range s.webs {
		waitFor(t, 60*time.Second, w.Name+"'s /mohd-health answers 200", func() (bool, string) {
			code, body, err := httpGet(http.DefaultClient, "http://"+w.Addr+"/mohd-health")
			return err == nil && code == 200, fmt.Sprintf("%d %q %v", code, body, err)
		})
	}
	steps := []struct {
		name string
		fn   func(*testing.T, *labSite)
	}{
		{"two servers", labTwoServers},
		{"concurrent registration", labConcurrent},
		{"hitless changes under load", labHitless},
		{"remove waits for a slow request", labSlowRemove},
		{"drift and repair", labDrift},
		{"check states across reloads", labCheckStates},
		{"tls", labTLS},
		{"virtual address", labVIP},
	}
	for _, st := range steps {
		start := time.Now()
		if !t.Run(st.name, func(t *testing.T) { st.fn(t, s) }) {
			t.Fatalf("step %q failed: the next steps build on it", st.name)
		}
		t.Logf("step %q: %s", st.name, time.Since(start).Round(100*time.Millisecond))
	}
}

// slowLog logs the commands that take more than a second and a half.
type slowLog struct {
	remote.Host
	t *testing.T
}

func (h slowLog) Run(ctx context.Context, c remote.Cmd) (remote.Result, error) {
	start := time.Now()
	r, err := h.Host.Run(ctx, c)
	if d := time.Since(start); d > 1500*time.Millisecond {
		h.t.Logf("slow command on %s: %q took %s (%v)", h.Name(), c.Step(), d.Round(time.Millisecond), err)
	}
	return r, err
}

func (s *labSite) server(i, weight int) Server {
	return Server{Name: s.webs[i].Name, Address: s.webs[i].Addr, Port: 80, Weight: weight}
}

func labCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustApply(t *testing.T, what string, wantChanged bool, fn func() (bool, error)) {
	t.Helper()
	changed, err := fn()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if changed != wantChanged {
		t.Fatalf("%s: changed = %v, want %v", what, changed, wantChanged)
	}
}

func mustInSync(t *testing.T, h remote.Host) State {
	t.Helper()
	st, err := Inspect(labCtx(t), h)
	if err != nil {
		t.Fatal(err)
	}
	if !st.InSync {
		t.Fatalf("%s is not in sync: %q\n%+v", h.Name(), st.Diffs, st.Servers)
	}
	return st
}

func labTwoServers(t *testing.T, s *labSite) {
	ctx := labCtx(t)
	mustApply(t, "first ConfigureSite", true, func() (bool, error) { return ConfigureSite(ctx, s.rh1, Site{}) })
	mustApply(t, "second ConfigureSite", false, func() (bool, error) { return ConfigureSite(ctx, s.rh1, Site{}) })
	if code, _, err := httpGet(http.DefaultClient, "http://"+s.lb1.Addr+"/"); err != nil || code != 503 {
		t.Fatalf("no server yet: want 503, got %d %v", code, err)
	}
	for i := range 2 {
		mustApply(t, "PutServer "+s.webs[i].Name, true, func() (bool, error) { return PutServer(ctx, s.rh1, s.server(i, 100)) })
	}
	mustApply(t, "PutServer web2 again", false, func() (bool, error) { return PutServer(ctx, s.rh1, s.server(1, 100)) })
	st := mustInSync(t, s.rh1)
	if len(st.Servers) != 2 || st.Servers[0].Admin != "ready" || st.Servers[0].Weight != 100 {
		t.Fatalf("servers: %+v", st.Servers)
	}
	if got := labtest.Exec(t, s.lb1, "stat -c '%a %U' "+RegistryFile+" "+SiteFile); got != "600 root\n640 root" {
		t.Fatalf("registry and site file modes: %q", got)
	}
	// New connections each: leastconn spreads them over both servers.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	seen := map[string]int{}
	for range 20 {
		code, body, err := httpGet(client, "http://"+s.lb1.Addr+"/")
		if err != nil || code != 200 {
			t.Fatalf("through HAProxy: %d %q %v", code, body, err)
		}
		seen[strings.TrimSpace(body)]++
	}
	if seen["web1"] == 0 || seen["web2"] == 0 || len(seen) != 2 {
		t.Fatalf("20 requests reached %v, want web1 and web2", seen)
	}
	t.Logf("20 requests: %v", seen)
	waitServers(t, s.rh1, map[string]string{"web1": "L7OK", "web2": "L7OK"})

	// An IPv6 server (in maintenance: there is no such host), as HAProxy reads it.
	v6 := Server{Name: "v6", Address: "fd00::1", Weight: 1, State: StateMaintenance}
	mustApply(t, "PutServer v6", true, func() (bool, error) { return PutServer(ctx, s.rh1, v6) })
	if ss, _ := mustInSync(t, s.rh1).Server("v6"); ss.Address != "fd00::1" || ss.Port != 80 || ss.Admin != "maintenance" {
		t.Fatalf("IPv6 server: %+v", ss)
	}
	if err := RemoveServer(ctx, s.rh1, "v6", time.Minute, nil); err != nil {
		t.Fatal(err)
	}
}

// waitServers waits until the named servers' last health check has the given status.
func waitServers(t *testing.T, h remote.Host, want map[string]string) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("health checks %v", want), func() (bool, string) {
		st, err := Inspect(labCtx(t), h)
		if err != nil {
			return false, err.Error()
		}
		got := map[string]string{}
		for _, ss := range st.Servers {
			got[ss.Name] = ss.CheckStatus + " " + ss.Status
		}
		for n, c := range want {
			if ss, ok := st.Server(n); !ok || ss.CheckStatus != c {
				return false, fmt.Sprint(got)
			}
		}
		return true, ""
	})
}

func labConcurrent(t *testing.T, s *labSite) {
	// Five "backends", each with its own SSH connection, register at once, then leave at once.
	const n = 5
	hosts := make([]remote.Host, n)
	for i := range hosts {
		hosts[i] = labtest.Remote(t, s.lb1)
	}
	run := func(what string, fn func(i int) error) {
		errs := make(chan error, n)
		for i := range n {
			go func() { errs <- fn(i) }()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	start := time.Now()
	run("PutServer", func(i int) error {
		_, err := PutServer(labCtx(t), hosts[i], Server{Name: fmt.Sprintf("c%d", i), Address: s.webs[i%3].Addr, Port: 80, Weight: 10})
		return err
	})
	t.Logf("%d concurrent PutServer: %s", n, time.Since(start).Round(100*time.Millisecond))
	st := mustInSync(t, s.rh1)
	var names []string
	for _, ss := range st.Servers {
		names = append(names, ss.Name)
	}
	if want := []string{"c0", "c1", "c2", "c3", "c4", "web1", "web2"}; !slices.Equal(names, want) {
		t.Fatalf("after %d concurrent PutServer the site has %v, want %v", n, names, want)
	}
	start = time.Now()
	run("RemoveServer", func(i int) error {
		return RemoveServer(labCtx(t), hosts[i], fmt.Sprintf("c%d", i), 30*time.Second, nil)
	})
	t.Logf("%d concurrent RemoveServer: %s", n, time.Since(start).Round(100*time.Millisecond))
	st = mustInSync(t, s.rh1)
	if len(st.Servers) != 2 {
		t.Fatalf("after the removals: %+v", st.Servers)
	}
	// Removing what is not there does nothing.
	if err := RemoveServer(labCtx(t), s.rh1, "c0", time.Second, nil); err != nil {
		t.Fatal(err)
	}
}

// loadResult counts the answers of a request loop.
type loadResult struct {
	ok, failed int64
	errs       []string
	servers    map[string]int64
}

// startLoad sends GET url in a loop over two clients until stop is called: one keeps its connections
// alive, the other opens a new connection for each request.
func startLoad(url string) (stop func() loadResult) {
	var (
		mu      sync.Mutex
		res     = loadResult{servers: map[string]int64{}}
		done    = make(chan struct{})
		wg      sync.WaitGroup
		okCount atomic.Int64
	)
	clients := []*http.Client{
		{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
		{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(5 * time.Minute) // bounded, whatever happens to the test
			for time.Now().Before(deadline) {
				select {
				case <-done:
					return
				default:
				}
				code, body, err := httpGet(c, url)
				mu.Lock()
				if err == nil && code == 200 {
					res.ok++
					res.servers[strings.TrimSpace(body)]++
					okCount.Add(1)
				} else {
					res.failed++
					if len(res.errs) < 20 {
						res.errs = append(res.errs, fmt.Sprintf("%s: %d %q %v", time.Now().Format("15:04:05.000"), code, body, err))
					}
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return func() loadResult {
		close(done)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return res
	}
}

func labHitless(t *testing.T, s *labSite) {
	ctx := labCtx(t)
	stop := startLoad("http://" + s.lb1.Addr + "/")
	pause := func() { time.Sleep(1500 * time.Millisecond) }
	pause()
	var timings []string
	step := func(what string, fn func() error) {
		start := time.Now()
		if err := fn(); err != nil {
			stop()
			t.Fatalf("%s: %v", what, err)
		}
		timings = append(timings, fmt.Sprintf("%s %s", what, time.Since(start).Round(10*time.Millisecond)))
		pause()
	}
	put := func(sv Server) func() error { return func() error { _, err := PutServer(ctx, s.rh1, sv); return err } }
	step("add web3", put(s.server(2, 100)))
	step("web1 weight 50", put(s.server(0, 50)))
	drained := s.server(1, 100)
	drained.State = StateDrain
	step("drain web2", put(drained))
	step("remove web2", func() error { return RemoveServer(ctx, s.rh1, "web2", 30*time.Second, func(m string) { t.Log(m) }) })
	res := stop()
	t.Logf("%d requests during %v: %d failed, answered by %v", res.ok+res.failed, timings, res.failed, res.servers)
	if res.failed != 0 {
		t.Fatalf("%d requests failed during the changes:\n%s", res.failed, strings.Join(res.errs, "\n"))
	}
	if res.ok < 200 || res.servers["web3"] == 0 {
		t.Fatalf("the load proves nothing: %d requests, answered by %v (web3 must have been used)", res.ok, res.servers)
	}
	st := mustInSync(t, s.rh1)
	if _, ok := st.Server("web2"); ok {
		t.Fatalf("web2 is still there: %+v", st.Servers)
	}
	if ss, _ := st.Server("web1"); ss.Weight != 50 {
		t.Fatalf("web1: %+v", ss)
	}
	// The site as before, for the next steps.
	mustApply(t, "web1 weight 100", true, func() (bool, error) { return PutServer(ctx, s.rh1, s.server(0, 100)) })
	mustApply(t, "web2 back", true, func() (bool, error) { return PutServer(ctx, s.rh1, s.server(1, 100)) })
}

func labSlowRemove(t *testing.T, s *labSite) {
	ctx := labCtx(t)
	// Only web3 takes new requests.
	for i := range 2 {
		sv := s.server(i, 100)
		sv.State = StateDrain
		mustApply(t, "drain "+sv.Name, true, func() (bool, error) { return PutServer(ctx, s.rh1, sv) })
	}
	waitServers(t, s.rh1, map[string]string{"web3": "L7OK"})
	type answer struct {
		code int
		body string
		err  error
		at   time.Time
	}
	slow := func(secs int) chan answer {
		ch := make(chan answer, 1)
		go func() {
			c := &http.Client{Timeout: 60 * time.Second}
			code, body, err := httpGet(c, fmt.Sprintf("http://%s/slow.php?s=%d", s.lb1.Addr, secs))
			ch <- answer{code, body, err, time.Now()}
		}()
		return ch
	}
	waitSession := func() {
		waitFor(t, 10*time.Second, "the slow request reaches web3", func() (bool, string) {
			n, err := serverSessions(labCtx(t), s.rh1, "web3")
			return err == nil && n > 0, fmt.Sprint(n, err)
		})
	}

	// RemoveServer waits for the request in progress.
	ch := slow(6)
	waitSession()
	start := time.Now()
	var said []string
	if err := RemoveServer(ctx, s.rh1, "web3", time.Minute, func(m string) { said = append(said, m) }); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	a := <-ch
	t.Logf("RemoveServer took %s; the slow request answered %d %q after %s; progress: %q",
		removed.Sub(start).Round(100*time.Millisecond), a.code, strings.TrimSpace(a.body), a.at.Sub(start).Round(100*time.Millisecond), said)
	if a.err != nil || a.code != 200 || strings.TrimSpace(a.body) != "web3 slow" {
		t.Fatalf("the slow request failed: %d %q %v", a.code, a.body, a.err)
	}
	if removed.Before(a.at) {
		t.Fatalf("RemoveServer returned %s before the slow request ended", a.at.Sub(removed))
	}
	if len(said) == 0 {
		t.Fatal("RemoveServer said nothing while it waited")
	}

	// With a short drain timeout it removes the server anyway; the old worker still finishes the request.
	mustApply(t, "web3 back", true, func() (bool, error) { return PutServer(ctx, s.rh1, s.server(2, 100)) })
	waitServers(t, s.rh1, map[string]string{"web3": "L7OK"})
	ch = slow(8)
	waitSession()
	said = nil
	if err := RemoveServer(ctx, s.rh1, "web3", time.Second, func(m string) { said = append(said, m) }); err != nil {
		t.Fatal(err)
	}
	removed = time.Now()
	if !slices.ContainsFunc(said, func(m string) bool { return strings.Contains(m, "anyway") }) {
		t.Fatalf("RemoveServer did not say it gave up waiting: %q", said)
	}
	a = <-ch
	if !removed.Before(a.at) {
		t.Fatalf("RemoveServer with a 1 s drain timeout waited for the 8 s request (returned %s after it)", removed.Sub(a.at))
	}
	if a.err != nil || a.code != 200 {
		t.Fatalf("the request in progress on a removed server failed: %d %q %v", a.code, a.body, a.err)
	}

	// The site as before.
	for i := range 3 {
		mustApply(t, "activate "+s.webs[i].Name, true, func() (bool, error) { return PutServer(ctx, s.rh1, s.server(i, 100)) })
	}
	waitServers(t, s.rh1, map[string]string{"web1": "L7OK", "web2": "L7OK", "web3": "L7OK"})
	mustInSync(t, s.rh1)
}

func labDrift(t *testing.T, s *labSite) {
	ctx := labCtx(t)
	api := func(cmd string) string {
		return labtest.Exec(t, s.lb1, "echo '"+cmd+"' | socat -t 5 stdio unix-connect:"+AdminSocket)
	}
	outOfSync := func(what string, check func(State) bool) State {
		t.Helper()
		st, err := Inspect(ctx, s.rh1)
		if err != nil {
			t.Fatal(err)
		}
		if st.InSync || !check(st) {
			t.Fatalf("%s: Inspect does not show it: InSync %v, drift %q, servers %+v", what, st.InSync, st.Diffs, st.Servers)
		}
		t.Logf("%s: drift %q", what, st.Diffs)
		return st
	}

	// A server disabled by hand on the runtime API.
	api("disable server moodle/web1")
	outOfSync("web1 disabled at run time", func(st State) bool {
		ss, _ := st.Server("web1")
		return !ss.InSync && ss.Admin == "maintenance" && st.SiteFileInSync && st.RunningInSync
	})
	reloads := masterReloads(t, s.lb1)
	mustApply(t, "PutServer repairs web1", true, func() (bool, error) { return PutServer(ctx, s.rh1, s.server(0, 100)) })
	if masterReloads(t, s.lb1) != reloads {
		t.Fatal("the runtime repair reloaded HAProxy: the runtime API alone should have done it")
	}
	mustInSync(t, s.rh1)

	// A weight set by hand, then another server drained by hand: repaired by another server's PutServer.
	api("set weight moodle/web2 7")
	api("set server moodle/web3 state drain")
	outOfSync("weight and drain by hand", func(st State) bool {
		w2, _ := st.Server("web2")
		w3, _ := st.Server("web3")
		return w2.Weight == 7 && w3.Admin == "drain"
	})
	mustApply(t, "PutServer web1 repairs the others", true, func() (bool, error) { return PutServer(ctx, s.rh1, s.server(0, 100)) })
	mustInSync(t, s.rh1)

	// A hand edit of 10-site.cfg, not loaded, then loaded by hand.
	labtest.Exec(t, s.lb1, "printf '\\tserver rogue 127.0.0.1:81 weight 1\\n' >> "+SiteFile)
	outOfSync("10-site.cfg edited by hand", func(st State) bool { return !st.SiteFileInSync && !st.RunningInSync })
	labtest.Exec(t, s.lb1, "systemctl reload haproxy && sleep 1")
	outOfSync("10-site.cfg edited and loaded by hand", func(st State) bool {
		ss, ok := st.Server("rogue")
		return !st.SiteFileInSync && ok && ss.Running && !ss.InRegistry
	})
	mustApply(t, "PutServer repairs the hand edit", true, func() (bool, error) { return PutServer(ctx, s.rh1, s.server(0, 100)) })
	st := mustInSync(t, s.rh1)
	if _, ok := st.Server("rogue"); ok {
		t.Fatal("the rogue server survived the repair")
	}

	// HAProxy stopped.
	labtest.Exec(t, s.lb1, "systemctl stop haproxy")
	outOfSync("haproxy stopped", func(st State) bool { return !st.Active && !st.RunningInSync })
	mustApply(t, "ConfigureSite starts it", true, func() (bool, error) { return ConfigureSite(ctx, s.rh1, Site{}) })
	mustInSync(t, s.rh1)
	mustApply(t, "then nothing to do", false, func() (bool, error) { return ConfigureSite(ctx, s.rh1, Site{}) })
	waitServers(t, s.rh1, map[string]string{"web1": "L7OK", "web2": "L7OK", "web3": "L7OK"})
}

// labCheckStates: a server that is down stays down across MOHD's reloads (the saved check states), and a
// server whose port changes does not get its old port back from them.
func labCheckStates(t *testing.T, s *labSite) {
	ctx := labCtx(t)
	labtest.Exec(t, s.webs[2], "systemctl stop apache2")
	waitFor(t, 30*time.Second, "web3 is down", func() (bool, string) {
		st, err := Inspect(labCtx(t), s.rh1)
		ss, _ := st.Server("web3")
		return err == nil && ss.Operational == "down", fmt.Sprintf("%+v %v", ss, err)
	})
	stop := startLoad("http://" + s.lb1.Addr + "/")
	time.Sleep(time.Second)
	_, err := PutServer(ctx, s.rh1, s.server(0, 60))
	st, ierr := Inspect(ctx, s.rh1)
	time.Sleep(time.Second)
	res := stop()
	if err != nil || ierr != nil {
		t.Fatal(err, ierr)
	}
	if ss, _ := st.Server("web3"); ss.Operational != "down" {
		t.Fatalf("right after a reload web3 (stopped) is %q: its check state was not carried over: %+v", ss.Operational, ss)
	}
	t.Logf("%d requests across the reload with web3 down: %d failed, answered by %v", res.ok+res.failed, res.failed, res.servers)
	if res.failed != 0 || res.servers["web3"] != 0 {
		t.Fatalf("requests failed or reached the stopped web3:\n%s", strings.Join(res.errs, "\n"))
	}

	moved := s.server(2, 100)
	moved.Port = 8080
	mustApply(t, "web3 on port 8080", true, func() (bool, error) { return PutServer(ctx, s.rh1, moved) })
	if ss, _ := mustInSync(t, s.rh1).Server("web3"); ss.Port != 8080 {
		t.Fatalf("web3 after its port changed: %+v", ss)
	}
	labtest.Exec(t, s.webs[2], "systemctl start apache2")
	mustApply(t, "web3 on port 80", true, func() (bool, error) { return PutServer(ctx, s.rh1, s.server(2, 100)) })
	mustApply(t, "web1 weight 100", true, func() (bool, error) { return PutServer(ctx, s.rh1, s.server(0, 100)) })
	waitServers(t, s.rh1, map[string]string{"web1": "L7OK", "web2": "L7OK", "web3": "L7OK"})
	mustInSync(t, s.rh1)
}

// masterReloads returns the HAProxy master's reload count.
func masterReloads(t *testing.T, h *lab.Host) string {
	return labtest.Exec(t, h, "echo 'show proc' | socat -t 5 stdio unix-connect:"+MasterSocket+" | awk '$2 == \"master\" {print $3}'")
}

// selfSigned returns a certificate and key for moodle.test and the given addresses.
func selfSigned(t *testing.T, ips ...string) (certPEM, keyPEM string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "moodle.test"},
		DNSNames:     []string{"moodle.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})), pool
}

func labTLS(t *testing.T, s *labSite) {
	ctx := labCtx(t)
	certPEM, keyPEM, pool := selfSigned(t, s.lb1.Addr)
	site := Site{TLSCertificatePEM: certPEM, TLSKeyPEM: keyPEM}
	mustApply(t, "ConfigureSite with TLS", true, func() (bool, error) { return ConfigureSite(ctx, s.rh1, site) })
	mustApply(t, "ConfigureSite with TLS again", false, func() (bool, error) { return ConfigureSite(ctx, s.rh1, site) })
	st := mustInSync(t, s.rh1)
	if sum, _ := site.CertificateSHA256(); !st.TLS || st.CertificateSHA256 != sum {
		t.Fatalf("state: TLS %v, certificate %s, want %s", st.TLS, st.CertificateSHA256, sum)
	}
	if got := labtest.Exec(t, s.lb1, "stat -c '%a %U %G' "+CertFile+" && ls "+CertDir); got != "600 root root\nsite.pem" {
		t.Fatalf("certificate file: %q", got)
	}
	verified := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	code, body, err := httpGet(verified, "https://"+s.lb1.Addr+"/")
	if err != nil || code != 200 || !strings.HasPrefix(body, "web") {
		t.Fatalf("https through HAProxy: %d %q %v", code, body, err)
	}
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get("http://" + s.lb1.Addr + "/course/view.php?id=2")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "https://"+s.lb1.Addr+"/course/view.php?id=2" {
		t.Fatalf("http: %d Location %q, want a 301 to https", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A certificate replaced by hand is drift; ConfigureSite puts the site's back.
	labtest.Exec(t, s.lb1, "echo tampered >> "+CertFile)
	if st, err := Inspect(ctx, s.rh1); err != nil || st.InSync || st.CertificateInSync {
		t.Fatalf("a tampered certificate: %+v %v", st, err)
	}
	mustApply(t, "ConfigureSite repairs the certificate", true, func() (bool, error) { return ConfigureSite(ctx, s.rh1, site) })
	mustInSync(t, s.rh1)

	// Back to plain HTTP: no :443, no certificate.
	mustApply(t, "ConfigureSite without TLS", true, func() (bool, error) { return ConfigureSite(ctx, s.rh1, Site{}) })
	if code, _, err := httpGet(noRedirect, "http://"+s.lb1.Addr+"/"); err != nil || code != 200 {
		t.Fatalf("http without TLS: %d %v", code, err)
	}
	if c, err := net.DialTimeout("tcp", s.lb1.Addr+":443", 3*time.Second); err == nil {
		_ = c.Close()
		t.Fatal(":443 still listens without TLS")
	}
	if got := labtest.Exec(t, s.lb1, "ls -A "+CertDir+" | wc -l"); got != "0" {
		t.Fatalf("the certificate directory still holds %s file(s)", got)
	}
	mustInSync(t, s.rh1)
}

func labVIP(t *testing.T, s *labSite) {
	ctx := labCtx(t)
	// The second front end serves the same site.
	mustApply(t, "ConfigureSite lb2", true, func() (bool, error) { return ConfigureSite(ctx, s.rh2, Site{}) })
	for i := range 3 {
		mustApply(t, "PutServer lb2 "+s.webs[i].Name, true, func() (bool, error) { return PutServer(ctx, s.rh2, s.server(i, 100)) })
	}
	ip := s.lab.Subnet.IP.To4()
	vipAddr := net.IPv4(ip[0], ip[1], ip[2], 200).String()
	ones, _ := s.lab.Subnet.Mask.Size()
	vips := []VIP{
		// Both get the same list of front ends: each leaves itself out.
		{Address: vipAddr, PrefixLen: ones, Peers: []string{s.lb1.Addr, s.lb2.Addr}, Priority: 150, RouterID: 77, Password: "s3cr#t"},
		{Address: vipAddr, PrefixLen: ones, Peers: []string{s.lb1.Addr, s.lb2.Addr}, Priority: 100, RouterID: 77, Password: "s3cr#t"},
	}
	if _, err := ConfigureVIP(ctx, s.rh1, vips[0]); err == nil {
		t.Fatal("a password with '#' was accepted")
	}
	vips[0].Password, vips[1].Password = "s3cr3t", "s3cr3t"
	rhs := []remote.Host{s.rh1, s.rh2}
	for i, rh := range rhs {
		mustApply(t, "ConfigureVIP "+rh.Name(), true, func() (bool, error) { return ConfigureVIP(ctx, rh, vips[i]) })
	}
	for i, rh := range rhs {
		mustApply(t, "ConfigureVIP again "+rh.Name(), false, func() (bool, error) { return ConfigureVIP(ctx, rh, vips[i]) })
	}
	if got := labtest.Exec(t, s.lb1, "stat -c '%a %U' "+keepalivedAuth+" "+keepalivedCheck+" && grep -c s3cr3t "+KeepalivedConf+" || true"); got != "600 root\n755 root\n0" {
		t.Fatalf("keepalived's files: %q", got)
	}
	if got := labtest.Exec(t, s.lb1, "sed -n '/unicast_peer/,/}/p' "+KeepalivedConf); !strings.Contains(got, s.lb2.Addr) || strings.Contains(got, s.lb1.Addr) {
		t.Fatalf("lb1's unicast peers: %q", got)
	}
	var pausedLB1 atomic.Bool
	master := func(want int) {
		t.Helper()
		start := time.Now()
		waitFor(t, 20*time.Second, fmt.Sprintf("lb%d holds the virtual address %s and answers on it", want+1, vipAddr), func() (bool, string) {
			var got []string
			for i, rh := range rhs {
				if want != i && rh == s.rh1 && pausedLB1.Load() {
					continue // a paused host cannot be asked (and may still hold the address)
				}
				st, err := InspectVIP(labCtx(t), rh, vips[i])
				if err != nil {
					return false, err.Error()
				}
				if st.Master != (i == want) {
					got = append(got, fmt.Sprintf("lb%d master=%v %q", i+1, st.Master, st.Diffs))
				}
			}
			if len(got) > 0 {
				return false, strings.Join(got, ", ")
			}
			c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			code, body, err := httpGet(c, "http://"+vipAddr+"/")
			return err == nil && code == 200, fmt.Sprintf("GET virtual address: %d %q %v", code, body, err)
		})
		t.Logf("lb%d holds %s and it answers, %s after the change", want+1, vipAddr, time.Since(start).Round(100*time.Millisecond))
	}
	master(0)
	for i, rh := range rhs {
		st, err := InspectVIP(ctx, rh, vips[i])
		if err != nil || !st.InSync || st.Interface != "eth0" {
			t.Fatalf("InspectVIP %s: %+v %v", rh.Name(), st, err)
		}
	}

	// HAProxy stops on the master: the address moves to lb2, and back once lb1's HAProxy is repaired.
	labtest.Exec(t, s.lb1, "systemctl stop haproxy")
	master(1)
	mustApply(t, "ConfigureSite restarts lb1's HAProxy", true, func() (bool, error) { return ConfigureSite(ctx, s.rh1, Site{}) })
	master(0)

	// HAProxy's worker freezes (SIGSTOP): systemd still says "active", the runtime API does not answer.
	pid := labtest.Exec(t, s.lb1, "echo 'show info' | socat -t 5 stdio unix-connect:"+AdminSocket+" | sed -n 's/^Pid: //p'")
	labtest.Exec(t, s.lb1, "kill -STOP "+pid)
	master(1)
	labtest.Exec(t, s.lb1, "kill -CONT "+pid)
	master(0)

	// The master host freezes: lb2 takes over; lb1 takes it back once it runs again.
	if err := s.lb1.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	pausedLB1.Store(true)
	master(1)
	if err := s.lb1.Unpause(ctx); err != nil {
		t.Fatal(err)
	}
	pausedLB1.Store(false)
	master(0)

	// keepalived.conf edited by hand and loaded: drift, repaired.
	labtest.Exec(t, s.lb2, "sed -i 's/priority 100/priority 200/' "+KeepalivedConf+" && systemctl reload keepalived")
	st, err := InspectVIP(ctx, s.rh2, vips[1])
	if err != nil || st.InSync || st.FilesInSync {
		t.Fatalf("InspectVIP after a hand edit: %+v %v", st, err)
	}
	t.Logf("hand edit: drift %q", st.Diffs)
	mustApply(t, "ConfigureVIP repairs lb2", true, func() (bool, error) { return ConfigureVIP(ctx, s.rh2, vips[1]) })
	master(0)
	if st, err := InspectVIP(ctx, s.rh2, vips[1]); err != nil || !st.InSync {
		t.Fatalf("InspectVIP after the repair: %+v %v", st, err)
	}
}

func httpGet(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		good, state := ok()
		if good {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, timeout, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
