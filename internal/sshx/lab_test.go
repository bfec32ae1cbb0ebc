package sshx_test

// Lab tests: the SSH transport against real OpenSSH (and real sudo, flock,
// systemd) on Debian 12 hosts started by internal/lab. They need the Docker
// engine and the lab's base image; `go test -short` skips them.
//
//	go test ./internal/sshx/ -run TestLab -v -count=1 -timeout 10m
//
// Every test starts its own lab (a private network and its hosts, removed
// when the test ends) and bounds every call with a context: a paused or
// disconnected host never answers, so nothing may wait without a deadline.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/remote"
	"github.com/mohd-dev/mohd/internal/sshx"
)

// ---- helpers ----

// labLog records a pool's log entries; a failed test prints them.
type labLog struct {
	mu      sync.Mutex
	entries []labEntry
}

type labEntry struct {
	at           time.Time
	level, msg   string
	fieldsString string
}

func (l *labLog) add(level, msg string, fields map[string]any) {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, fields[k])
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, labEntry{at: time.Now(), level: level, msg: msg, fieldsString: b.String()})
}

func (l *labLog) Debug(msg string, fields map[string]any) { l.add("DEBUG", msg, fields) }
func (l *labLog) Info(msg string, fields map[string]any)  { l.add("INFO", msg, fields) }
func (l *labLog) Warn(msg string, fields map[string]any)  { l.add("WARN", msg, fields) }

// count returns how many entries have exactly msg.
func (l *labLog) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.entries {
		if e.msg == msg {
			n++
		}
	}
	return n
}

func (l *labLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.entries {
		fmt.Fprintf(&b, "%s %-5s %s%s\n", e.at.Format("15:04:05.000"), e.level, e.msg, e.fieldsString)
	}
	return b.String()
}

// newPool creates a pool logging into a labLog; it is closed when the test
// ends, and its log is printed if the test failed.
func newPool(t *testing.T, cfg sshx.Config) (*sshx.Pool, *labLog) {
	t.Helper()
	log := &labLog{}
	cfg.Logger = log
	p, err := sshx.NewPool(cfg)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() {
		_ = p.Close()
		if t.Failed() {
			t.Logf("pool log:\n%s", log)
		}
	})
	return p, log
}

// cloudUser is the lab's non-root cloud user with its key, as a user would
// configure the provider's ssh block.
func cloudUser(l *lab.Lab) sshx.Auth {
	return sshx.Auth{User: l.User(), PrivateKey: string(l.PrivateKey())}
}

func target(h *lab.Host) sshx.Target {
	return sshx.Target{Host: h.Addr, Port: h.Port, HostKey: h.HostKey}
}

