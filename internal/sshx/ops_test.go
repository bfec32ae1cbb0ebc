package sshx

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/mohd-dev/mohd/internal/remote"
)

// rootServer starts an exec server accepting a fresh key for root.
func rootServer(t *testing.T, o serverOpts) (*testServer, *testKey) {
	t.Helper()
	k := newKey(t, "user")
	o.authorized = append(o.authorized, k.pub)
	return startServer(t, o), k
}

func TestParallelRunsShareOneConnectionWithinSessionLimit(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxSessions int
		wantMax     int32
	}{
		{"default limit 8", 0, 8},
		// more than the server allows: refused sessions are retried
		{"limit above server's", 16, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, k := rootServer(t, serverOpts{sessionLimit: 10})
			p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: k.pem}, MaxSessions: tc.maxSessions})
			h := mustHost(t, p, srv.target())
			ctx := ctxT(t, 20*time.Second)
			var wg sync.WaitGroup
			var failed atomic.Int32
			for i := 0; i < 40; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := h.Run(ctx, remote.Cmd{Command: fmt.Sprintf("sleep 0.1; echo %d", i)})
					if err != nil || string(r.Stdout) != fmt.Sprintf("%d\n", i) {
						failed.Add(1)
						t.Errorf("run %d: %q %v", i, r.Stdout, err)
					}
				}()
			}
			wg.Wait()
			if failed.Load() > 0 {
				return
			}
			if n := srv.conns.Load(); n != 1 {
				t.Errorf("%d connections, want 1 shared", n)
			}
			// Commands running at once. (Open channels as the server
			// counts them can briefly exceed the client's limit by one:
			// the server frees a channel only when the client's close
			// arrives, after the client has already moved on. That
			// lag is why the default stays below OpenSSH's 10.)
			m := srv.maxRunning.Load()
			if m > tc.wantMax || m < 2 {
				t.Errorf("max concurrent commands observed %d, want 2..%d", m, tc.wantMax)
			}

			if tc.maxSessions == 0 && srv.rejected.Load() != 0 {
				t.Errorf("server rejected %d sessions under the default limit", srv.rejected.Load())
			}
			if tc.maxSessions == 16 && srv.rejected.Load() == 0 {
				t.Errorf("server never refused a session: the retry path was not exercised")
			}
		})
	}
}

func TestExitErrorAndRedaction(t *testing.T) {
	srv, k := rootServer(t, serverOpts{})
	log := &captureLogger{}
	red := remote.NewRedactor("tok-ABC123-global")
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: k.pem}, Logger: log, Redactor: red})
	h := mustHost(t, p, srv.target())
	pemLine := strings.Split(k.pem, "\n")[2] // a line of the private key
	cmd := `for i in $(seq 1 30); do echo "noise $i" >&2; done
echo "db password=hunter2-xyz token=tok-ABC123-global key=` + pemLine + `" >&2
echo partial-out
exit 3`
	r, err := h.Run(ctxT(t, 10*time.Second), remote.Cmd{Command: cmd, Desc: "configure db with hunter2-xyz", Secrets: []string{"hunter2-xyz"}})
	var ee *remote.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("want *remote.ExitError, got %T %v", err, err)
	}
	if ee.ExitCode != 3 || r.ExitCode != 3 || string(r.Stdout) != "partial-out\n" {
		t.Fatalf("exit %d/%d stdout %q", ee.ExitCode, r.ExitCode, r.Stdout)
	}
	msg := err.Error()
	for _, want := range []string{"root@" + srv.addr, `step "configure db with ***"`, "exit code 3", "password=*** token=*** key=***", "noise 30"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "noise 10\n") {
		t.Errorf("stderr tail is not limited to the last lines:\n%s", msg)
	}
	if lines := strings.Count(ee.Stderr, "\n") + 1; lines != remote.TailLines {
		t.Errorf("tail has %d lines, want %d", lines, remote.TailLines)
	}
	logs := log.String()
	for _, secret := range []string{"hunter2-xyz", "tok-ABC123-global", pemLine} {
		if strings.Contains(msg, secret) || strings.Contains(logs, secret) {
			t.Errorf("secret %q leaked:\nerror: %s\nlogs: %s", secret, msg, logs)
		}
	}
	if !strings.Contains(logs, "exit_code:3") || !strings.Contains(logs, "duration_ms:") || !strings.Contains(logs, "host:root@"+srv.addr) {
		t.Errorf("command log lacks host/exit code/duration:\n%s", logs)
	}
	// the raw Result is not redacted: callers may need it
	if !bytes.Contains(r.Stderr, []byte("hunter2-xyz")) {
		t.Error("Result.Stderr was altered")
	}
	// secrets registered once stay redacted in later commands
	_, err = h.Run(ctxT(t, 10*time.Second), remote.Cmd{Command: "echo hunter2-xyz >&2; false"})
	if err == nil || strings.Contains(err.Error(), "hunter2-xyz") {
		t.Fatalf("later error leaks the secret: %v", err)
	}
}

