package sshx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/mohd-dev/mohd/internal/remote"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func runOK(t *testing.T, h remote.Host, cmd string) string {
	t.Helper()
	r, err := h.Run(ctxT(t, 10*time.Second), remote.Cmd{Command: cmd})
	if err != nil {
		t.Fatalf("Run(%q): %v", cmd, err)
	}
	return string(r.Stdout)
}

func TestRunPrivateKeyAndHostKeyAccepted(t *testing.T) {
	user := newKey(t, "user")
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}, users: []string{"root"}})
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}})
	h := mustHost(t, p, srv.target())
	if h.Name() != "root@"+srv.addr {
		t.Fatalf("Name() = %q", h.Name())
	}
	r, err := h.Run(ctxT(t, 10*time.Second), remote.Cmd{Command: "cat; echo out; echo err >&2", Stdin: []byte("in:")})
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Stdout) != "in:out\n" || string(r.Stderr) != "err\n" || r.ExitCode != 0 || r.Duration <= 0 {
		t.Fatalf("result = %+v / %q %q", r, r.Stdout, r.Stderr)
	}
	// the command is sent as is for root (no sudo)
	if cmds := srv.getCommands(); len(cmds) != 1 || cmds[0] != "cat; echo out; echo err >&2" {
		t.Fatalf("server saw %q", cmds)
	}
}

func TestPrivateKeyFormats(t *testing.T) {
	ec := newECDSAPEMKey(t) // traditional PEM
	enc := encryptedKey(t)  // encrypted OpenSSH
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{ec.pub, enc.pub}})
	for name, a := range map[string]Auth{
		"pem":       {User: "root", PrivateKey: ec.pem},
		"encrypted": {User: "root", PrivateKey: enc.pem, Passphrase: "s3cret-pass"},
	} {
		t.Run(name, func(t *testing.T) {
			p, _ := newTestPool(t, Config{Auth: a})
			if got := runOK(t, mustHost(t, p, srv.target()), "echo ok"); got != "ok\n" {
				t.Fatalf("got %q", got)
			}
		})
	}
}

var (
	encOnce sync.Once
	encKey  *testKey
)

// encryptedKey returns an OpenSSH key encrypted with "s3cret-pass", made
// once (bcrypt KDF is slow, especially with -race).
func encryptedKey(t *testing.T) *testKey {
	encOnce.Do(func() {
		_, priv, _ := ecdsaKey(t)
		encKey = keyFrom(t, priv, "enc", "s3cret-pass")
	})
	return encKey
}

func ecdsaKey(t *testing.T) (*ecdsa.PublicKey, *ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey, k, nil
}

