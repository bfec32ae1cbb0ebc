package sshx

// In-process SSH servers (gliderlabs/ssh on 127.0.0.1:0) and helpers for
// the tests. Commands are executed with the local /bin/sh -c, or by a
// scripted handler.

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
)

// ---- keys ----

type testKey struct {
	signer  ssh.Signer
	pem     string // OpenSSH private key
	comment string
	pub     ssh.PublicKey
	line    string // authorized_keys line
}

func newKey(t testing.TB, comment string) *testKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keyFrom(t, priv, comment, "")
}

func keyFrom(t testing.TB, priv any, comment, passphrase string) *testKey {
	t.Helper()
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase != "" {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, comment, []byte(passphrase))
	} else {
		block, err = ssh.MarshalPrivateKey(priv, comment)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{
		signer: signer, pem: string(pem.EncodeToMemory(block)), pub: signer.PublicKey(), comment: comment,
		line: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))),
	}
}

// newECDSAPEMKey returns a key whose pem is a traditional "EC PRIVATE KEY" PEM.
func newECDSAPEMKey(t testing.TB) *testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := keyFrom(t, priv, "", "")
	der, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	k.pem = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	return k
}

func signCert(t testing.TB, ca *testKey, pub ssh.PublicKey, typ uint32, principals ...string) *ssh.Certificate {
	t.Helper()
	c := &ssh.Certificate{
		Key: pub, CertType: typ, KeyId: "test", ValidPrincipals: principals,
		ValidAfter: uint64(time.Now().Add(-time.Hour).Unix()), ValidBefore: ssh.CertTimeInfinity,
	}
	if typ == ssh.UserCert {
		c.Permissions.Extensions = map[string]string{"permit-pty": ""}
	}
	if err := c.SignCert(rand.Reader, ca.signer); err != nil {
		t.Fatal(err)
	}
	return c
}

func certLine(c *ssh.Certificate) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c)))
}

// ---- logger ----

type logEntry struct {
	level, msg string
	fields     map[string]any
}

type captureLogger struct {
	mu      sync.Mutex
	entries []logEntry
}

func (l *captureLogger) add(level, msg string, f map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, logEntry{level, msg, f})
}
func (l *captureLogger) Debug(msg string, f map[string]any) { l.add("DEBUG", msg, f) }
func (l *captureLogger) Info(msg string, f map[string]any)  { l.add("INFO", msg, f) }
func (l *captureLogger) Warn(msg string, f map[string]any)  { l.add("WARN", msg, f) }

func (l *captureLogger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.entries {
		fmt.Fprintf(&b, "%s %s %v\n", e.level, e.msg, e.fields)
	}
	return b.String()
}

func (l *captureLogger) count(level, msgPrefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.entries {
		if e.level == level && strings.HasPrefix(e.msg, msgPrefix) {
			n++
		}
	}
	return n
}

// ---- server ----

type serverOpts struct {
	hostKeys     []ssh.Signer    // default: one fresh ed25519 key
	authorized   []ssh.PublicKey // accepted user keys
	userCA       ssh.PublicKey   // accepted user certificate authority
	users        []string        // accepted login users (empty: any)
	forwarding   bool            // allow direct-tcpip (bastion)
	sessionLimit int             // reject sessions beyond this per connection (0: none)
	handler      gssh.Handler    // default: exec with /bin/sh -c
	listener     net.Listener    // default: 127.0.0.1:0
}

type testServer struct {
	t       testing.TB
	addr    string
	host    string
	port    int
	hostKey ssh.Signer // first host key
	opts    serverOpts
	srv     *gssh.Server

	conns       atomic.Int32 // SSH connections accepted
	active      atomic.Int32 // open sessions (all connections)
	maxActive   atomic.Int32
	rejected    atomic.Int32 // sessions rejected by sessionLimit
	handlersRun atomic.Int32 // exec handlers currently running
	maxRunning  atomic.Int32 // most exec handlers running at once

	mu       sync.Mutex
	offered  []ssh.PublicKey
	forwards []string
	signals  []string
	commands []string
	users    []string
	netConns []net.Conn
}

func startServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	ts := &testServer{t: t, opts: o}
	if len(o.hostKeys) == 0 {
		o.hostKeys = []ssh.Signer{newKey(t, "host").signer}
		ts.opts = o
	}
	ts.hostKey = o.hostKeys[0]
	ln := o.listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
	}
	ts.addr = ln.Addr().String()
	h, p, _ := net.SplitHostPort(ts.addr)
	ts.host = h
	ts.port, _ = strconv.Atoi(p)

	handler := o.handler
	if handler == nil {
		handler = ts.execHandler
	}
	srv := &gssh.Server{
		Handler: func(s gssh.Session) {
			ts.mu.Lock()
			ts.commands = append(ts.commands, s.RawCommand())
			ts.users = append(ts.users, s.User())
			ts.mu.Unlock()
			handler(s)
		},
		PublicKeyHandler: ts.publicKey,
		ConnCallback: func(ctx gssh.Context, c net.Conn) net.Conn {
			ts.conns.Add(1)
			ts.mu.Lock()
			ts.netConns = append(ts.netConns, c)
			ts.mu.Unlock()
			return c
		},
		ChannelHandlers: map[string]gssh.ChannelHandler{"session": ts.sessionChannel},
	}
	for _, k := range o.hostKeys {
		srv.AddHostKey(k)
	}
	if o.forwarding {
		srv.LocalPortForwardingCallback = func(ctx gssh.Context, host string, port uint32) bool {
			ts.mu.Lock()
			ts.forwards = append(ts.forwards, net.JoinHostPort(host, strconv.Itoa(int(port))))
			ts.mu.Unlock()
			return true
		}
		srv.ChannelHandlers["direct-tcpip"] = gssh.DirectTCPIPHandler
	}
	ts.srv = srv
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ts
}