func mustHost(t *testing.T, p *sshx.Pool, tg sshx.Target) remote.Host {
	t.Helper()
	h, err := p.Host(tg)
	if err != nil {
		t.Fatalf("Host(%+v): %v", tg, err)
	}
	return h
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// run runs c over SSH and returns its trimmed stdout, failing the test on
// any error.
func run(t *testing.T, ctx context.Context, h remote.Host, c remote.Cmd) string {
	t.Helper()
	r, err := h.Run(ctx, c)
	if err != nil {
		t.Fatalf("Run %q on %s: %v", c.Command, h.Name(), err)
	}
	return strings.TrimSpace(string(r.Stdout))
}

// rootExec runs script as root on h out of band (docker exec), for setup
// and assertions.
func rootExec(t *testing.T, h *lab.Host, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h.Exec(ctx, script)
	if err != nil {
		t.Fatalf("exec on %s: %v", h.Name, err)
	}
	return out
}

// eventually polls check every 200ms until it succeeds or d passes.
func eventually(t *testing.T, d time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func fingerprint(t *testing.T, authorizedKey string) string {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		t.Fatalf("parse %q: %v", authorizedKey, err)
	}
	return ssh.FingerprintSHA256(k)
}

// ---- 1. sudo ----

func TestLabSudo(t *testing.T) {
	l := labtest.New(t)
	h := labtest.Start(t, l, lab.HostSpec{Name: "sudo"})[0]
	ctx := ctxT(t, 2*time.Minute)
	uid := rootExec(t, h, "id -u "+h.User)
	if uid == "0" || uid == "" {
		t.Fatalf("cloud user %s has uid %q", h.User, uid)
	}

	// SudoAuto: a non-root login user runs everything through sudo -n.
	auto, _ := newPool(t, sshx.Config{Auth: cloudUser(l)})
	ha := mustHost(t, auto, target(h))
	if got := run(t, ctx, ha, remote.Cmd{Command: "id -u"}); got != "0" {
		t.Fatalf("SudoAuto as %s: id -u = %q, want 0", h.User, got)
	}
	// stdin passes through sudo
	if got := run(t, ctx, ha, remote.Cmd{Command: "cat", Stdin: []byte("through sudo\n")}); got != "through sudo" {
		t.Fatalf("stdin through sudo: got %q", got)
	}
	if got := run(t, ctx, ha, remote.Cmd{Command: "id -un", AsUser: "nobody"}); got != "nobody" {
		t.Fatalf("AsUser nobody: id -un = %q", got)
	}

	// Exit code, stdout and stderr come through sudo unchanged.
	r, err := ha.Run(ctx, remote.Cmd{Command: "echo out; echo err >&2; exit 7"})
	var xe *remote.ExitError
	if !errors.As(err, &xe) || xe.ExitCode != 7 || r.ExitCode != 7 || string(r.Stdout) != "out\n" || string(r.Stderr) != "err\n" {
		t.Fatalf("exit 7 through sudo: result %+v, error %v", r, err)
	}

	// Cancelling a command run through sudo stops all of it, not just its
	// shell (sudo relays the signal to its direct child only).
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = ha.Run(cctx, remote.Cmd{Command: "sleep 300; touch /tmp/mohd-finished"})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled Run: got %v", err)
	}
	eventually(t, 5*time.Second, "cancelled command's children gone", func() error {
		out, _ := h.Exec(ctx, "pgrep -a -x sleep || true")
		if out != "" {
			return fmt.Errorf("still running: %s", out)
		}
		return nil
	})

	// SudoNever: the login user itself.
	never, _ := newPool(t, sshx.Config{Auth: cloudUser(l), Sudo: sshx.SudoNever})
	hn := mustHost(t, never, target(h))
	if got := run(t, ctx, hn, remote.Cmd{Command: "id -u"}); got != uid {
		t.Fatalf("SudoNever: id -u = %q, want %s's uid %s", got, h.User, uid)
	}
	if got := run(t, ctx, hn, remote.Cmd{Command: "id -u", AsUser: "root"}); got != "0" {
		t.Fatalf("SudoNever with AsUser root: id -u = %q, want 0", got)
	}

	// A user whose sudo needs a password (no NOPASSWD).
	const pwUser = "mohdpw"
	rootExec(t, h, fmt.Sprintf(`set -e
useradd --create-home --shell /bin/bash %[1]s
echo '%[1]s:correct-horse-battery-staple' | chpasswd
install -d -m 700 -o %[1]s -g %[1]s /home/%[1]s/.ssh
echo %[2]s > /home/%[1]s/.ssh/authorized_keys
chown %[1]s:%[1]s /home/%[1]s/.ssh/authorized_keys
chmod 600 /home/%[1]s/.ssh/authorized_keys
echo '%[1]s ALL=(ALL:ALL) ALL' > /etc/sudoers.d/%[1]s
chmod 440 /etc/sudoers.d/%[1]s
visudo -c >/dev/null`, pwUser, remote.Quote(l.PublicKey())))
	pwAuth := sshx.Auth{User: pwUser, PrivateKey: string(l.PrivateKey())}

	// The login itself works: the failure below is sudo's, not SSH's.
	pwNever, _ := newPool(t, sshx.Config{Auth: pwAuth, Sudo: sshx.SudoNever})
	if got := run(t, ctx, mustHost(t, pwNever, target(h)), remote.Cmd{Command: "id -un"}); got != pwUser {
		t.Fatalf("login as %s: id -un = %q", pwUser, got)
	}

	pw, _ := newPool(t, sshx.Config{Auth: pwAuth})
	hp := mustHost(t, pw, target(h))
	checkPasswordRequired := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, remote.ErrSudoPasswordRequired) {
			t.Fatalf("%s as %s (sudo without NOPASSWD): got %v, want ErrSudoPasswordRequired", what, pwUser, err)
		}
		msg := err.Error()
		for _, want := range []string{"NOPASSWD", "/etc/sudoers.d/" + pwUser, pwUser + " ALL=(ALL) NOPASSWD: ALL", h.Addr} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: message does not contain %q:\n%s", what, want, msg)
			}
		}
	}
	_, err = hp.Run(ctx, remote.Cmd{Command: "id -u", Desc: "who am i"})
	checkPasswordRequired("Run", err)
	var ee *remote.ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 1 || ee.Step != "who am i" {
		t.Fatalf("Run: want *remote.ExitError with exit code 1 and step %q, got %#v", "who am i", err)
	}
	t.Logf("sudo without NOPASSWD: %v", err)
	_, err = hp.Upload(ctx, remote.File{Path: "/etc/mohd-sudo-test", Content: []byte("x")})
	checkPasswordRequired("Upload", err)
	_, err = hp.Lock(ctx, "sudo-test")
	checkPasswordRequired("Lock", err)
	if out := rootExec(t, h, "ls /etc/mohd-sudo-test /run/lock/mohd-sudo-test.lock 2>/dev/null || true"); out != "" {
		t.Fatalf("a failed sudo still created files: %s", out)
	}

	// A user who is not in sudoers at all: sudo -n answers the same way
	// (it would ask for the password before consulting the policy), and
	// the hint still says what to configure.
	const noUser = "mohdnosudo"
	rootExec(t, h, fmt.Sprintf(`set -e
useradd --create-home --shell /bin/bash %[1]s
install -d -m 700 -o %[1]s -g %[1]s /home/%[1]s/.ssh
echo %[2]s > /home/%[1]s/.ssh/authorized_keys
chown %[1]s:%[1]s /home/%[1]s/.ssh/authorized_keys`, noUser, remote.Quote(l.PublicKey())))
	no, _ := newPool(t, sshx.Config{Auth: sshx.Auth{User: noUser, PrivateKey: string(l.PrivateKey())}})
	_, err = mustHost(t, no, target(h)).Run(ctx, remote.Cmd{Command: "id -u"})
	if !errors.Is(err, remote.ErrSudoPasswordRequired) && !errors.Is(err, remote.ErrSudoNotAllowed) {
		t.Fatalf("user not in sudoers: got %v, want a classified sudo error", err)
	}
	if !strings.Contains(err.Error(), noUser+" ALL=(ALL) NOPASSWD: ALL") {
		t.Fatalf("user not in sudoers: message does not say what to configure:\n%v", err)
	}
}