func TestUpload(t *testing.T) {
	srv, k := rootServer(t, serverOpts{})
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: k.pem}})
	h := mustHost(t, p, srv.target())
	ctx := ctxT(t, 20*time.Second)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "etc", "app", "config.php")
	content := []byte("<?php $CFG->dbpass = 'x'; // it's \"quoted\"\n\x00binary\xff")
	f := remote.File{Path: path, Content: content, Mode: 0o640, Owner: u.Username, Group: g.Name}

	if _, err := h.Upload(ctx, f); err == nil || !strings.Contains(err.Error(), "parent directory") {
		t.Fatalf("upload without parent dir: %v", err)
	}
	f.MkdirParents = true
	check := func(wantChanged, changed bool, err error, want []byte, mode os.FileMode) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if changed != wantChanged {
			t.Fatalf("changed = %v, want %v", changed, wantChanged)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("content %q, want %q", got, want)
		}
		st, _ := os.Stat(path)
		if st.Mode().Perm() != mode {
			t.Fatalf("mode %v, want %v", st.Mode().Perm(), mode)
		}
	}
	changed, err := h.Upload(ctx, f)
	check(true, changed, err, content, 0o640)
	changed, err = h.Upload(ctx, f)
	check(false, changed, err, content, 0o640)

	// mode only
	f.Mode = 0o600
	changed, err = h.Upload(ctx, f)
	check(true, changed, err, content, 0o600)
	changed, err = h.Upload(ctx, f)
	check(false, changed, err, content, 0o600)

	// content
	f.Content = []byte("new content\n")
	changed, err = h.Upload(ctx, f)
	check(true, changed, err, f.Content, 0o600)

	// empty file, default mode
	changed, err = h.Upload(ctx, remote.File{Path: path, Content: nil})
	check(true, changed, err, []byte{}, 0o644)

	// no temp files left behind
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the file", len(entries))
	}
	// content went over stdin, not argv
	for _, c := range srv.getCommands() {
		if strings.Contains(c, "new content") || strings.Contains(c, "dbpass") {
			t.Fatalf("file content in command line: %q", c)
		}
	}
	// directory in the way
	if _, err := h.Upload(ctx, remote.File{Path: dir, Content: []byte("x")}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("upload over a directory: %v", err)
	}
	if _, err := h.Upload(ctx, remote.File{Path: "relative/path"}); err == nil {
		t.Fatal("relative path accepted")
	}
}

