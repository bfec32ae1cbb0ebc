package sshx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Pool shares one SSH connection per host (keyed by user@host:port and the
// bastion chain) among all callers, limits concurrent sessions per
// connection, verifies host keys, and re-dials dead connections on the
// next use. Create it with NewPool; it is safe for concurrent use.
type Pool struct {
	cfg   Config
	log   remote.Logger
	red   *remote.Redactor
	auth  *parsedAuth
	kh    *knownHosts
	hops  []*endpoint
	sudo  bool // escalate through sudo for ordinary commands
	clock func() time.Time

	// tunables (tests shorten them)
	backoffMin, backoffMax time.Duration
	attemptTimeout         time.Duration // per attempt: TCP connect + SSH handshake
	unlockTimeout          time.Duration

	mu     sync.Mutex
	slots  map[string]*slot
	closed bool
}

// endpoint is one SSH server in a chain.
type endpoint struct {
	host  string
	port  int
	addr  string // host:port
	auth  *parsedAuth
	keys  *hostKeys
	label string // user@host:port
}

// slot is the pool entry for one chain: its current connection, a dial
// lock, and the session semaphore.
type slot struct {
	dial    chan struct{} // 1-token mutex held while dialling
	sem     chan struct{} // session tokens
	mu      sync.Mutex
	c       *conn
	gen     int   // dials finished
	lastErr error // result of the last dial
}

// conn is one live SSH connection.
type conn struct {
	client *ssh.Client
	done   chan struct{}
	once   sync.Once
}

func (c *conn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.client.Close()
	})
}

// NewPool validates cfg (credentials, keys, host keys of bastions) and
// returns a Pool. Nothing is dialled until a host is used.
func NewPool(cfg Config) (*Pool, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	auth, err := parseAuth(cfg.Auth, "ssh")
	if err != nil {
		return nil, err
	}
	p := &Pool{
		cfg: cfg, log: cfg.Logger, red: cfg.Redactor, auth: auth,
		clock:      time.Now,
		backoffMin: 250 * time.Millisecond, backoffMax: 15 * time.Second,
		attemptTimeout: 30 * time.Second, unlockTimeout: 10 * time.Second,
		slots: map[string]*slot{},
	}
	p.red.Add(cfg.Auth.secrets()...)
	switch cfg.Sudo {
	case SudoAuto:
		p.sudo = cfg.User != "root"
	case SudoAlways:
		p.sudo = true
	}
	if p.kh, err = parseKnownHosts(cfg.KnownHosts); err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	for i, h := range cfg.Bastions {
		what := fmt.Sprintf("ssh: bastion %d (%s)", i+1, h.Host)
		p.red.Add(h.Auth.secrets()...)
		a, err := parseAuth(h.Auth, what)
		if err != nil {
			return nil, err
		}
		hk, err := parseKnownHosts(h.KnownHosts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		keys, err := newHostKeys(h.HostKey, cfg.InsecureIgnoreHostKey, hk, p.kh)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		p.hops = append(p.hops, newEndpoint(h.Host, h.Port, a, keys))
	}
	return p, nil
}

func newEndpoint(host string, port int, a *parsedAuth, keys *hostKeys) *endpoint {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	return &endpoint{host: host, port: port, addr: addr, auth: a, keys: keys, label: a.user + "@" + addr}
}

// Host returns the remote.Host for t, validating t (the connection is
// dialled on first use and shared with every other Host value for the
// same target).
func (p *Pool) Host(t Target) (remote.Host, error) {
	if t.Host == "" {
		return nil, errors.New("ssh: host is required")
	}
	if t.Port == 0 {
		t.Port = DefaultPort
	}
	if t.Port < 0 || t.Port > 65535 {
		return nil, fmt.Errorf("ssh: host %s: invalid port %d", t.Host, t.Port)
	}
	keys, err := newHostKeys(t.HostKey, p.cfg.InsecureIgnoreHostKey, p.kh)
	if err != nil {
		return nil, fmt.Errorf("ssh: host %s: %w", t.Host, err)
	}
	ep := newEndpoint(t.Host, t.Port, p.auth, keys)
	chain := append(append([]*endpoint(nil), p.hops...), ep)
	h := &host{p: p, chain: chain, ep: ep, name: ep.label}
	sum := sha256.Sum256([]byte(t.HostKey))
	h.slot = p.slot(chainKey(chain) + "#" + hex.EncodeToString(sum[:6]))
	return h, nil
}

// Close closes every connection. Hosts of a closed pool return
// ErrPoolClosed; held locks are released (their sessions end).
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	slots := p.slots
	p.slots = map[string]*slot{}
	p.mu.Unlock()
	for _, s := range slots {
		s.mu.Lock()
		if s.c != nil {
			s.c.close()
			s.c = nil
		}
		s.mu.Unlock()
	}
	return nil
}