// ---- 2. atomic upload ----

func TestLabUpload(t *testing.T) {
	l := labtest.New(t)
	h := labtest.Start(t, l, lab.HostSpec{Name: "upload"})[0]
	ctx := ctxT(t, 2*time.Minute)
	p, log := newPool(t, sshx.Config{Auth: cloudUser(l)})
	hu := mustHost(t, p, target(h))

	const dir = "/etc/mohd-lab/conf.d" // neither directory exists yet
	const path = dir + "/haproxy.cfg"
	if out := rootExec(t, h, "test -e /etc/mohd-lab && echo exists || true"); out != "" {
		t.Fatal("/etc/mohd-lab exists before the test")
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	onHost := func(p string) (meta, sha string, inode string) {
		out := rootExec(t, h, fmt.Sprintf("stat -c '%%a %%U:%%G %%i' %s && sha256sum < %[1]s", p))
		f := strings.Fields(out)
		if len(f) < 4 {
			t.Fatalf("stat %s: %q", p, out)
		}
		return f[0] + " " + f[1], f[3], f[2]
	}
	dirEntries := func() string { return rootExec(t, h, "ls -A "+dir) }
	upload := func(f remote.File, want bool) {
		t.Helper()
		changed, err := hu.Upload(ctx, f)
		if err != nil {
			t.Fatalf("Upload %s: %v", f.Path, err)
		}
		if changed != want {
			t.Fatalf("Upload %s: changed = %v, want %v", f.Path, changed, want)
		}
	}

	v1 := []byte("global\n    maxconn 100\n")
	f := remote.File{Path: path, Content: v1, Mode: 0o640, Owner: "root", Group: "adm", MkdirParents: true}
	upload(f, true)
	meta, sha, inode1 := onHost(path)
	if meta != "640 root:adm" || sha != sum(v1) {
		t.Fatalf("after first upload: %s sha256 %s, want 640 root:adm sha256 %s", meta, sha, sum(v1))
	}
	if got := rootExec(t, h, "stat -c '%a %U:%G' /etc/mohd-lab "+dir); got != "755 root:root\n755 root:root" {
		t.Fatalf("created parents: %q, want 755 root:root", got)
	}

	// identical: nothing written
	upload(f, false)
	if _, _, inode := onHost(path); inode != inode1 {
		t.Fatal("an unchanged upload rewrote the file")
	}
	if log.count("ssh: upload unchanged") != 1 {
		t.Fatalf("no 'upload unchanged' log entry")
	}

	// new content: replaced by rename (a new inode), never written in place
	v2 := []byte("global\n    maxconn 200\n")
	f.Content = v2
	upload(f, true)
	meta, sha, inode2 := onHost(path)
	if meta != "640 root:adm" || sha != sum(v2) {
		t.Fatalf("after second upload: %s sha256 %s", meta, sha)
	}
	if inode2 == inode1 {
		t.Fatal("changed content was written in place, not renamed over the file")
	}
	if got := dirEntries(); got != "haproxy.cfg" {
		t.Fatalf("directory holds %q, want only haproxy.cfg (temp files left?)", got)
	}

	// mode only: fixed without rewriting
	f.Mode = 0o600
	upload(f, true)
	if meta, sha, inode := onHost(path); meta != "600 root:adm" || sha != sum(v2) || inode != inode2 {
		t.Fatalf("after mode change: %s sha256 %s inode %s (was %s)", meta, sha, inode, inode2)
	}
	upload(f, false)

	// 1 MiB of binary content through stdin and sudo
	big := make([]byte, 1<<20)
	_, _ = rand.Read(big)
	bf := remote.File{Path: dir + "/big.bin", Content: big, Mode: 0o644}
	upload(bf, true)
	if meta, sha, _ := onHost(bf.Path); meta != "644 root:root" || sha != sum(big) {
		t.Fatalf("big upload: %s sha256 %s", meta, sha)
	}
	upload(bf, false)

	// owned by the login user, in its home
	home := remote.File{Path: "/home/" + h.User + "/mohd.txt", Content: []byte("mine\n"), Mode: 0o600, Owner: h.User, Group: h.User}
	upload(home, true)
	if meta, _, _ := onHost(home.Path); meta != "600 "+h.User+":"+h.User {
		t.Fatalf("home upload: %s", meta)
	}

	// a missing parent without MkdirParents is an error; nothing is created
	_, err := hu.Upload(ctx, remote.File{Path: "/etc/mohd-lab/missing/x.conf", Content: []byte("x")})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing parent: got %v", err)
	}
	if got := rootExec(t, h, "ls -A /etc/mohd-lab"); got != "conf.d" {
		t.Fatalf("/etc/mohd-lab holds %q", got)
	}

	// a failure after the temp file was written (unknown group) leaves
	// neither a temp file nor a changed target
	_, err = hu.Upload(ctx, remote.File{Path: path, Content: []byte("other"), Group: "no-such-group"})
	if err == nil {
		t.Fatal("upload with an unknown group succeeded")
	}
	t.Logf("unknown group: %v", err)
	if got := dirEntries(); got != "big.bin\nhaproxy.cfg" {
		t.Fatalf("after failed upload the directory holds %q (temp file left?)", got)
	}
	if _, sha, _ := onHost(path); sha != sum(v2) {
		t.Fatal("a failed upload changed the target")
	}
}