func TestLockContentionBetweenConnections(t *testing.T) {
	srv, k := rootServer(t, serverOpts{})
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		os.Remove("/run/lock/mohd-" + name + ".lock")
		os.Remove("/var/lock/mohd-" + name + ".lock")
	})
	cfg := Config{Auth: Auth{User: "root", PrivateKey: k.pem}}
	pa, _ := newTestPool(t, cfg)
	pb, _ := newTestPool(t, cfg)
	ha, hb := mustHost(t, pa, srv.target()), mustHost(t, pb, srv.target())
	ctx := ctxT(t, 20*time.Second)

	unlockA, err := ha.Lock(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// B with a short deadline gives up while A holds the lock
	start := time.Now()
	short, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
	_, err = hb.Lock(short, name)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock with deadline: %v", err)
	}
	if d := time.Since(start); d < 350*time.Millisecond || d > 3*time.Second {
		t.Fatalf("gave up after %s", d)
	}

	acquired := make(chan error, 1)
	var unlockB func() error
	go func() {
		var err error
		unlockB, err = hb.Lock(ctx, name)
		acquired <- err
	}()
	select {
	case err := <-acquired:
		t.Fatalf("second Lock returned while the first holds it: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	releasedAt := time.Now()
	if err := unlockA(); err != nil {
		t.Fatal(err)
	}
	if err := unlockA(); err != nil { // idempotent
		t.Fatal(err)
	}
	select {
	case err := <-acquired:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second Lock not acquired after unlock")
	}
	if d := time.Since(releasedAt); d > 3*time.Second {
		t.Fatalf("acquired %s after unlock", d)
	}
	if srv.conns.Load() != 2 {
		t.Fatalf("%d connections, want 2 (one per pool)", srv.conns.Load())
	}
	if err := unlockB(); err != nil {
		t.Fatal(err)
	}
	// the lock is free again, and the session tokens were returned
	u, err := ha.Lock(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	_ = u()
	if len(ha.slot.sem) != 0 || len(hb.slot.sem) != 0 {
		t.Fatalf("session tokens leaked: %d %d", len(ha.slot.sem), len(hb.slot.sem))
	}
	if _, err := ha.Lock(ctx, "../etc/passwd"); err == nil {
		t.Fatal("invalid lock name accepted")
	}
}

func TestContextCancelStopsRemoteCommand(t *testing.T) {
	srv, k := rootServer(t, serverOpts{})
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: k.pem}})
	h := mustHost(t, p, srv.target())
	runOK(t, h, "true") // connect first
	marker := filepath.Join(t.TempDir(), "finished")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.Run(ctx, remote.Cmd{Command: "sleep 30; touch " + marker})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Run returned after %s", d)
	}
	deadline := time.Now().Add(3 * time.Second)
	for srv.handlersRun.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.handlersRun.Load(); n != 0 {
		t.Fatalf("%d remote commands still running", n)
	}
	if sigs := srv.getSignals(); len(sigs) != 1 || sigs[0] != "TERM" {
		t.Fatalf("server received signals %v, want [TERM]", sigs)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("remote command ran to completion")
	}
	if len(h.slot.sem) != 0 {
		t.Fatal("session token leaked")
	}
}

// sudoServer emulates sudo: "sudo -n [-H -u U] -- sh -c SCRIPT [ARG...]"
// runs SCRIPT when nopasswd is set, otherwise fails like sudo does without
// NOPASSWD. Like sudo, it relays a signal to the shell only, not to the
// shell's children.
func sudoServer(t *testing.T, nopasswd bool) (*testServer, *testKey) {
	handler := func(s gssh.Session) {
		argv := s.Command() // shell-word split
		if len(argv) == 0 || argv[0] != "sudo" {
			runSh(s, s.RawCommand(), nil)
			return
		}
		if !nopasswd {
			fmt.Fprintln(s.Stderr(), "sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper")
			fmt.Fprintln(s.Stderr(), "sudo: a password is required")
			_ = s.Exit(1)
			return
		}
		i := 0
		for i < len(argv) && argv[i] != "--" {
			i++
		}
		if i+3 >= len(argv)+1 || argv[i+1] != "sh" || argv[i+2] != "-c" {
			fmt.Fprintln(s.Stderr(), "fake sudo: unexpected command line")
			_ = s.Exit(2)
			return
		}
		runProc(s, argv[i+2:], nil, false)
	}
	return rootServer(t, serverOpts{handler: handler})
}

