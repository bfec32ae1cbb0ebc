package haproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
)

func mustChange(t *testing.T, what string, want bool, changed bool, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if changed != want {
		t.Fatalf("%s: changed = %v, want %v", what, changed, want)
	}
}

func inspect(t *testing.T, h remote.Host) State {
	t.Helper()
	st, err := Inspect(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func web(n int, weight int, state string) Server {
	return Server{Name: fmt.Sprintf("web%d", n), Address: fmt.Sprintf("10.20.0.%d", 20+n), Port: 80, Weight: weight, State: state}
}

func TestSiteLifecycle(t *testing.T) {
	ctx := context.Background()
	fe := newFakeFrontEnd(t)
	st := inspect(t, fe.f)
	if st.InSync || st.Registry || !strings.Contains(strings.Join(st.Diffs, "\n"), "never configured") {
		t.Fatalf("a fresh front end: %+v", st)
	}

	c, err := ConfigureSite(ctx, fe.f, Site{})
	mustChange(t, "first ConfigureSite", true, c, err)
	c, err = ConfigureSite(ctx, fe.f, Site{})
	mustChange(t, "second ConfigureSite", false, c, err)
	if reloads, _ := fe.counts(); reloads != 1 {
		t.Fatalf("%d reloads, want 1", reloads)
	}
	reg, _ := fe.f.File(RegistryFile)
	site, _ := fe.f.File(SiteFile)
	if reg.Mode != 0o600 || reg.Owner != "root" || site.Mode != 0o640 || site.Owner != "root" {
		t.Fatalf("modes: registry %v %s, site %v %s", reg.Mode, reg.Owner, site.Mode, site.Owner)
	}

	for _, s := range []Server{web(1, 100, ""), web(2, 100, ""), web(3, 50, StateDrain), web(4, 10, StateMaintenance)} {
		c, err := PutServer(ctx, fe.f, s)
		mustChange(t, "PutServer "+s.Name, true, c, err)
	}
	c, err = PutServer(ctx, fe.f, web(2, 100, StateActive))
	mustChange(t, "PutServer web2 again", false, c, err)
	reloads, api := fe.counts()
	if reloads != 5 || len(api) != 0 {
		t.Fatalf("reloads %d (want 5), runtime API commands %q (want none: the reloads did it)", reloads, api)
	}
	st = inspect(t, fe.f)
	if !st.InSync || len(st.Servers) != 4 {
		t.Fatalf("after four PutServer: %+v", st)
	}
	for n, want := range map[string]string{"web1": "ready 100", "web2": "ready 100", "web3": "ready 0", "web4": "maintenance 10"} {
		ss, _ := st.Server(n)
		if got := fmt.Sprintf("%s %d", ss.Admin, ss.Weight); got != want || !ss.InRegistry || !ss.Running || !ss.InSync {
			t.Errorf("%s: %s (%+v), want %s", n, got, ss, want)
		}
	}
	if ss, _ := st.Server("web3"); ss.Desired.Weight != 50 || ss.Desired.State != StateDrain {
		t.Errorf("web3's registry entry: %+v", ss.Desired)
	}

	// A weight change, drain to active, maintenance to active: reloads, each idempotent.
	for _, s := range []Server{web(1, 60, ""), web(3, 50, ""), web(4, 10, "")} {
		c, err := PutServer(ctx, fe.f, s)
		mustChange(t, "PutServer "+s.Name, true, c, err)
		c, err = PutServer(ctx, fe.f, s)
		mustChange(t, "PutServer "+s.Name+" again", false, c, err)
	}
	st = inspect(t, fe.f)
	for _, n := range []string{"web3", "web4"} {
		if ss, _ := st.Server(n); ss.Admin != "ready" || ss.Weight != 50 && n == "web3" {
			t.Errorf("%s after it became active: %+v", n, ss)
		}
	}
	if !st.InSync {
		t.Fatalf("%q", st.Diffs)
	}
}

func TestRuntimeRepair(t *testing.T) {
	ctx := context.Background()
	fe := newFakeFrontEnd(t)
	for _, s := range []Server{web(1, 100, ""), web(2, 100, ""), web(3, 100, StateMaintenance)} {
		if _, err := PutServer(ctx, fe.f, s); err != nil {
			t.Fatal(err)
		}
	}
	reloads, _ := fe.counts()
	// By hand on the runtime API: web1 disabled, web2's weight, web3 enabled.
	fe.mu.Lock()
	r := fe.runtime["web1"]
	r.Admin |= admFMaint
	fe.runtime["web1"] = r
	r = fe.runtime["web2"]
	r.UWeight = 7
	fe.runtime["web2"] = r
	r = fe.runtime["web3"]
	r.Admin &^= admFMaint
	fe.runtime["web3"] = r
	fe.mu.Unlock()

	st := inspect(t, fe.f)
	if st.InSync || !st.SiteFileInSync || !st.RunningInSync || len(st.Diffs) != 3 {
		t.Fatalf("runtime drift: %+v", st)
	}
	for _, n := range []string{"web1", "web2", "web3"} {
		if ss, _ := st.Server(n); ss.InSync {
			t.Errorf("%s shows no drift: %+v", n, ss)
		}
	}
	// Any PutServer re-asserts every server's runtime state, without a reload.
	c, err := PutServer(ctx, fe.f, web(2, 100, ""))
	mustChange(t, "repair", true, c, err)
	r2, api := fe.counts()
	want := []string{"set server moodle/web1 state ready", "set weight moodle/web2 100", "set server moodle/web3 state maint"}
	if r2 != reloads || !slices.Equal(api, want) {
		t.Fatalf("repair: %d reloads (want %d), runtime API %q, want %q", r2-reloads, 0, api, want)
	}
	if st := inspect(t, fe.f); !st.InSync {
		t.Fatalf("after the repair: %q", st.Diffs)
	}
	c, err = PutServer(ctx, fe.f, web(2, 100, ""))
	mustChange(t, "nothing left to repair", false, c, err)
}

func TestHandEditAndStoppedRepair(t *testing.T) {
	ctx := context.Background()
	fe := newFakeFrontEnd(t)
	if _, err := PutServer(ctx, fe.f, web(1, 100, "")); err != nil {
		t.Fatal(err)
	}
	good, _ := fe.f.File(SiteFile)
	fe.handEdit(SiteFile, append(bytes.Clone(good.Content), "\tserver rogue 10.20.0.99:80 weight 1\n"...))
	st := inspect(t, fe.f)
	if st.InSync || st.SiteFileInSync || st.RunningInSync {
		t.Fatalf("hand edit, not loaded: %+v", st)
	}
	// Loaded by hand: a server the registry does not have.
	if _, err := fe.f.Run(ctx, remote.Cmd{Command: "set -- ' ' running\nsystemctl reload haproxy"}); err != nil {
		t.Fatal(err)
	}
	st = inspect(t, fe.f)
	if ss, ok := st.Server("rogue"); st.InSync || !ok || ss.InRegistry || ss.InSync {
		t.Fatalf("hand edit, loaded: %+v", st)
	}
	reloads, _ := fe.counts()
	c, err := PutServer(ctx, fe.f, web(1, 100, ""))
	mustChange(t, "repair of the hand edit", true, c, err)
	if now, _ := fe.f.File(SiteFile); !bytes.Equal(now.Content, good.Content) {
		t.Fatalf("10-site.cfg after the repair:\n%s", now.Content)
	}
	if r, _ := fe.counts(); r != reloads+1 {
		t.Fatalf("the repair did not reload")
	}
	if st := inspect(t, fe.f); !st.InSync {
		t.Fatalf("after the repair: %q", st.Diffs)
	}

	// Stopped and disabled.
	fe.mu.Lock()
	fe.active, fe.enabled = false, false
	fe.mu.Unlock()
	st = inspect(t, fe.f)
	if st.InSync || st.Active || st.Enabled || st.RunningInSync {
		t.Fatalf("stopped: %+v", st)
	}
	c, err = ConfigureSite(ctx, fe.f, Site{})
	mustChange(t, "ConfigureSite starts it", true, c, err)
	if st := inspect(t, fe.f); !st.InSync {
		t.Fatalf("after the start: %q", st.Diffs)
	}
	var started bool
	for _, c := range fe.f.Commands() {
		if strings.HasPrefix(c, "set -- ' ' stopped\n") {
			started = true
		}
	}
	if !started {
		t.Fatalf("the reload script was not told HAProxy is stopped: %q", fe.f.Commands()[len(fe.f.Commands())-4:])
	}
}

func TestReloadForgetsMovedServers(t *testing.T) {
	ctx := context.Background()
	fe := newFakeFrontEnd(t)
	if _, err := PutServer(ctx, fe.f, web(1, 100, "")); err != nil {
		t.Fatal(err)
	}
	moved := web(1, 100, "")
	moved.Port = 8080
	if _, err := PutServer(ctx, fe.f, moved); err != nil {
		t.Fatal(err)
	}
	// The fake carries the port over from the saved states like HAProxy: only a forgotten server gets its
	// new port.
	if ss, _ := inspect(t, fe.f).Server("web1"); ss.Port != 8080 || !ss.InSync {
		t.Fatalf("web1 after its port changed: %+v", ss)
	}
	last := ""
	for _, c := range fe.f.Commands() {
		if strings.HasPrefix(c, "set -- ") {
			last = strings.SplitN(c, "\n", 2)[0]
		}
	}
	if last != "set -- ' web1 ' running" {
		t.Fatalf("last reload: %q", last)
	}
}

func TestConcurrentPutServer(t *testing.T) {
	fe := newFakeFrontEnd(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := PutServer(context.Background(), fe.f, web(i+1, 10, ""))
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
	if got := len(fe.registry().Servers); got != n {
		t.Fatalf("the registry holds %d servers after %d concurrent PutServer", got, n)
	}
	locks := 0
	for _, l := range fe.f.LocksTaken() {
		if l == LockName {
			locks++
		}
	}
	if locks != n {
		t.Fatalf("%d locks taken for %d PutServer", locks, n)
	}
	if st := inspect(t, fe.f); !st.InSync || len(st.Servers) != n {
		t.Fatalf("%+v", st)
	}
}

func TestRemoveServer(t *testing.T) {
	ctx := context.Background()
	fe := newFakeFrontEnd(t)
	for _, s := range []Server{web(1, 100, ""), web(2, 100, "")} {
		if _, err := PutServer(ctx, fe.f, s); err != nil {
			t.Fatal(err)
		}
	}
	fe.mu.Lock()
	fe.sessions["web1"] = []int{2, 1, 0}
	fe.mu.Unlock()
	var said []string
	start := time.Now()
	if err := RemoveServer(ctx, fe.f, "web1", time.Minute, func(s string) { said = append(said, s) }); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("RemoveServer returned after %s: it did not wait for the two sessions", d)
	}
	if len(said) < 2 || !strings.Contains(said[0], "2 session(s) left") || !strings.Contains(said[len(said)-1], "removed") {
		t.Fatalf("progress: %q", said)
	}
	if _, ok := fe.registry().server("web1"); ok {
		t.Fatal("web1 is still in the registry")
	}
	// Drained first: the registry said so while it waited.
	var states []string
	for _, u := range fe.f.Uploads() {
		if u.Path == RegistryFile {
			r, _ := parseRegistry(u.Content)
			if s, ok := r.server("web1"); ok {
				states = append(states, s.State)
			} else {
				states = append(states, "gone")
			}
		}
	}
	if !slices.Equal(states[len(states)-2:], []string{StateDrain, "gone"}) {
		t.Fatalf("web1 in the successive registries: %q", states)
	}
	if st := inspect(t, fe.f); !st.InSync || len(st.Servers) != 1 {
		t.Fatalf("after RemoveServer: %+v", st)
	}

	// Absent: nothing is touched.
	ups, reloads := len(fe.f.Uploads()), fe.reloads
	if err := RemoveServer(ctx, fe.f, "web9", time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	if len(fe.f.Uploads()) != ups || fe.reloads != reloads {
		t.Fatal("removing an absent server changed the host")
	}
	if err := RemoveServer(ctx, fe.f, "bad name", time.Minute, nil); err == nil {
		t.Fatal("a bad name was accepted")
	}
}

func TestRemoveServerTimeoutAndCancel(t *testing.T) {
	ctx := context.Background()
	fe := newFakeFrontEnd(t)
	for _, s := range []Server{web(1, 100, ""), web(2, 100, "")} {
		if _, err := PutServer(ctx, fe.f, s); err != nil {
			t.Fatal(err)
		}
	}
	fe.mu.Lock()
	fe.sessions["web1"] = []int{1}
	fe.sessions["web2"] = []int{1}
	fe.mu.Unlock()
	var said []string
	start := time.Now()
	if err := RemoveServer(ctx, fe.f, "web1", 1200*time.Millisecond, func(s string) { said = append(said, s) }); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 1200*time.Millisecond || d > 5*time.Second {
		t.Fatalf("RemoveServer with a 1.2 s drain timeout took %s", d)
	}
	if !slices.ContainsFunc(said, func(s string) bool { return strings.Contains(s, "removing it anyway") }) {
		t.Fatalf("progress: %q", said)
	}
	if _, ok := fe.registry().server("web1"); ok {
		t.Fatal("web1 was not removed after the timeout")
	}

	cctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	err := RemoveServer(cctx, fe.f, "web2", time.Minute, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "stays drained") {
		t.Fatalf("cancelled RemoveServer: %v", err)
	}
	if s, ok := fe.registry().server("web2"); !ok || s.State != StateDrain {
		t.Fatalf("web2 after a cancelled removal: %+v %v", s, ok)
	}
}

func TestCheckFailureChangesNothing(t *testing.T) {
	ctx := context.Background()
	fe := newFakeFrontEnd(t)
	if _, err := PutServer(ctx, fe.f, web(1, 100, "")); err != nil {
		t.Fatal(err)
	}
	before, _ := fe.f.File(SiteFile)
	reg, _ := fe.f.File(RegistryFile)
	reloads, _ := fe.counts()
	fe.checkFails = true
	_, err := PutServer(ctx, fe.f, web(2, 100, ""))
	if err == nil || !strings.Contains(err.Error(), "unknown keyword") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("PutServer with a configuration HAProxy refuses: %v", err)
	}
	after, _ := fe.f.File(SiteFile)
	reg2, _ := fe.f.File(RegistryFile)
	if !bytes.Equal(before.Content, after.Content) || !bytes.Equal(reg.Content, reg2.Content) || fe.reloads != reloads {
		t.Fatal("a refused configuration changed the host")
	}
	if len(fe.candidates) == 0 || !strings.Contains(string(fe.candidates[len(fe.candidates)-1]), "server web2 ") {
		t.Fatal("the candidate checked was not the new file")
	}
}

func TestSiteTLS(t *testing.T) {
	ctx := context.Background()
	fe := newFakeFrontEnd(t)
	cert, key := testPair(t)
	site := Site{TLSCertificatePEM: cert, TLSKeyPEM: key}
	sum, _ := site.CertificateSHA256()
	c, err := ConfigureSite(ctx, fe.f, site)
	mustChange(t, "ConfigureSite with TLS", true, c, err)
	certFile, ok := fe.f.File(CertFile)
	if !ok || string(certFile.Content) != cert+key || certFile.Mode != 0o600 || certFile.Owner != "root" || certFile.Group != "root" {
		t.Fatalf("certificate file: %+v", certFile)
	}
	cfg, _ := fe.f.File(SiteFile)
	if !strings.Contains(string(cfg.Content), "\tsetenv MOHD_TLS 1\n") {
		t.Fatalf("10-site.cfg without the TLS switch:\n%s", cfg.Content)
	}
	// The certificate is in place before the candidate is checked, and the key never leaves the upload.
	var certAt, checkAt int
	for i, c := range fe.f.Calls() {
		if strings.Contains(c.Command, "mktemp -d") && checkAt == 0 {
			checkAt = i
		}
		if strings.Contains(c.Command, certBackup) && certAt == 0 {
			certAt = i
		}
		keyLine := strings.Split(key, "\n")[1]
		if strings.Contains(c.Command, keyLine) || bytes.Contains(c.Stdin, []byte(keyLine)) {
			t.Fatalf("the key is in a command: %q", c.Step())
		}
	}
	if certAt == 0 || certAt > checkAt {
		t.Fatalf("certificate set aside at call %d, candidate checked at %d", certAt, checkAt)
	}
	st := inspect(t, fe.f)
	if !st.InSync || !st.TLS || st.CertificateSHA256 != sum {
		t.Fatalf("TLS state: %+v", st)
	}
	c, err = ConfigureSite(ctx, fe.f, site)
	mustChange(t, "ConfigureSite with TLS again", false, c, err)

	// A certificate changed by hand: drift that PutServer cannot repair (it has no key), ConfigureSite can.
	fe.handEdit(CertFile, []byte("tampered"))
	if st := inspect(t, fe.f); st.InSync || st.CertificateInSync {
		t.Fatalf("tampered certificate: %+v", st)
	}
	if _, err := PutServer(ctx, fe.f, web(1, 100, "")); err != nil {
		t.Fatal(err)
	}
	if f, _ := fe.f.File(CertFile); string(f.Content) != "tampered" {
		t.Fatal("PutServer rewrote the certificate")
	}
	c, err = ConfigureSite(ctx, fe.f, site)
	mustChange(t, "ConfigureSite repairs the certificate", true, c, err)
	if st := inspect(t, fe.f); !st.InSync {
		t.Fatalf("%q", st.Diffs)
	}

	// Back to plain HTTP: the switch goes, then the certificate, after the reload.
	c, err = ConfigureSite(ctx, fe.f, Site{})
	mustChange(t, "ConfigureSite without TLS", true, c, err)
	cmds := fe.f.Commands()
	reloadAt, rmAt := -1, -1
	for i, c := range cmds {
		if strings.HasPrefix(c, "set -- ") {
			reloadAt = i
		}
		if c == "rm -f "+CertFile {
			rmAt = i
		}
	}
	if rmAt < 0 || rmAt < reloadAt {
		t.Fatalf("certificate removed at %d, last reload at %d", rmAt, reloadAt)
	}
	st = inspect(t, fe.f)
	if !st.InSync || st.TLS || st.CertificateSHA256 != "" {
		t.Fatalf("plain again: %+v", st)
	}
	cfg, _ = fe.f.File(SiteFile)
	if strings.Contains(string(cfg.Content), "MOHD_TLS") {
		t.Fatal("the TLS switch is still on")
	}

	// A certificate HAProxy refuses: the previous one (none) is put back.
	fe.checkFails = true
	if _, err := ConfigureSite(ctx, fe.f, site); err == nil {
		t.Fatal("a refused certificate was installed")
	}
	if last := fe.f.Commands()[len(fe.f.Commands())-1]; !strings.Contains(last, "mv "+certBackup+" "+CertFile) {
		t.Fatalf("last command after the refusal: %q", last)
	}
}

func TestInspectChangesNothing(t *testing.T) {
	ctx := context.Background()
	fe := newFakeFrontEnd(t)
	if _, err := PutServer(ctx, fe.f, web(1, 100, "")); err != nil {
		t.Fatal(err)
	}
	fe.mu.Lock()
	fe.active = false
	fe.mu.Unlock()
	n, ups := len(fe.f.Commands()), len(fe.f.Uploads())
	inspect(t, fe.f)
	if len(fe.f.Uploads()) != ups {
		t.Fatal("Inspect uploaded a file")
	}
	for _, c := range fe.f.Commands()[n:] {
		if c != stateScript {
			t.Fatalf("Inspect ran %q", remote.ShortCommand(c))
		}
	}
}

func TestSiteAndServerDiffs(t *testing.T) {
	ctx := context.Background()
	fe := newFakeFrontEnd(t)
	for _, s := range []Server{web(1, 100, ""), web(2, 100, StateDrain)} {
		if _, err := PutServer(ctx, fe.f, s); err != nil {
			t.Fatal(err)
		}
	}
	st := inspect(t, fe.f)
	if d := st.SiteDiffs(Site{}); len(d) != 0 {
		t.Fatalf("site diffs in sync: %q", d)
	}
	if d, state := st.ServerDiffs(web(1, 100, "")); len(d) != 0 || state != "up, ready, weight 100" {
		t.Fatalf("web1 in sync: %q %q", d, state)
	}
	if d, state := st.ServerDiffs(web(2, 100, StateDrain)); len(d) != 0 || state != "up, ready, weight 0" {
		t.Fatalf("web2 drained: %q %q", d, state)
	}
	if d, _ := st.ServerDiffs(web(1, 50, "")); len(d) != 1 || !strings.Contains(d[0], "registered as 10.20.0.21:80 active weight 100, want 10.20.0.21:80 active weight 50") {
		t.Fatalf("another weight wanted: %q", d)
	}
	if d, state := st.ServerDiffs(web(9, 1, "")); len(d) != 1 || !strings.Contains(d[0], "not registered") || state != "absent" {
		t.Fatalf("absent server: %q %q", d, state)
	}
	if d, state := st.ServerDiffs(Server{Name: "bad name"}); len(d) != 1 || state != "invalid" {
		t.Fatalf("invalid server: %q %q", d, state)
	}
	cert, key := testPair(t)
	if d := st.SiteDiffs(Site{TLSCertificatePEM: cert, TLSKeyPEM: key}); len(d) != 1 || !strings.Contains(d[0], "want TLS") {
		t.Fatalf("TLS wanted: %q", d)
	}

	// Runtime drift of a server is the server's, not the site's; a hand edit is the site's.
	fe.mu.Lock()
	r := fe.runtime["web1"]
	r.Admin |= admFMaint
	fe.runtime["web1"] = r
	fe.mu.Unlock()
	st = inspect(t, fe.f)
	if d := st.SiteDiffs(Site{}); len(d) != 0 {
		t.Fatalf("a server's runtime drift shows as the site's: %q", d)
	}
	if d, state := st.ServerDiffs(web(1, 100, "")); len(d) != 1 || !strings.Contains(d[0], "server web1 is in maintenance at run time") || state != "up, maintenance, weight 100" {
		t.Fatalf("web1 disabled by hand: %q %q", d, state)
	}
	cfg, _ := fe.f.File(SiteFile)
	fe.handEdit(SiteFile, append(bytes.Clone(cfg.Content), "# edited\n"...))
	st = inspect(t, fe.f)
	if d := st.SiteDiffs(Site{}); len(d) != 2 || !strings.Contains(d[0], "differs from the registry's rendering") {
		t.Fatalf("hand edit: %q", d)
	}
	if len(st.Diffs) != 3 {
		t.Fatalf("all diffs: %q", st.Diffs)
	}
}