// ---- 3. lock contention between two processes ----

func TestLabLockContention(t *testing.T) {
	l := labtest.New(t)
	h := labtest.Start(t, l, lab.HostSpec{Name: "lock"})[0]
	ctx := ctxT(t, 2*time.Minute)
	// Two pools: two separate connections, like two terraform processes.
	pa, _ := newPool(t, sshx.Config{Auth: cloudUser(l)})
	pb, _ := newPool(t, sshx.Config{Auth: cloudUser(l)})
	ha, hb := mustHost(t, pa, target(h)), mustHost(t, pb, target(h))
	const lockFile = "/run/lock/mohd-haproxy.lock"
	heldOnHost := func() bool {
		// flock -n fails (exit 1) while someone holds the lock
		_, err := h.Exec(ctx, "flock -n "+lockFile+" true")
		return err != nil
	}
	waiters := func() string {
		out, _ := h.Exec(ctx, "pgrep -a -x flock || true")
		return out
	}

	unlockA, err := ha.Lock(ctx, "haproxy")
	if err != nil {
		t.Fatalf("A: Lock: %v", err)
	}
	if !heldOnHost() {
		t.Fatal("A holds the lock but flock -n on the host succeeds")
	}

	// B with a deadline gives up while A holds the lock.
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	start := time.Now()
	_, err = hb.Lock(tctx, "haproxy")
	cancel()
	took := time.Since(start)
	if err == nil {
		t.Fatal("B took the lock while A held it")
	}
	if took < 1900*time.Millisecond || took > 9*time.Second {
		t.Fatalf("B's Lock with a 2s deadline returned after %s: %v", took, err)
	}
	if !strings.Contains(err.Error(), h.Addr) || !strings.Contains(err.Error(), "haproxy") {
		t.Fatalf("error does not name host and lock: %v", err)
	}
	t.Logf("B with a 2s deadline: %s: %v", took.Round(time.Millisecond), err)

	eventually(t, 5*time.Second, "B's timed-out waiter gone from the host", func() error {
		if w := waiters(); w != "" {
			return fmt.Errorf("still waiting: %s", w)
		}
		return nil
	})

	// B cancelled (no deadline, so the remote flock waits without -w):
	// the remote waiter is terminated.
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		u, err := hb.Lock(cctx, "haproxy")
		if err == nil {
			_ = u()
			err = errors.New("got the lock")
		}
		errc <- err
	}()
	eventually(t, 10*time.Second, "B's remote flock waiter running", func() error {
		if w := waiters(); w == "" {
			return errors.New("no flock process")
		}
		return nil
	})
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Lock: got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled Lock did not return within 10s")
	}
	eventually(t, 5*time.Second, "cancelled waiter terminated on the host", func() error {
		if w := waiters(); w != "" {
			return fmt.Errorf("still waiting: %s", w)
		}
		return nil
	})

	// B blocks while A holds the lock, and gets it soon after A unlocks.
	type result struct {
		unlock func() error
		err    error
	}
	got := make(chan result, 1)
	go func() {
		u, err := hb.Lock(ctx, "haproxy")
		got <- result{u, err}
	}()
	select {
	case r := <-got:
		t.Fatalf("B's Lock returned while A holds the lock: %v", r.err)
	case <-time.After(1500 * time.Millisecond):
	}
	released := time.Now()
	if err := unlockA(); err != nil {
		t.Fatalf("A: unlock: %v", err)
	}
	var rb result
	select {
	case rb = <-got:
		if rb.err != nil {
			t.Fatalf("B: Lock after A unlocked: %v", rb.err)
		}
		t.Logf("B got the lock %s after A unlocked", time.Since(released).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("B did not get the lock within 5s of A unlocking")
	}
	if err := unlockA(); err != nil { // safe to call twice
		t.Fatalf("A: second unlock: %v", err)
	}
	if !heldOnHost() {
		t.Fatal("B holds the lock but flock -n on the host succeeds")
	}

	// The holder's connection dies (the process crashed): the lock is
	// released by the host, A gets it.
	_ = pb.Close()
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	unlockA, err = ha.Lock(actx, "haproxy")
	if err != nil {
		t.Fatalf("A: Lock after B's connection closed: %v", err)
	}
	if err := unlockA(); err != nil {
		t.Fatalf("A: unlock: %v", err)
	}
	_ = rb.unlock() // after its pool closed: must not hang or panic
	eventually(t, 5*time.Second, "lock free on the host", func() error {
		if heldOnHost() {
			return errors.New("still held")
		}
		return nil
	})
}