func TestSudoWrapping(t *testing.T) {
	srv, k := sudoServer(t, true)
	ctx := ctxT(t, 10*time.Second)
	script := "echo \"it's $((1+1))\"; cat"

	p, _ := newTestPool(t, Config{Auth: Auth{User: "deploy", PrivateKey: k.pem}})
	h := mustHost(t, p, srv.target())
	r, err := h.Run(ctx, remote.Cmd{Command: script, Stdin: []byte("stdin passes sudo")})
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Stdout) != "it's 2\nstdin passes sudo" {
		t.Fatalf("stdout %q", r.Stdout)
	}
	if _, err := h.Run(ctx, remote.Cmd{Command: "true", AsUser: "www-data"}); err != nil {
		t.Fatal(err)
	}
	// uploads go through sudo too
	path := filepath.Join(t.TempDir(), "f")
	if changed, err := h.Upload(ctx, remote.File{Path: path, Content: []byte("via sudo")}); err != nil || !changed {
		t.Fatalf("upload: %v %v", changed, err)
	}

	pr, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: k.pem}})
	hr := mustHost(t, pr, srv.target())
	runOK(t, hr, script)
	if _, err := hr.Run(ctx, remote.Cmd{Command: "true", AsUser: "www-data"}); err != nil {
		t.Fatal(err)
	}

	cmds := srv.getCommands()
	wrapper := remote.Quote(sudoWrapper) + " mohd "
	want := []string{
		`sudo -n -- sh -c ` + wrapper + `'echo "it'\''s $((1+1))"; cat'`,
		`sudo -n -H -u www-data -- sh -c ` + wrapper + `true`,
	}
	for i, w := range want {
		if cmds[i] != w {
			t.Errorf("command %d = %q, want %q", i, cmds[i], w)
		}
	}
	for _, c := range cmds[2:4] { // upload inspect + write
		if !strings.HasPrefix(c, "sudo -n -- sh -c ") {
			t.Errorf("upload command not through sudo: %q", c)
		}
	}
	if cmds[len(cmds)-2] != script || cmds[len(cmds)-1] != want[1] {
		t.Errorf("root commands: %q", cmds[len(cmds)-2:])
	}
	if got := string(mustRead(t, path)); got != "via sudo" {
		t.Fatalf("uploaded %q", got)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Cancelling a command run through sudo stops all of it: sudo relays the
// signal to its direct child only (the fake does the same), so the wrapper
// must take the command's children down with it.
func TestSudoCancelStopsChildren(t *testing.T) {
	srv, k := sudoServer(t, true)
	p, _ := newTestPool(t, Config{Auth: Auth{User: "deploy", PrivateKey: k.pem}})
	h := mustHost(t, p, srv.target())
	runOK(t, h, "true") // connect first
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// the child writes its pid, then becomes "sleep 30"; "; true" keeps the
	// outer shell from exec'ing it
	_, err := h.Run(ctx, remote.Cmd{Command: "sh -c 'echo $$ > " + pidFile + "; exec sleep 30'; true"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	pid := strings.TrimSpace(string(mustRead(t, pidFile)))
	alive := func() bool {
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		// a zombie (state Z) has exited
		return err == nil && !strings.Contains(string(st), ") Z ")
	}
	deadline := time.Now().Add(3 * time.Second)
	for alive() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive() {
		_ = exec.Command("kill", pid).Run()
		t.Fatalf("the cancelled command's child (pid %s) still runs", pid)
	}
}

// A connection whose server stops answering (frozen VM) must not make
// Run or Lock outlive their context while they open a session.
func TestHungConnectionHonoursContext(t *testing.T) {
	user := newKey(t, "user")
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}})
	proxy := newFreezeProxy(t, srv.addr)
	port := proxy.ln.Addr().(*net.TCPAddr).Port
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}, KeepaliveInterval: -1})
	h := mustHost(t, p, Target{Host: "127.0.0.1", Port: port, HostKey: srv.hostKeyLine()})
	runOK(t, h, "true")
	close(proxy.frozen)
	for _, op := range []struct {
		name string
		call func(context.Context) error
	}{
		{"Run", func(ctx context.Context) error { _, err := h.Run(ctx, remote.Cmd{Command: "true"}); return err }},
		{"Lock", func(ctx context.Context) error { _, err := h.Lock(ctx, "x"); return err }},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		errc := make(chan error, 1)
		go func() { errc <- op.call(ctx) }()
		select {
		case err := <-errc:
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), h.name) {
				t.Errorf("%s: got %v", op.name, err)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s on a hung connection ignores its context", op.name)
		}
		cancel()
	}
	// the abandoned session opens give their tokens back once the
	// connection is closed
	_ = p.Close()
	deadline := time.Now().Add(3 * time.Second)
	for len(h.slot.sem) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(h.slot.sem); n != 0 {
		t.Fatalf("%d session tokens leaked", n)
	}
}