func (ts *testServer) publicKey(ctx gssh.Context, key gssh.PublicKey) bool {
	ts.mu.Lock()
	ts.offered = append(ts.offered, key)
	ts.mu.Unlock()
	if len(ts.opts.users) > 0 {
		ok := false
		for _, u := range ts.opts.users {
			ok = ok || u == ctx.User()
		}
		if !ok {
			return false
		}
	}
	if cert, isCert := key.(*ssh.Certificate); isCert {
		if ts.opts.userCA == nil {
			return false
		}
		cc := ssh.CertChecker{IsUserAuthority: func(auth ssh.PublicKey) bool { return gssh.KeysEqual(auth, ts.opts.userCA) }}
		_, err := cc.Authenticate(connMeta{user: ctx.User()}, cert)
		return err == nil
	}
	for _, a := range ts.opts.authorized {
		if gssh.KeysEqual(a, key) {
			return true
		}
	}
	return false
}

// connMeta is the minimal ssh.ConnMetadata CertChecker.Authenticate needs.
type connMeta struct {
	ssh.ConnMetadata
	user string
}

func (c connMeta) User() string { return c.user }

func (ts *testServer) sessionChannel(srv *gssh.Server, conn *ssh.ServerConn, ch ssh.NewChannel, ctx gssh.Context) {
	n := ts.active.Add(1)
	defer ts.active.Add(-1)
	if ts.opts.sessionLimit > 0 && int(n) > ts.opts.sessionLimit {
		ts.rejected.Add(1)
		_ = ch.Reject(ssh.ResourceShortage, "too many sessions")
		return
	}
	for {
		m := ts.maxActive.Load()
		if n <= m || ts.maxActive.CompareAndSwap(m, n) {
			break
		}
	}
	gssh.DefaultSessionHandler(srv, conn, ch, ctx)
}

// execHandler runs the command with the local /bin/sh -c in its own
// process group, like sshd; a "signal" request kills the group.
func (ts *testServer) execHandler(s gssh.Session) {
	n := ts.handlersRun.Add(1)
	var once sync.Once
	finished := func() { once.Do(func() { ts.handlersRun.Add(-1) }) }
	defer finished()
	for {
		m := ts.maxRunning.Load()
		if n <= m || ts.maxRunning.CompareAndSwap(m, n) {
			break
		}
	}
	// The command counts as finished before its exit status goes out: the client may start the next
	// command as soon as it has the status, and counting that one while this handler returns would
	// observe more concurrency than the client allowed.
	runSh(exitHook{Session: s, before: finished}, s.RawCommand(), ts.recordSignal)
}

// exitHook calls before just before the session's exit status is sent.
type exitHook struct {
	gssh.Session
	before func()
}

func (e exitHook) Exit(code int) error {
	e.before()
	return e.Session.Exit(code)
}

func runSh(s gssh.Session, command string, onSignal func(string)) {
	runProc(s, []string{"-c", command}, onSignal, true)
}

// runProc runs /bin/sh with args in its own process group. A signal
// request sends SIGTERM to that whole group, like sshd does, or – when
// group is false – to the shell only, like sudo relays a signal to its
// command.
func runProc(s gssh.Session, args []string, onSignal func(string), group bool) {
	cmd := exec.Command("/bin/sh", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = s
	cmd.Stderr = s.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		_ = s.Exit(255)
		return
	}
	sigs := make(chan gssh.Signal, 4)
	s.Signals(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(s.Stderr(), err)
		_ = s.Exit(127)
		return
	}
	go func() {
		_, _ = io.Copy(stdin, s)
		_ = stdin.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			if onSignal != nil {
				onSignal(string(sig))
			}
			if group {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			} else {
				_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
			}
		case err := <-done:
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
				if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
					code = 128 + int(st.Signal())
				}
			} else if err != nil {
				code = 255
			}
			_ = s.Exit(code)
			return
		}
	}
}

func (ts *testServer) recordSignal(sig string) {
	ts.mu.Lock()
	ts.signals = append(ts.signals, sig)
	ts.mu.Unlock()
}

func (ts *testServer) getSignals() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.signals...)
}

func (ts *testServer) getCommands() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.commands...)
}

func (ts *testServer) getForwards() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.forwards...)
}

func (ts *testServer) getOffered() []ssh.PublicKey {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]ssh.PublicKey(nil), ts.offered...)
}

// killConns drops every TCP connection (a server restart, a network cut).
func (ts *testServer) killConns() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, c := range ts.netConns {
		_ = c.Close()
	}
	ts.netConns = nil
}

func (ts *testServer) hostKeyLine() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ts.hostKey.PublicKey())))
}

func (ts *testServer) target() Target {
	return Target{Host: ts.host, Port: ts.port, HostKey: ts.hostKeyLine()}
}

// freePort returns a loopback port with nothing listening on it.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// dropFirst is a listener that closes its first n connections at once
// (sshd not ready yet: EOF during the handshake).
type dropFirst struct {
	net.Listener
	n        int32
	accepted atomic.Int32
}

func (d *dropFirst) Accept() (net.Conn, error) {
	for {
		c, err := d.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if d.accepted.Add(1) <= d.n {
			_ = c.Close()
			continue
		}
		return c, nil
	}
}

// newTestPool builds a pool for tests with a capture logger.
func newTestPool(t testing.TB, cfg Config) (*Pool, *captureLogger) {
	t.Helper()
	log := &captureLogger{}
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, log
}

func mustHost(t testing.TB, p *Pool, tg Target) *host {
	t.Helper()
	h, err := p.Host(tg)
	if err != nil {
		t.Fatal(err)
	}
	return h.(*host)
}