// ---- 4. a rebooting host ----

func TestLabRebootRetried(t *testing.T) {
	l := labtest.New(t)
	h := labtest.Start(t, l, lab.HostSpec{Name: "reboot"})[0]
	ctx := ctxT(t, 4*time.Minute)
	p, log := newPool(t, sshx.Config{Auth: cloudUser(l), ConnectTimeout: 2 * time.Minute})
	hr := mustHost(t, p, target(h))
	const marker = "/run/mohd-lab-boot-marker" // /run is a tmpfs: gone after a reboot
	markerGone := remote.Cmd{Command: "cat " + marker + " 2>/dev/null || echo gone"}
	run(t, ctx, hr, remote.Cmd{Command: "echo booted > " + marker})
	if got := run(t, ctx, hr, markerGone); got != "booted" {
		t.Fatalf("marker: %q", got)
	}

	// Clean reboot: Runs keep coming while systemd shuts the host down and
	// boots it again. One in flight when sshd kills its session may fail
	// (commands are never re-run); none may fail to connect: those issued
	// while sshd is down wait for it.
	restarted := make(chan error, 1)
	go func() {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		restarted <- h.Restart(rctx)
	}()
	start := time.Now()
	var interrupted []error
	for {
		if time.Since(start) > 2*time.Minute {
			t.Fatal("the host did not come back from the restart within 2m")
		}
		r, err := hr.Run(ctx, markerGone)
		var ce *sshx.ConnectError
		if errors.As(err, &ce) {
			t.Fatalf("Run during the restart could not connect: %v", err)
		}
		if err != nil {
			interrupted = append(interrupted, err)
			if len(interrupted) > 2 {
				t.Fatalf("Runs during the restart keep failing: %v", interrupted)
			}
			continue
		}
		if strings.TrimSpace(string(r.Stdout)) == "gone" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("Runs during the restart reached the new boot after %s (%d interrupted in flight: %v)",
		time.Since(start).Round(time.Millisecond), len(interrupted), interrupted)
	if err := <-restarted; err != nil {
		t.Fatalf("restart: %v", err)
	}
	if n := log.count("ssh: connected"); n != 2 {
		t.Fatalf("%d connections after the restart, want 2 (one re-dial)", n)
	}
	// (Whether a dial had to be retried depends on timing: a SYN sent
	// while the host is between stop and start may simply be
	// retransmitted until it answers.)
	t.Logf("connect attempts retried during the restart: %d", log.count("ssh: connect failed, retrying"))

	// Power cut: killed, no shutdown; a Run issued while the host is off
	// waits for it and succeeds once it is booted again, on the new boot.
	run(t, ctx, hr, remote.Cmd{Command: "echo booted > " + marker})
	kctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := h.Kill(kctx); err != nil {
		t.Fatalf("kill: %v", err)
	}
	booted := make(chan error, 1)
	go func() {
		time.Sleep(3 * time.Second)
		bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		booted <- h.Boot(bctx)
	}()
	start = time.Now()
	if got := run(t, ctx, hr, markerGone); got != "gone" {
		t.Fatalf("marker after kill and boot: %q (ran on the old boot?)", got)
	}
	took := time.Since(start)
	if err := <-booted; err != nil {
		t.Fatalf("boot: %v", err)
	}
	if took < 3*time.Second {
		t.Fatalf("Run returned after %s, before the host was booted", took)
	}
	t.Logf("Run issued while the host was off succeeded after %s", took.Round(time.Millisecond))
	if n := log.count("ssh: connected"); n != 3 {
		t.Fatalf("%d connections after kill and boot, want 3", n)
	}
	if got := run(t, ctx, hr, remote.Cmd{Command: "hostname"}); got != "reboot" {
		t.Fatalf("hostname: %q", got)
	}
}

// ---- 5. a host cut off mid-command ----

func TestLabDisconnectMidCommand(t *testing.T) {
	l := labtest.New(t)
	h := labtest.Start(t, l, lab.HostSpec{Name: "cut"})[0]
	ctx := ctxT(t, 3*time.Minute)
	p, log := newPool(t, sshx.Config{Auth: cloudUser(l), KeepaliveInterval: 2 * time.Second, ConnectTimeout: time.Minute})
	hc := mustHost(t, p, target(h))
	run(t, ctx, hc, remote.Cmd{Command: "true"})

	type result struct {
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		start := time.Now()
		_, err := hc.Run(rctx, remote.Cmd{Command: "sleep 60", Desc: "long step"})
		done <- result{err, time.Since(start)}
	}()
	eventually(t, 10*time.Second, "remote sleep running", func() error {
		_, err := h.Exec(ctx, "pgrep -x sleep")
		return err
	})
	if err := h.Disconnect(ctx); err != nil {
		t.Fatalf("disconnect: %v", err)
	}
	reconnected := false
	t.Cleanup(func() {
		if !reconnected {
			_ = h.Reconnect(context.Background())
		}
	})
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run on a disconnected host hangs past its 20s deadline")
	}
	if r.err == nil {
		t.Fatal("Run of sleep 60 on a disconnected host succeeded")
	}
	if errors.Is(r.err, context.DeadlineExceeded) || r.took >= 20*time.Second {
		t.Fatalf("Run returned only at its deadline (%s): %v", r.took, r.err)
	}
	if !strings.Contains(r.err.Error(), h.Addr) || !strings.Contains(r.err.Error(), "long step") {
		t.Fatalf("error does not name the host %s and the step: %v", h.Addr, r.err)
	}
	t.Logf("Run cut off: returned after %s: %v", r.took.Round(time.Millisecond), r.err)
	if log.count("ssh: keepalive not answered, closing connection") == 0 {
		t.Fatal("the connection was not closed by the keepalive")
	}

	// While cut off, a new Run retries connecting and ends with its
	// context, naming the host.
	sctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	start := time.Now()
	_, err := hc.Run(sctx, remote.Cmd{Command: "true"})
	cancel()
	took := time.Since(start)
	var ce *sshx.ConnectError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), h.Addr) || took > 8*time.Second {
		t.Fatalf("Run while cut off: after %s: %v", took, err)
	}
	t.Logf("Run while cut off: after %s: %v", took.Round(time.Millisecond), err)

	if err := h.Reconnect(ctx); err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	reconnected = true
	if got := run(t, ctx, hc, remote.Cmd{Command: "hostname"}); got != "cut" {
		t.Fatalf("hostname after reconnect: %q", got)
	}
	if n := log.count("ssh: connected"); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// ---- 5b. a hung host (paused: TCP stays up, nothing answers) ----