func TestSudoPasswordRequired(t *testing.T) {
	srv, k := sudoServer(t, false)
	p, _ := newTestPool(t, Config{Auth: Auth{User: "deploy", PrivateKey: k.pem}})
	h := mustHost(t, p, srv.target())
	_, err := h.Run(ctxT(t, 10*time.Second), remote.Cmd{Command: "apt-get update", Desc: "refresh packages"})
	if !errors.Is(err, remote.ErrSudoPasswordRequired) {
		t.Fatalf("want ErrSudoPasswordRequired, got %v", err)
	}
	for _, want := range []string{"NOPASSWD", `"deploy"`, "/etc/sudoers.d/deploy", `step "refresh packages"`, "sudo: a password is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// the same failure text from a command not run through sudo is not reclassified
	pr, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: k.pem}})
	_, err = mustHost(t, pr, srv.target()).Run(ctxT(t, 10*time.Second), remote.Cmd{Command: "echo 'sudo: a password is required' >&2; exit 1"})
	if err == nil || errors.Is(err, remote.ErrSudoPasswordRequired) {
		t.Fatalf("got %v", err)
	}
	// Lock reports it as well
	_, err = h.Lock(ctxT(t, 10*time.Second), "x")
	if !errors.Is(err, remote.ErrSudoPasswordRequired) {
		t.Fatalf("Lock: want ErrSudoPasswordRequired, got %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	key := newKey(t, "k")
	enc := encryptedKey(t)
	ca := newKey(t, "ca")
	otherCert := signCert(t, ca, newKey(t, "other").pub, ssh.UserCert, "root")
	hostCert := signCert(t, ca, key.pub, ssh.HostCert, "h")
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no user", Config{Auth: Auth{PrivateKey: key.pem}}, "user is required"},
		{"no auth", Config{Auth: Auth{User: "root"}}, "no authentication method"},
		{"bad key", Config{Auth: Auth{User: "root", PrivateKey: "not a key"}}, "private_key: cannot parse"},
		{"encrypted without passphrase", Config{Auth: Auth{User: "root", PrivateKey: enc.pem}}, "set private_key_passphrase"},
		{"wrong passphrase", Config{Auth: Auth{User: "root", PrivateKey: enc.pem, Passphrase: "nope"}}, "cannot decrypt"},
		{"bad certificate", Config{Auth: Auth{User: "root", PrivateKey: key.pem, Certificate: "ssh-ed25519-cert-v01@openssh.com AAAA"}}, "certificate: cannot parse"},
		{"plain key as certificate", Config{Auth: Auth{User: "root", PrivateKey: key.pem, Certificate: key.line}}, "want an OpenSSH certificate"},
		{"certificate for another key", Config{Auth: Auth{User: "root", PrivateKey: key.pem, Certificate: certLine(otherCert)}}, "does not certify private_key"},
		{"host certificate as user certificate", Config{Auth: Auth{User: "root", PrivateKey: key.pem, Certificate: certLine(hostCert)}}, "want a user certificate"},
		{"agent without socket", Config{Auth: Auth{User: "root", Agent: true}}, "no agent socket"},
		{"bad known_hosts", Config{Auth: Auth{User: "root", PrivateKey: key.pem}, KnownHosts: "garbage line\n"}, "known_hosts"},
		{"bastion without host", Config{Auth: Auth{User: "root", PrivateKey: key.pem}, Bastions: []Hop{{HostKey: key.line}}}, "bastion 1: host is required"},
		{"bastion without host key", Config{Auth: Auth{User: "root", PrivateKey: key.pem}, Bastions: []Hop{{Host: "b"}}}, "bastion 1 (b): no host key"},
		{"bastion bad key", Config{Auth: Auth{User: "root", PrivateKey: key.pem}, Bastions: []Hop{{Host: "b", HostKey: key.line, Auth: Auth{PrivateKey: "junk"}}}}, "bastion 1 (b): private_key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("SSH_AUTH_SOCK", "")
			_, err := NewPool(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("error leaks key material: %v", err)
			}
		})
	}
	p, err := NewPool(Config{Auth: Auth{User: "root", PrivateKey: key.pem}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, tc := range []struct {
		tg   Target
		want string
	}{
		{Target{Host: "h"}, "no host key"},
		{Target{Host: "h", HostKey: "ssh-ed25519 garbage"}, "host_key line 1: cannot parse"},
		{Target{Host: "h", HostKey: certLine(hostCert)}, "is a certificate"},
		{Target{HostKey: key.line}, "host is required"},
		{Target{Host: "h", Port: 70000, HostKey: key.line}, "invalid port"},
	} {
		if _, err := p.Host(tc.tg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Host(%+v): got %v, want %q", tc.tg, err, tc.want)
		}
	}
	if h, err := p.Host(Target{Host: "h", HostKey: key.line}); err != nil || h.Name() != "root@h:22" {
		t.Fatalf("Host: %v %v", h, err)
	}
}

// A database copy is piped from one host to another: stdin and stdout stream, neither is held in memory.
func TestStreams(t *testing.T) {
	srv, k := rootServer(t, serverOpts{})
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: k.pem}})
	h := mustHost(t, p, srv.target())
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var out bytes.Buffer
	r, err := h.Run(ctxT(t, 20*time.Second), remote.Cmd{Command: "cat", StdinStream: bytes.NewReader(payload), StdoutStream: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), payload) {
		t.Fatalf("streamed %d bytes back, want %d", out.Len(), len(payload))
	}
	if len(r.Stdout) != 0 {
		t.Fatalf("Result.Stdout holds %d bytes although stdout was streamed", len(r.Stdout))
	}
}