func TestHostKeyMismatchFailsFastWithBothFingerprints(t *testing.T) {
	user := newKey(t, "user")
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}})
	other := newKey(t, "other host")
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}, ConnectTimeout: 20 * time.Second})
	h := mustHost(t, p, Target{Host: srv.host, Port: srv.port, HostKey: other.line})
	start := time.Now()
	_, err := h.Run(ctxT(t, 20*time.Second), remote.Cmd{Command: "true", Desc: "check"})
	if err == nil {
		t.Fatal("connected despite wrong host key")
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("mismatch took %s: retried?", time.Since(start))
	}
	var hk *HostKeyError
	if !errors.As(err, &hk) {
		t.Fatalf("want *HostKeyError, got %T: %v", err, err)
	}
	msg := err.Error()
	for _, want := range []string{ssh.FingerprintSHA256(srv.hostKey.PublicKey()), ssh.FingerprintSHA256(other.pub), "MISMATCH", srv.addr, `"check"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("server saw %d connections, want 1 (no retry)", n)
	}
	// a second Run fails again, also without retrying
	if _, err := h.Run(ctxT(t, 20*time.Second), remote.Cmd{Command: "true"}); !errors.As(err, &hk) {
		t.Fatalf("second run: %v", err)
	}
	if n := srv.conns.Load(); n != 2 {
		t.Fatalf("server saw %d connections, want 2", n)
	}
}

func TestHostKeyAlgorithmNegotiation(t *testing.T) {
	// The server has an ECDSA and an Ed25519 host key; by default Go
	// prefers ECDSA. Pinning the Ed25519 key must make the client ask for it.
	user := newKey(t, "user")
	_, ecPriv, _ := ecdsaKey(t)
	ecHost := keyFrom(t, ecPriv, "", "")
	edHost := newKey(t, "ed host")
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}, hostKeys: []ssh.Signer{ecHost.signer, edHost.signer}})
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}})
	runOK(t, mustHost(t, p, Target{Host: srv.host, Port: srv.port, HostKey: edHost.line}), "true")

	p2, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem},
		KnownHosts: knownhosts.Line([]string{srv.addr}, edHost.pub) + "\n"})
	runOK(t, mustHost(t, p2, Target{Host: srv.host, Port: srv.port}), "true")

	// a pinned key type the server does not have: clear error, no retry
	edOnly := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}, hostKeys: []ssh.Signer{edHost.signer}})
	p3, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}, ConnectTimeout: 10 * time.Second})
	_, err := mustHost(t, p3, Target{Host: edOnly.host, Port: edOnly.port, HostKey: ecHost.line}).Run(ctxT(t, 10*time.Second), remote.Cmd{Command: "true"})
	if err == nil || !strings.Contains(err.Error(), "none of the host key types") || edOnly.conns.Load() != 1 {
		t.Fatalf("got %v (%d connections)", err, edOnly.conns.Load())
	}
}

func TestKnownHosts(t *testing.T) {
	user := newKey(t, "user")
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}})
	hostLine := srv.hostKeyLine()
	unrelated := newKey(t, "x").line
	hashed := knownhosts.HashHostname(knownhosts.Normalize(srv.addr))
	cases := []struct {
		name, content string
		wantErr       string
	}{
		{"plain", fmt.Sprintf("# comment\nexample.com %s\n[%s]:%d %s\n", unrelated, srv.host, srv.port, hostLine), ""},
		{"hashed", fmt.Sprintf("example.com %s\n%s %s\n", unrelated, hashed, hostLine), ""},
		{"wildcard", fmt.Sprintf("[127.0.0.*]:%d %s\n", srv.port, hostLine), ""},
		{"mismatch", fmt.Sprintf("%s %s\n", hashed, unrelated), "MISMATCH"},
		{"unknown", fmt.Sprintf("example.com %s\n", hostLine), "host is unknown"},
		{"revoked", fmt.Sprintf("@revoked * %s\n[%s]:%d %s\n", hostLine, srv.host, srv.port, hostLine), "revoked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}, KnownHosts: c.content, ConnectTimeout: 10 * time.Second})
			h := mustHost(t, p, Target{Host: srv.host, Port: srv.port})
			_, err := h.Run(ctxT(t, 10*time.Second), remote.Cmd{Command: "true"})
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var hk *HostKeyError
			if !errors.As(err, &hk) || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("want HostKeyError with %q, got %v", c.wantErr, err)
			}
			if !strings.Contains(err.Error(), ssh.FingerprintSHA256(srv.hostKey.PublicKey())) {
				t.Fatalf("error lacks the server's fingerprint: %v", err)
			}
		})
	}
}

func TestHostCertificateAuthority(t *testing.T) {
	user := newKey(t, "user")
	hostCA := newKey(t, "host CA")
	hostKey := newKey(t, "host")
	plainOther := newKey(t, "other plain host key")
	cert := signCert(t, hostCA, hostKey.pub, ssh.HostCert, "127.0.0.1")
	certSigner, err := ssh.NewCertSigner(cert, hostKey.signer)
	if err != nil {
		t.Fatal(err)
	}
	// The server offers its certificate and an unrelated plain key.
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}, hostKeys: []ssh.Signer{plainOther.signer, certSigner}})
	auth := Auth{User: "root", PrivateKey: user.pem}

	t.Run("known_hosts @cert-authority", func(t *testing.T) {
		p, _ := newTestPool(t, Config{Auth: auth, KnownHosts: fmt.Sprintf("@cert-authority [127.0.0.*]:%d %s\n", srv.port, hostCA.line)})
		runOK(t, mustHost(t, p, Target{Host: srv.host, Port: srv.port}), "true")
	})
	t.Run("host_key @cert-authority", func(t *testing.T) {
		p, _ := newTestPool(t, Config{Auth: auth})
		runOK(t, mustHost(t, p, Target{Host: srv.host, Port: srv.port, HostKey: "@cert-authority " + hostCA.line}), "true")
	})
	t.Run("untrusted CA", func(t *testing.T) {
		otherCA := newKey(t, "other CA")
		p, _ := newTestPool(t, Config{Auth: auth, KnownHosts: fmt.Sprintf("@cert-authority [127.0.0.1]:%d %s\n", srv.port, otherCA.line), ConnectTimeout: 10 * time.Second})
		_, err := mustHost(t, p, Target{Host: srv.host, Port: srv.port}).Run(ctxT(t, 10*time.Second), remote.Cmd{Command: "true"})
		var hk *HostKeyError
		if !errors.As(err, &hk) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(hostCA.pub)) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(otherCA.pub)) || !strings.Contains(err.Error(), "not signed by a CA trusted") {
			t.Fatalf("want HostKeyError naming both CAs, got %v", err)
		}
	})
	t.Run("wrong principal", func(t *testing.T) {
		bad := signCert(t, hostCA, hostKey.pub, ssh.HostCert, "db.example.com")
		bs, _ := ssh.NewCertSigner(bad, hostKey.signer)
		srv2 := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}, hostKeys: []ssh.Signer{bs}})
		p, _ := newTestPool(t, Config{Auth: auth, ConnectTimeout: 10 * time.Second})
		_, err := mustHost(t, p, Target{Host: srv2.host, Port: srv2.port, HostKey: "@cert-authority " + hostCA.line}).Run(ctxT(t, 10*time.Second), remote.Cmd{Command: "true"})
		var hk *HostKeyError
		if !errors.As(err, &hk) || !strings.Contains(err.Error(), "principal") {
			t.Fatalf("want HostKeyError about the principal, got %v", err)
		}
	})
}

func TestUserCertificate(t *testing.T) {
	userCA := newKey(t, "user CA")
	key := newKey(t, "deploy key")
	cert := signCert(t, userCA, key.pub, ssh.UserCert, "deploy")
	// the plain key is NOT authorized: only the certificate gets in
	srv := startServer(t, serverOpts{userCA: userCA.pub})
	p, _ := newTestPool(t, Config{Auth: Auth{User: "deploy", PrivateKey: key.pem, Certificate: certLine(cert)}, Sudo: SudoNever})
	if got := runOK(t, mustHost(t, p, srv.target()), "echo cert"); got != "cert\n" {
		t.Fatalf("got %q", got)
	}
	// without the certificate the same key is rejected
	p2, _ := newTestPool(t, Config{Auth: Auth{User: "deploy", PrivateKey: key.pem}, Sudo: SudoNever, ConnectTimeout: 10 * time.Second})
	_, err := mustHost(t, p2, srv.target()).Run(ctxT(t, 10*time.Second), remote.Cmd{Command: "true"})
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("want AuthError, got %v", err)
	}
	// a certificate for another principal is rejected
	wrong := signCert(t, userCA, key.pub, ssh.UserCert, "someone-else")
	p3, _ := newTestPool(t, Config{Auth: Auth{User: "deploy", PrivateKey: key.pem, Certificate: certLine(wrong)}, Sudo: SudoNever, ConnectTimeout: 10 * time.Second})
	if _, err := mustHost(t, p3, srv.target()).Run(ctxT(t, 10*time.Second), remote.Cmd{Command: "true"}); !errors.As(err, &ae) {
		t.Fatalf("want AuthError, got %v", err)
	}
}

// serveAgent serves keyring on a unix socket and returns its path.
func serveAgent(t *testing.T, keyring agent.Agent) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = agent.ServeAgent(keyring, c)
			}()
		}
	}()
	return sock
}

func TestAgentChoosesIdentity(t *testing.T) {
	keyring := agent.NewKeyring()
	var keys []*testKey
	for _, comment := range []string{"alice@laptop", "deploy-key", "ci@runner"} {
		keys = append(keys, newKey(t, comment))
	}
	addKeys(t, keyring, keys)
	sock := serveAgent(t, keyring)
	want := keys[1]
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{want.pub}})

	for name, id := range map[string]string{
		"by comment":     "deploy-key",
		"by public key":  want.line,
		"by fingerprint": ssh.FingerprintSHA256(want.pub),
	} {
		t.Run(name, func(t *testing.T) {
			before := len(srv.getOffered())
			p, _ := newTestPool(t, Config{Auth: Auth{User: "root", Agent: true, AgentSocket: sock, AgentIdentity: id}})
			runOK(t, mustHost(t, p, srv.target()), "true")
			offered := srv.getOffered()[before:]
			if len(offered) == 0 {
				t.Fatal("no key offered")
			}
			for _, k := range offered {
				if string(k.Marshal()) != string(want.pub.Marshal()) {
					t.Fatalf("offered a key other than the chosen identity: %s", ssh.FingerprintSHA256(k))
				}
			}
		})
	}
	t.Run("unknown identity", func(t *testing.T) {
		p, _ := newTestPool(t, Config{Auth: Auth{User: "root", Agent: true, AgentSocket: sock, AgentIdentity: "nobody"}, ConnectTimeout: 10 * time.Second})
		start := time.Now()
		_, err := mustHost(t, p, srv.target()).Run(ctxT(t, 10*time.Second), remote.Cmd{Command: "true"})
		if err == nil || !strings.Contains(err.Error(), `agent_identity "nobody"`) || !strings.Contains(err.Error(), "deploy-key") {
			t.Fatalf("want error listing identities, got %v", err)
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("took %s: retried a configuration error", time.Since(start))
		}
	})
	t.Run("all identities", func(t *testing.T) {
		p, _ := newTestPool(t, Config{Auth: Auth{User: "root", Agent: true, AgentSocket: sock}})
		runOK(t, mustHost(t, p, srv.target()), "true")
	})
	t.Run("agent key with certificate", func(t *testing.T) {
		userCA := newKey(t, "user CA")
		cert := signCert(t, userCA, keys[2].pub, ssh.UserCert, "root")
		csrv := startServer(t, serverOpts{userCA: userCA.pub})
		p, _ := newTestPool(t, Config{Auth: Auth{User: "root", Agent: true, AgentSocket: sock, Certificate: certLine(cert)}})
		runOK(t, mustHost(t, p, csrv.target()), "true")
	})
}

func addKeys(t *testing.T, keyring agent.Agent, keys []*testKey) {
	t.Helper()
	for _, k := range keys {
		raw, err := ssh.ParseRawPrivateKey([]byte(k.pem))
		if err != nil {
			t.Fatal(err)
		}
		if err := keyring.Add(agent.AddedKey{PrivateKey: raw, Comment: k.comment}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBastionChainTwoHops(t *testing.T) {
	k1, k2, kt := newKey(t, "jump1"), newKey(t, "jump2"), newKey(t, "target")
	b1 := startServer(t, serverOpts{authorized: []ssh.PublicKey{k1.pub}, users: []string{"jump1"}, forwarding: true})
	b2 := startServer(t, serverOpts{authorized: []ssh.PublicKey{k2.pub}, users: []string{"jump2"}, forwarding: true})
	tg := startServer(t, serverOpts{authorized: []ssh.PublicKey{kt.pub}, users: []string{"root"}})
	cfg := Config{
		Auth: Auth{User: "root", PrivateKey: kt.pem},
		Bastions: []Hop{
			{Host: b1.host, Port: b1.port, Auth: Auth{User: "jump1", PrivateKey: k1.pem}, HostKey: b1.hostKeyLine()},
			{Host: b2.host, Port: b2.port, Auth: Auth{User: "jump2", PrivateKey: k2.pem}, HostKey: b2.hostKeyLine()},
		},
	}
	p, _ := newTestPool(t, cfg)
	h := mustHost(t, p, tg.target())
	if got := runOK(t, h, "echo via bastions"); got != "via bastions\n" {
		t.Fatalf("got %q", got)
	}
	if f := b1.getForwards(); len(f) != 1 || f[0] != b2.addr {
		t.Fatalf("bastion 1 forwarded to %v, want [%s]", f, b2.addr)
	}
	if f := b2.getForwards(); len(f) != 1 || f[0] != tg.addr {
		t.Fatalf("bastion 2 forwarded to %v, want [%s]", f, tg.addr)
	}
	if len(b1.getCommands())+len(b2.getCommands()) != 0 {
		t.Fatal("commands ran on a bastion")
	}
	// the chain is shared: more commands use the same three connections
	runOK(t, h, "true")
	if b1.conns.Load() != 1 || b2.conns.Load() != 1 || tg.conns.Load() != 1 {
		t.Fatalf("connections b1=%d b2=%d target=%d, want 1 each", b1.conns.Load(), b2.conns.Load(), tg.conns.Load())
	}

	t.Run("wrong host key on hop 2", func(t *testing.T) {
		bad := cfg
		bad.Bastions = append([]Hop(nil), cfg.Bastions...)
		bad.Bastions[1].HostKey = newKey(t, "impostor").line
		bad.ConnectTimeout = 10 * time.Second
		p, _ := newTestPool(t, bad)
		before := b2.conns.Load()
		_, err := mustHost(t, p, tg.target()).Run(ctxT(t, 10*time.Second), remote.Cmd{Command: "true"})
		var hk *HostKeyError
		if !errors.As(err, &hk) || hk.Host != b2.addr {
			t.Fatalf("want HostKeyError for %s, got %v", b2.addr, err)
		}
		if n := b2.conns.Load() - before; n != 1 {
			t.Fatalf("hop 2 dialled %d times, want 1", n)
		}
	})
	t.Run("hop inherits credentials", func(t *testing.T) {
		// bastion servers accepting the target key and user
		s1 := startServer(t, serverOpts{authorized: []ssh.PublicKey{kt.pub}, forwarding: true})
		p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: kt.pem},
			Bastions: []Hop{{Host: s1.host, Port: s1.port, HostKey: s1.hostKeyLine()}}})
		runOK(t, mustHost(t, p, tg.target()), "true")
	})
}

func TestAuthFailureFailsFast(t *testing.T) {
	user, other := newKey(t, "user"), newKey(t, "other")
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{other.pub}})
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}, ConnectTimeout: 30 * time.Second})
	start := time.Now()
	_, err := mustHost(t, p, srv.target()).Run(ctxT(t, 30*time.Second), remote.Cmd{Command: "true"})
	var ae *AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "authentication failed for root@"+srv.addr) {
		t.Fatalf("want AuthError, got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s", d)
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestConnectionRefusedRetriedUntilTimeout(t *testing.T) {
	user := newKey(t, "user")
	port := freePort(t)
	t.Run("connect timeout", func(t *testing.T) {
		p, log := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}, ConnectTimeout: 1500 * time.Millisecond})
		h := mustHost(t, p, Target{Host: "127.0.0.1", Port: port, HostKey: user.line})
		start := time.Now()
		_, err := h.Run(context.Background(), remote.Cmd{Command: "true", Desc: "probe"})
		d := time.Since(start)
		var ce *ConnectError
		if !errors.As(err, &ce) {
			t.Fatalf("want ConnectError, got %T %v", err, err)
		}
		if !ce.TimedOut || ce.Attempts < 3 || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), fmt.Sprintf("root@127.0.0.1:%d", port)) {
			t.Fatalf("unexpected error (attempts %d, timedout %v): %v", ce.Attempts, ce.TimedOut, err)
		}
		if d < 1400*time.Millisecond || d > 3*time.Second {
			t.Fatalf("gave up after %s, want ~1.5s", d)
		}
		// one retry message per retry (the last may be cut short by the deadline)
		if n := log.count("DEBUG", "ssh: connect failed, retrying"); n != ce.Attempts-1 && n != ce.Attempts {
			t.Fatalf("%d retry log entries for %d attempts", n, ce.Attempts)
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}})
		h := mustHost(t, p, Target{Host: "127.0.0.1", Port: port, HostKey: user.line})
		start := time.Now()
		_, err := h.Run(ctxT(t, time.Second), remote.Cmd{Command: "true"})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Fatalf("took %s", d)
		}
	})
}

func TestParallelCallersShareOneFailedDial(t *testing.T) {
	user := newKey(t, "user")
	port := freePort(t)
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}, ConnectTimeout: time.Second}) // 20 callers > MaxSessions
	h := mustHost(t, p, Target{Host: "127.0.0.1", Port: port, HostKey: user.line})
	start := time.Now()
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		go func() {
			_, err := h.Run(context.Background(), remote.Cmd{Command: "true"})
			errs <- err
		}()
	}
	for i := 0; i < 20; i++ {
		var ce *ConnectError
		if err := <-errs; !errors.As(err, &ce) || !ce.TimedOut {
			t.Fatalf("got %v", err)
		}
	}
	// callers waiting for the dial share its result instead of each
	// retrying for a full connect timeout one after the other
	if d := time.Since(start); d > 1800*time.Millisecond {
		t.Fatalf("20 callers took %s", d)
	}
}

func TestServerAppearsLater(t *testing.T) {
	user := newKey(t, "user")
	port := freePort(t)
	hostKey := newKey(t, "host")
	go func() {
		time.Sleep(time.Second)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Error(err)
			return
		}
		startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}, hostKeys: []ssh.Signer{hostKey.signer}, listener: ln})
	}()
	p, log := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}, ConnectTimeout: 15 * time.Second})
	got := runOK(t, mustHost(t, p, Target{Host: "127.0.0.1", Port: port, HostKey: hostKey.line}), "echo up")
	if got != "up\n" {
		t.Fatalf("got %q", got)
	}
	if log.count("DEBUG", "ssh: connect failed, retrying") == 0 {
		t.Fatal("connected without retrying: the test did not exercise retries")
	}
}

func TestHandshakeEOFRetried(t *testing.T) {
	user := newKey(t, "user")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	drop := &dropFirst{Listener: ln, n: 2}
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}, listener: drop})
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}, ConnectTimeout: 15 * time.Second})
	runOK(t, mustHost(t, p, srv.target()), "true")
	if n := drop.accepted.Load(); n != 3 {
		t.Fatalf("accepted %d TCP connections, want 3 (2 dropped + 1)", n)
	}
}

func TestInsecureIgnoreHostKeyWarnsEveryConnection(t *testing.T) {
	user := newKey(t, "user")
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}})
	p, log := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}, InsecureIgnoreHostKey: true})
	h := mustHost(t, p, Target{Host: srv.host, Port: srv.port})
	runOK(t, h, "true")
	srv.killConns()
	time.Sleep(50 * time.Millisecond)
	runOK(t, h, "true")
	if n := log.count("WARN", "ssh: WARNING: host key verification is disabled"); n != 2 {
		t.Fatalf("%d warnings for 2 connections\n%s", n, log)
	}
}

func TestReconnectAfterConnectionDied(t *testing.T) {
	user := newKey(t, "user")
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}})
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}})
	h := mustHost(t, p, srv.target())
	runOK(t, h, "true")
	srv.killConns() // no wait: the pool may still believe the connection is alive
	if got := runOK(t, h, "echo again"); got != "again\n" {
		t.Fatalf("got %q", got)
	}
	if n := srv.conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// freezeProxy forwards TCP to target until frozen; then it silently stops
// forwarding (a hung host or a dropped network path: no RST, no FIN).
type freezeProxy struct {
	ln     net.Listener
	frozen chan struct{}
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &freezeProxy{ln: ln, frozen: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if err != nil {
						return
					}
					select {
					case <-fp.frozen:
						continue // swallow
					default:
					}
					if _, err := dst.Write(buf[:n]); err != nil {
						return
					}
				}
			}
			go pipe(c, s)
			go pipe(s, c)
		}
	}()
	return fp
}

func TestKeepaliveClosesHungConnection(t *testing.T) {
	user := newKey(t, "user")
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}})
	proxy := newFreezeProxy(t, srv.addr)
	port := proxy.ln.Addr().(*net.TCPAddr).Port
	p, log := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}, KeepaliveInterval: 100 * time.Millisecond})
	h := mustHost(t, p, Target{Host: "127.0.0.1", Port: port, HostKey: srv.hostKeyLine()})
	runOK(t, h, "true")
	h.slot.mu.Lock()
	c := h.slot.c
	h.slot.mu.Unlock()
	time.Sleep(350 * time.Millisecond)
	if !c.alive() {
		t.Fatal("healthy connection closed by keepalive")
	}
	close(proxy.frozen)
	deadline := time.Now().Add(2 * time.Second)
	for c.alive() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if c.alive() {
		t.Fatal("hung connection not detected")
	}
	if log.count("INFO", "ssh: keepalive not answered") != 1 {
		t.Fatalf("no keepalive log:\n%s", log)
	}
}

func TestPoolClose(t *testing.T) {
	user := newKey(t, "user")
	srv := startServer(t, serverOpts{authorized: []ssh.PublicKey{user.pub}})
	p, _ := newTestPool(t, Config{Auth: Auth{User: "root", PrivateKey: user.pem}})
	h := mustHost(t, p, srv.target())
	runOK(t, h, "true")
	_ = p.Close()
	if _, err := h.Run(ctxT(t, 5*time.Second), remote.Cmd{Command: "true"}); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("got %v", err)
	}
}