// A connection that is established but no longer answered must not make a
// Run outlive its context (the default keepalive would notice only after
// up to a minute).
func TestLabHungHostHonoursContext(t *testing.T) {
	l := labtest.New(t)
	h := labtest.Start(t, l, lab.HostSpec{Name: "hung"})[0]
	ctx := ctxT(t, 2*time.Minute)
	p, _ := newPool(t, sshx.Config{Auth: cloudUser(l)}) // default keepalive: 30s
	hh := mustHost(t, p, target(h))
	run(t, ctx, hh, remote.Cmd{Command: "true"})

	if err := h.Pause(ctx); err != nil {
		t.Fatalf("pause: %v", err)
	}
	paused := true
	t.Cleanup(func() {
		if paused {
			_ = h.Unpause(context.Background())
		}
	})
	for _, op := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Run", func(ctx context.Context) error {
			_, err := hh.Run(ctx, remote.Cmd{Command: "true"})
			return err
		}},
		{"Upload", func(ctx context.Context) error {
			_, err := hh.Upload(ctx, remote.File{Path: "/tmp/x", Content: []byte("x")})
			return err
		}},
		{"Lock", func(ctx context.Context) error {
			u, err := hh.Lock(ctx, "hung")
			if err == nil {
				_ = u()
			}
			return err
		}},
	} {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		errc := make(chan error, 1)
		start := time.Now()
		go func() { errc <- op.call(rctx) }()
		select {
		case err := <-errc:
			took := time.Since(start)
			if err == nil || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s on a hung host: got %v, want a deadline error", op.name, err)
			} else if !strings.Contains(err.Error(), h.Addr) {
				t.Errorf("%s: error does not name the host: %v", op.name, err)
			}
			t.Logf("%s on a hung host with a 3s deadline returned after %s: %v", op.name, took.Round(time.Millisecond), err)
		case <-time.After(10 * time.Second):
			t.Errorf("%s on a hung host ignores its 3s deadline (still blocked after 10s)", op.name)
		}
		cancel()
	}
	if err := h.Unpause(ctx); err != nil {
		t.Fatalf("unpause: %v", err)
	}
	paused = false
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if got := run(t, rctx, hh, remote.Cmd{Command: "hostname"}); got != "hung" {
		t.Fatalf("hostname after unpause: %q", got)
	}
}