func chainKey(chain []*endpoint) string {
	labels := make([]string, len(chain))
	for i, e := range chain {
		labels[i] = e.label
	}
	return strings.Join(labels, " > ")
}

func (p *Pool) slot(key string) *slot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.slots[key]
	if s == nil {
		s = &slot{dial: make(chan struct{}, 1), sem: make(chan struct{}, p.cfg.MaxSessions)}
		p.slots[key] = s
	}
	return s
}

func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// conn returns the live connection for chain (via slot s), dialling with
// retries when there is none.
func (p *Pool) conn(ctx context.Context, s *slot, chain []*endpoint) (*conn, error) {
	if p.isClosed() {
		return nil, ErrPoolClosed
	}
	s.mu.Lock()
	c := s.c
	s.mu.Unlock()
	if c != nil && c.alive() {
		return c, nil
	}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	select {
	case s.dial <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.dial }()
	s.mu.Lock()
	c, lastErr, dialled := s.c, s.lastErr, s.gen != gen
	s.mu.Unlock()
	if c != nil && c.alive() {
		return c, nil // another caller dialled meanwhile
	}
	if dialled && lastErr != nil && !errors.Is(lastErr, context.Canceled) && !errors.Is(lastErr, context.DeadlineExceeded) {
		// Another caller's dial (with its retries) failed while we
		// waited: share its verdict instead of starting over (unless
		// it only ended because that caller's context did).
		return nil, lastErr
	}
	c, err := p.dialRetry(ctx, chain)
	s.mu.Lock()
	s.gen++
	s.c, s.lastErr = c, err
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if p.isClosed() {
		c.close()
		return nil, ErrPoolClosed
	}
	return c, nil
}

func via(chain []*endpoint) []string {
	var out []string
	for _, e := range chain[:len(chain)-1] {
		out = append(out, e.label)
	}
	return out
}

// dialRetry connects to the last endpoint of chain, retrying transient
// failures with exponential backoff until ConnectTimeout or ctx's deadline.
func (p *Pool) dialRetry(ctx context.Context, chain []*endpoint) (*conn, error) {
	ep := chain[len(chain)-1]
	start := p.clock()
	dctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
	defer cancel()
	delay := p.backoffMin
	var lastErr error
	for attempt := 1; ; attempt++ {
		c, err := p.dialOnce(dctx, chain)
		if err == nil {
			p.log.Info("ssh: connected", map[string]any{
				"host": ep.label, "via": strings.Join(via(chain), " -> "), "attempts": attempt,
				"duration_ms": p.clock().Sub(start).Milliseconds(),
			})
			return c, nil
		}
		var ce *ConnectError
		if errors.As(err, &ce) {
			return nil, err // a bastion failed for good; it names itself
		}
		isCtxErr := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
		if !isCtxErr || lastErr == nil {
			lastErr = err
		}
		fail := &ConnectError{Host: ep.label, Via: via(chain), Attempts: attempt, Elapsed: p.clock().Sub(start), Err: lastErr}
		if !isCtxErr && !retryable(err) {
			return nil, fail
		}
		if ctx.Err() != nil || dctx.Err() != nil {
			return nil, p.giveUp(ctx, fail)
		}
		wait := delay/2 + rand.N(delay/2+1) //nolint:gosec // backoff jitter needs no cryptographic randomness
		if dl, ok := dctx.Deadline(); ok && time.Until(dl) < wait {
			wait = max(time.Until(dl), 0)
		}
		p.log.Debug("ssh: connect failed, retrying", map[string]any{
			"host": ep.label, "attempt": attempt, "error": p.red.Redact(err.Error()), "retry_in_ms": wait.Milliseconds(),
		})
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-dctx.Done():
			t.Stop()
			fail.Elapsed = p.clock().Sub(start)
			return nil, p.giveUp(ctx, fail)
		}
		delay = min(delay*2, p.backoffMax)
	}
}