// ---- 6. host key verification ----

func TestLabHostKeyVerification(t *testing.T) {
	l := labtest.New(t)
	hosts := labtest.Start(t, l, lab.HostSpec{Name: "a"}, lab.HostSpec{Name: "b"})
	a, b := hosts[0], hosts[1]
	ctx := ctxT(t, 2*time.Minute)
	fpA, fpB := fingerprint(t, a.HostKey), fingerprint(t, b.HostKey)
	if fpA == fpB {
		t.Fatal("two hosts share a host key")
	}
	hostname := func(cfg sshx.Config, tg sshx.Target) (string, error) {
		cfg.Auth = cloudUser(l)
		p, _ := newPool(t, cfg)
		r, err := mustHost(t, p, tg).Run(ctx, remote.Cmd{Command: "hostname"})
		return strings.TrimSpace(string(r.Stdout)), err
	}
	// Without a key of a's to ask for, the server presents the type it
	// prefers among those the client supports (ECDSA, say).
	var fpsA []string
	for _, k := range strings.Split(rootExec(t, a, "cut -d' ' -f1,2 /etc/ssh/ssh_host_*_key.pub"), "\n") {
		fpsA = append(fpsA, fingerprint(t, k))
	}
	mismatch := func(what string, err error, took time.Duration, wantFPs ...string) {
		t.Helper()
		var hk *sshx.HostKeyError
		if !errors.As(err, &hk) {
			t.Fatalf("%s: got %v, want *sshx.HostKeyError", what, err)
		}
		var ce *sshx.ConnectError
		if !errors.As(err, &ce) || ce.Attempts != 1 || took > 10*time.Second {
			t.Fatalf("%s: a host key failure must not be retried (after %s): %v", what, took, err)
		}
		gotFP := strings.Fields(hk.Got)[0]
		if !strings.Contains(strings.Join(fpsA, " "), gotFP) {
			t.Fatalf("%s: Got = %q, want one of a's keys %s", what, hk.Got, fpsA)
		}
		if len(wantFPs) > 0 && gotFP != fpA {
			t.Fatalf("%s: the server presented %s, not the Ed25519 key host_key/known_hosts asked for", what, hk.Got)
		}
		for _, fp := range append([]string{gotFP}, wantFPs...) {
			if !strings.Contains(err.Error(), fp) {
				t.Fatalf("%s: message lacks %s:\n%v", what, fp, err)
			}
		}
		t.Logf("%s: %v", what, err)
	}

	// host_key of another host
	start := time.Now()
	_, err := hostname(sshx.Config{}, sshx.Target{Host: a.Addr, HostKey: b.HostKey})
	mismatch("host_key of b for a", err, time.Since(start), fpB)
	if !strings.Contains(err.Error(), "MISMATCH") {
		t.Fatalf("message does not say MISMATCH: %v", err)
	}

	// the right host_key; the host's other key types too
	if got, err := hostname(sshx.Config{}, target(a)); err != nil || got != "a" {
		t.Fatalf("right host_key: %q %v", got, err)
	}
	for _, typ := range []string{"rsa", "ecdsa"} {
		key := rootExec(t, a, "cut -d' ' -f1,2 /etc/ssh/ssh_host_"+typ+"_key.pub")
		if got, err := hostname(sshx.Config{}, sshx.Target{Host: a.Addr, HostKey: key}); err != nil || got != "a" {
			t.Fatalf("host_key of type %s: %q %v", typ, got, err)
		}
	}

	// known_hosts "ADDR KEY", plain and hashed
	for _, kh := range []string{
		a.Addr + " " + a.HostKey,
		knownhosts.HashHostname(a.Addr) + " " + a.HostKey,
		b.Addr + " " + b.HostKey + "\n" + a.Addr + " " + a.HostKey + "\n",
	} {
		if got, err := hostname(sshx.Config{KnownHosts: kh}, sshx.Target{Host: a.Addr}); err != nil || got != "a" {
			t.Fatalf("known_hosts %q: %q %v", kh, got, err)
		}
	}

	// known_hosts with another host's key for a
	start = time.Now()
	_, err = hostname(sshx.Config{KnownHosts: a.Addr + " " + b.HostKey}, sshx.Target{Host: a.Addr})
	mismatch("known_hosts with b's key for a", err, time.Since(start), fpB)

	// a not in known_hosts at all
	start = time.Now()
	_, err = hostname(sshx.Config{KnownHosts: b.Addr + " " + b.HostKey}, sshx.Target{Host: a.Addr})
	mismatch("a missing from known_hosts", err, time.Since(start))
	if !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("message does not say the host is unknown: %v", err)
	}
	if bytes.Contains([]byte(err.Error()), []byte(fpB)) {
		t.Fatalf("message offers b's key for a: %v", err)
	}
}