// giveUp finishes fail when the caller's context ended (Err then wraps
// ctx.Err()) or the connect timeout passed (TimedOut).
func (p *Pool) giveUp(ctx context.Context, fail *ConnectError) error {
	if err := ctx.Err(); err != nil {
		if fail.Err != nil && !errors.Is(fail.Err, err) {
			fail.Err = fmt.Errorf("%w (last error: %w)", err, fail.Err)
		} else {
			fail.Err = err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			fail.TimedOut = true
		}
		return fail
	}
	fail.TimedOut = true
	return fail
}

// dialOnce makes one connection attempt (TCP or through the previous hop,
// then the SSH handshake).
func (p *Pool) dialOnce(ctx context.Context, chain []*endpoint) (*conn, error) {
	ep := chain[len(chain)-1]
	actx, cancel := context.WithTimeout(ctx, p.attemptTimeout)
	defer cancel()

	var nc net.Conn
	var err error
	if len(chain) == 1 {
		d := net.Dialer{KeepAlive: 30 * time.Second}
		nc, err = d.DialContext(actx, "tcp", ep.addr)
	} else {
		parentChain := chain[:len(chain)-1]
		var parent *conn
		parent, err = p.conn(ctx, p.slot(chainKey(parentChain)), parentChain)
		if err != nil {
			return nil, err
		}
		nc, err = parent.client.DialContext(actx, "tcp", ep.addr)
		if err != nil {
			var oce *ssh.OpenChannelError
			if !errors.As(err, &oce) {
				parent.close() // the bastion connection is broken; re-dial it next attempt
			}
			err = fmt.Errorf("through bastion %s: %w", parentChain[len(parentChain)-1].label, err)
		}
	}
	if err != nil {
		return nil, err
	}

	methods, cleanup, err := p.authMethods(ep)
	if err != nil {
		nc.Close()
		return nil, &permanentError{err}
	}
	defer cleanup()

	var hkErr error
	var hkMu sync.Mutex
	cfg := &ssh.ClientConfig{
		User:          ep.auth.user,
		Auth:          methods,
		ClientVersion: "SSH-2.0-MOHD",
		HostKeyCallback: func(hostname string, remoteAddr net.Addr, key ssh.PublicKey) error {
			if ep.keys.insecure {
				p.log.Warn("ssh: WARNING: host key verification is disabled (insecure_ignore_host_key); accepting any host key", map[string]any{
					"host": ep.label, "host_key": describeKey(key),
				})
				return nil
			}
			err := ep.keys.check(hostname, remoteAddr, key)
			if err != nil {
				hkMu.Lock()
				hkErr = err
				hkMu.Unlock()
			}
			return err
		},
		HostKeyAlgorithms: ep.keys.algorithms(ep.addr),
	}
	// The handshake honours actx: closing the connection aborts it.
	timedOut := make(chan struct{})
	stop := context.AfterFunc(actx, func() { close(timedOut); nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, ep.addr, cfg)
	if !stop() {
		<-timedOut
		if err == nil {
			sc.Close()
		}
		nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &handshakeTimeoutError{after: p.attemptTimeout}
	}
	if err != nil {
		nc.Close()
		hkMu.Lock()
		defer hkMu.Unlock()
		if hkErr != nil {
			return nil, hkErr
		}
		if isAuthFailure(err) {
			return nil, &AuthError{Host: ep.label, Err: err}
		}
		var ane *ssh.AlgorithmNegotiationError
		if errors.As(err, &ane) && ane.What == "host key" && cfg.HostKeyAlgorithms != nil {
			return nil, fmt.Errorf("the server has none of the host key types given in host_key/known_hosts for %s (it offers %s): %w",
				ep.addr, strings.Join(ane.RequestedAlgorithms, ", "), err)
		}
		return nil, err
	}
	c := &conn{client: ssh.NewClient(sc, chans, reqs), done: make(chan struct{})}
	go func() {
		_ = c.client.Wait()
		c.close()
	}()
	if p.cfg.KeepaliveInterval > 0 {
		go p.keepalive(c, ep)
	}
	return c, nil
}

// keepalive closes c when the server stops answering.
func (p *Pool) keepalive(c *conn, ep *endpoint) {
	t := time.NewTicker(p.cfg.KeepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		replied := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		timer := time.NewTimer(p.cfg.KeepaliveInterval)
		select {
		case err := <-replied:
			timer.Stop()
			if err != nil {
				p.log.Info("ssh: keepalive failed, closing connection", map[string]any{"host": ep.label, "error": err.Error()})
				c.close()
				return
			}
		case <-timer.C:
			p.log.Info("ssh: keepalive not answered, closing connection", map[string]any{"host": ep.label})
			c.close()
			return
		case <-c.done:
			timer.Stop()
			return
		}
	}
}

// authMethods returns the auth methods of ep; cleanup closes the agent
// connection after the handshake.
func (p *Pool) authMethods(ep *endpoint) ([]ssh.AuthMethod, func(), error) {
	a := ep.auth
	var signers []ssh.Signer
	cleanup := func() {}
	if a.signer != nil {
		signers = append(signers, a.signer)
	}
	if a.agent {
		ac, err := net.Dial("unix", a.agentSocket)
		if err != nil {
			return nil, cleanup, fmt.Errorf("ssh-agent for %s: cannot connect to %s: %w", ep.label, a.agentSocket, err)
		}
		cleanup = func() { ac.Close() }
		agentSigners, err := selectAgentSigners(agent.NewClient(ac), a)
		if err != nil {
			ac.Close()
			return nil, func() {}, fmt.Errorf("ssh-agent for %s (%s): %w", ep.label, a.agentSocket, err)
		}
		signers = append(signers, agentSigners...)
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, cleanup, nil
}

// selectAgentSigners returns the agent's signers filtered by
// AgentIdentity, with the user certificate applied when given.
func selectAgentSigners(ag agent.ExtendedAgent, a *parsedAuth) ([]ssh.Signer, error) {
	keys, err := ag.List()
	if err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	all, err := ag.Signers()
	if err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	comment := map[string]string{}
	for _, k := range keys {
		comment[string(k.Marshal())] = k.Comment
	}
	plainKey := func(k ssh.PublicKey) ssh.PublicKey {
		if c, ok := k.(*ssh.Certificate); ok {
			return c.Key
		}
		return k
	}
	var chosen []ssh.Signer
	for _, s := range all {
		pub := s.PublicKey()
		switch {
		case a.agentID == "":
		case a.agentIDKey != nil:
			if string(plainKey(pub).Marshal()) != string(plainKey(a.agentIDKey).Marshal()) {
				continue
			}
		case strings.HasPrefix(a.agentID, "SHA256:"):
			if ssh.FingerprintSHA256(plainKey(pub)) != a.agentID {
				continue
			}
		default:
			if comment[string(pub.Marshal())] != a.agentID {
				continue
			}
		}
		chosen = append(chosen, s)
	}
	if len(chosen) == 0 {
		var avail []string
		for _, k := range keys {
			avail = append(avail, fmt.Sprintf("%s %s %q", ssh.FingerprintSHA256(plainKey(k)), k.Type(), k.Comment))
		}
		if a.agentID == "" {
			return nil, errors.New("the agent holds no keys")
		}
		return nil, fmt.Errorf("agent_identity %q matches none of the agent's keys (by public key, SHA256 fingerprint or comment); available: %s",
			a.agentID, strings.Join(avail, ", "))
	}
	if a.cert != nil {
		var certified []ssh.Signer
		for _, s := range chosen {
			if cs, err := ssh.NewCertSigner(a.cert, s); err == nil {
				certified = append(certified, cs)
			}
		}
		if len(certified) == 0 {
			return nil, fmt.Errorf("certificate (for key %s) does not certify any selected agent key", ssh.FingerprintSHA256(a.cert.Key))
		}
		chosen = certified
	}
	return chosen, nil
}
