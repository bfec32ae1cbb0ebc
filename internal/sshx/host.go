package sshx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/mohd-dev/mohd/internal/remote"
)

// host implements remote.Host over a pooled connection.
type host struct {
	p     *Pool
	chain []*endpoint // bastions..., target
	ep    *endpoint   // the target
	name  string
	slot  *slot
}

var _ remote.Host = (*host)(nil)

func (h *host) Name() string { return h.name }

// sudoWrapper is the script sudo runs: it runs the command ($1) as its
// child with the session's stdin (an asynchronous list would get
// /dev/null) and, when it receives a signal, terminates its whole process
// group. Cancelling relies on it: sshd (running as the login user) cannot
// signal root's processes, and sudo relays the signal to its direct child
// only, so a plain "sudo -n -- sh -c 'a; b'" lost its shell and left the
// running a (apt-get, a lock waiter...) behind.
const sudoWrapper = `trap "trap - TERM HUP INT; kill -TERM 0" TERM HUP INT; exec 3<&0; sh -c "$1" sh <&3 3<&- & exec 3<&-; wait $!`

// Command returns the command line sent to the server for c: the command
// itself, or "sudo -n [-H -u USER] -- sh -c '<sudoWrapper>' mohd '...'"
// when escalating.
func (h *host) command(cmd, asUser string) (line string, sudo bool) {
	if asUser == h.ep.auth.user && !h.p.sudo {
		asUser = ""
	}
	if asUser == "" && !h.p.sudo {
		return cmd, false
	}
	var b strings.Builder
	b.WriteString("sudo -n ")
	if asUser != "" {
		b.WriteString("-H -u " + remote.Quote(asUser) + " ")
	}
	b.WriteString("-- sh -c " + remote.Quote(sudoWrapper) + " mohd " + remote.Quote(cmd))
	return b.String(), true
}

// Run implements remote.Host.
func (h *host) Run(ctx context.Context, c remote.Cmd) (remote.Result, error) {
	red := h.p.red
	red.Add(c.Secrets...)
	line, sudo := h.command(c.Command, c.AsUser)
	step := redactedStep(c, red)
	h.p.log.Debug("ssh: run", map[string]any{
		"host": h.name, "step": step, "command": red.Redact(c.Command), "sudo": sudo, "as_user": c.AsUser,
	})
	r, sig, err := h.exec(ctx, line, c)
	fields := map[string]any{"host": h.name, "step": step, "duration_ms": r.Duration.Milliseconds()}
	if err != nil {
		err = h.stepErr(step, err)
		fields["error"] = red.Redact(err.Error())
		h.p.log.Warn("ssh: command did not complete", fields)
		return r, err
	}
	fields["exit_code"] = r.ExitCode
	if r.ExitCode == 0 && sig == "" {
		h.p.log.Info("ssh: command done", fields)
		return r, nil
	}
	ee := remote.NewExitError(h.name, c, r.ExitCode, sig, r.Stderr, red)
	if sudo {
		classifySudo(ee, string(r.Stderr), h.ep.auth.user)
	}
	fields["stderr_tail"] = ee.Stderr
	if sig != "" {
		fields["signal"] = sig
	}
	h.p.log.Info("ssh: command done", fields)
	return r, ee
}

// redactedStep is c's step name, redacted before it is shortened (so a
// secret cut in half by shortening is still hidden).
func redactedStep(c remote.Cmd, red *remote.Redactor) string {
	if c.Desc != "" {
		return red.Redact(c.Desc)
	}
	return remote.ShortCommand(red.Redact(c.Command))
}

func (h *host) stepErr(step string, err error) error {
	var ce *ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("step %q: %w", step, err)
	}
	return fmt.Errorf("%s: step %q: %w", h.name, step, err)
}

// classifySudo recognises sudo's own failures in a sudo-wrapped command.
func classifySudo(ee *remote.ExitError, stderr, user string) {
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(stderr, s) {
				return true
			}
		}
		return false
	}
	switch {
	case ee.ExitCode == 1 && has("a password is required", "a terminal is required", "no tty present"):
		ee.Err = remote.ErrSudoPasswordRequired
		ee.Hint = fmt.Sprintf("MOHD runs commands with \"sudo -n\" and requires passwordless sudo for user %q: "+
			"add \"%s ALL=(ALL) NOPASSWD: ALL\" to /etc/sudoers.d/%s, or connect as root", user, user, user)
	case ee.ExitCode == 1 && has("is not in the sudoers file", "is not allowed to execute", "may not run sudo"):
		ee.Err = remote.ErrSudoNotAllowed
		ee.Hint = fmt.Sprintf("allow user %q passwordless sudo: add \"%s ALL=(ALL) NOPASSWD: ALL\" to /etc/sudoers.d/%s, or connect as root", user, user, user)
	case ee.ExitCode == 127 && has("sudo: not found", "sudo: command not found"):
		ee.Err = remote.ErrSudoMissing
		ee.Hint = "install sudo on the host or connect as root"
	}
}

// session takes a session token and opens a session on the (re)connected
// client. release closes the session and returns the token.
func (h *host) session(ctx context.Context) (*ssh.Session, func(), error) {
	held := false
	token := func() {
		if held {
			held = false
			<-h.slot.sem
		}
	}
	backoff := 50 * time.Millisecond
	refused, reconnects := 0, 0
	for {
		// Connect before queueing for a session token, so every caller
		// waiting for this host shares the outcome of one dial.
		c, err := h.p.conn(ctx, h.slot, h.chain)
		if err != nil {
			token()
			return nil, nil, err
		}
		if !held {
			select {
			case h.slot.sem <- struct{}{}:
				held = true
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		s, abandoned, err := newSession(ctx, c.client, token)
		if abandoned {
			return nil, nil, err // the token is returned once the open finishes
		}
		if err == nil {
			var once sync.Once
			return s, func() {
				once.Do(func() {
					_ = s.Close()
					token()
				})
			}, nil
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			// OpenSSH answers "administratively prohibited: open failed"
			// when MaxSessions is reached (other clients may share it).
			refused++
			if refused > 20 || (oce.Reason != ssh.ResourceShortage && oce.Reason != ssh.Prohibited) {
				token()
				return nil, nil, fmt.Errorf("server refused to open a session (MaxSessions reached?): %w", err)
			}
			h.p.log.Debug("ssh: session refused, retrying", map[string]any{"host": h.name, "error": err.Error()})
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				token()
				return nil, nil, ctx.Err()
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		// The connection is dead (server restarted, network cut): drop
		// it and dial again. The command never started, so this is safe.
		c.close()
		reconnects++
		if reconnects > 2 {
			token()
			return nil, nil, fmt.Errorf("opening session: %w", err)
		}
		h.p.log.Info("ssh: connection lost, reconnecting", map[string]any{"host": h.name, "error": err.Error()})
	}
}

// newSession opens a session, giving up when ctx ends first: a hung
// server (a frozen VM, a dropped path) never answers the channel open, and
// the keepalive would notice only after up to two intervals. The abandoned
// open finishes in the background (when the server answers or the
// connection is closed): its session is closed, then done is called.
func newSession(ctx context.Context, c *ssh.Client, done func()) (s *ssh.Session, abandoned bool, err error) {
	type result struct {
		s   *ssh.Session
		err error
	}
	res := make(chan result, 1)
	go func() {
		s, err := c.NewSession()
		res <- result{s, err}
	}()
	select {
	case r := <-res:
		return r.s, false, r.err
	case <-ctx.Done():
		go func() {
			if r := <-res; r.s != nil {
				_ = r.s.Close()
			}
			done()
		}()
		return nil, true, fmt.Errorf("opening a session: no answer from the server: %w", ctx.Err())
	}
}

// startCmd starts line on s, giving up when ctx ends first (the server does
// not answer the exec request). The command may still start later if the
// server wakes up: it is sent SIGTERM and its session closed.
func startCmd(ctx context.Context, s *ssh.Session, line string) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Start(line) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGTERM)
		_ = s.Close()
		return fmt.Errorf("no answer from the server: %w", ctx.Err())
	}
}

// cancelGrace is how long a cancelled command may take to report its end
// after SIGTERM and channel close.
const cancelGrace = 5 * time.Second

// exec runs line in a new session. A non-zero exit is not an error here:
// it is returned in Result.ExitCode (and sig for a signal).
func (h *host) exec(ctx context.Context, line string, c remote.Cmd) (r remote.Result, sig string, err error) {
	start := time.Now()
	defer func() { r.Duration = time.Since(start) }()
	s, release, err := h.session(ctx)
	if err != nil {
		return r, "", err
	}
	defer release()
	var stdout, stderr remote.SyncBuffer
	s.Stdout, s.Stderr = &stdout, &stderr
	if c.StdoutStream != nil {
		s.Stdout = c.StdoutStream
	}
	var stdin io.Reader = bytes.NewReader(c.Stdin)
	if c.StdinStream != nil {
		stdin = c.StdinStream
	}
	in, err := s.StdinPipe()
	if err != nil {
		return r, "", err
	}
	if err := startCmd(ctx, s, line); err != nil {
		return r, "", fmt.Errorf("starting command: %w", err)
	}
	// Errors writing stdin are ignored: a command may legitimately exit
	// without reading it; uploads verify what arrived by checksum.
	go func() {
		_, _ = io.Copy(in, stdin)
		_ = in.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-ctx.Done():
		// Stop the remote work: signal, then close the channel.
		_ = s.Signal(ssh.SIGTERM)
		_ = s.Close()
		select {
		case <-done: //nolint:errcheck // the command's own error no longer matters once cancelled
		case <-time.After(cancelGrace):
		}
		r.Stdout, r.Stderr, r.ExitCode = stdout.Bytes(), stderr.Bytes(), -1
		return r, "", fmt.Errorf("cancelled, remote command terminated: %w", ctx.Err())
	}
	r.Stdout, r.Stderr = stdout.Bytes(), stderr.Bytes()
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case werr == nil:
	case errors.As(werr, &ee):
		r.ExitCode, sig = ee.ExitStatus(), ee.Signal()
	case errors.As(werr, &missing):
		r.ExitCode = -1
		return r, "", errors.New("the command ended without an exit status (connection lost?)")
	default:
		r.ExitCode = -1
		return r, "", fmt.Errorf("command interrupted: %w", werr)
	}
	return r, sig, nil
}

// Upload implements remote.Host: the content travels over the command's stdin
// into a temporary file next to the destination, renamed into place.
func (h *host) Upload(ctx context.Context, f remote.File) (bool, error) {
	u, err := remote.NewUpload(h.name, f)
	if err != nil {
		return false, err
	}
	p := f.Path
	start := time.Now()
	act, err := u.Reconcile(ctx, h)
	if err != nil {
		return false, err
	}
	switch act {
	case remote.UploadNothing:
		h.p.log.Info("ssh: upload unchanged", map[string]any{"host": h.name, "path": p, "duration_ms": time.Since(start).Milliseconds()})
		return false, nil
	case remote.UploadFixOwnerMode:
		h.p.log.Info("ssh: upload changed owner/mode", map[string]any{"host": h.name, "path": p, "mode": u.Mode, "duration_ms": time.Since(start).Milliseconds()})
		return true, nil
	case remote.UploadWrite:
	}
	if _, err := h.Run(ctx, remote.Cmd{Command: writeScript(u), Stdin: f.Content, Desc: u.Step}); err != nil {
		return false, err
	}
	h.p.log.Info("ssh: uploaded", map[string]any{"host": h.name, "path": p, "bytes": len(f.Content), "mode": u.Mode, "duration_ms": time.Since(start).Milliseconds()})
	return true, nil
}

// writeScript writes its stdin to u's destination: into a temporary file in
// the same directory, checked, given owner and mode, renamed into place.
func writeScript(u *remote.Upload) string {
	var b strings.Builder
	b.WriteString("set -e\np=" + remote.Quote(u.File.Path) + "\nd=" + remote.Quote(path.Dir(u.File.Path)) + "\n")
	b.WriteString(remote.MkdirScript(u.File))
	b.WriteString(`umask 077
trap 'exit 143' HUP INT TERM PIPE
t=$(mktemp "$d/.mohd-upload.XXXXXXXXXX")
trap 'rm -f -- "$t"' EXIT
cat > "$t"
h=$(sha256sum < "$t")
if [ "${h%% *}" != "` + u.SHA256 + `" ]; then echo "mohd: received content does not match (sha256), upload incomplete" >&2; exit 4; fi
`)
	b.WriteString(remote.ChownChmod(u.File, u.Mode, `"$t"`))
	b.WriteString("mv -f -- \"$t\" \"$p\"\ntrap - EXIT\n")
	return b.String()
}

// lockScript takes flock on /run/lock/mohd-NAME.lock (or /var/lock) with
// fd 9, prints "locked", then holds the lock in "cat" until stdin closes
// (unlock, or the connection dies) or the process is signalled.
func lockScript(name string, wait time.Duration) string {
	w := ""
	if wait > 0 {
		w = fmt.Sprintf("-w %d ", int(math.Ceil(wait.Seconds())))
	}
	return `d=/run/lock
{ [ -d "$d" ] && [ -w "$d" ]; } || d=/var/lock
f="$d/mohd-` + name + `.lock"
exec 9>>"$f" || exit 1
flock ` + w + `9 || { echo "mohd: could not lock $f" >&2; exit 1; }
echo locked
exec cat >/dev/null`
}

// Lock implements remote.Host.
func (h *host) Lock(ctx context.Context, name string) (func() error, error) {
	if err := remote.ValidLockName(name); err != nil {
		return nil, fmt.Errorf("%s: %w", h.name, err)
	}
	step := "lock " + name
	var wait time.Duration
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
		if wait <= 0 {
			return nil, h.stepErr(step, ctx.Err())
		}
	}
	line, sudo := h.command(lockScript(name, wait), "")
	start := time.Now()
	s, release, err := h.session(ctx)
	if err != nil {
		return nil, h.stepErr(step, err)
	}
	fail := func(err error) (func() error, error) {
		release()
		err = h.stepErr(step, err)
		h.p.log.Warn("ssh: lock failed", map[string]any{"host": h.name, "lock": name, "error": h.p.red.Redact(err.Error())})
		return nil, err
	}
	var stderr remote.SyncBuffer
	s.Stderr = &stderr
	stdin, err := s.StdinPipe()
	if err != nil {
		return fail(err)
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	if err := startCmd(ctx, s, line); err != nil {
		return fail(fmt.Errorf("starting lock holder: %w", err))
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	locked := make(chan bool, 1)
	go func() {
		br := bufio.NewReader(stdout)
		l, _ := br.ReadString('\n')
		locked <- strings.TrimSpace(l) == "locked"
		_, _ = io.Copy(io.Discard, br)
	}()
	h.p.log.Debug("ssh: waiting for lock", map[string]any{"host": h.name, "lock": name})
	select {
	case ok := <-locked:
		if !ok {
			var werr error
			select {
			case werr = <-done:
			case <-time.After(cancelGrace):
				werr = errors.New("lock holder ended without exit status")
			}
			var ee *ssh.ExitError
			if errors.As(werr, &ee) {
				xe := remote.NewExitError(h.name, remote.Cmd{Command: "flock " + name, Desc: step}, ee.ExitStatus(), ee.Signal(), stderr.Bytes(), h.p.red)
				if sudo {
					classifySudo(xe, string(stderr.Bytes()), h.ep.auth.user)
				}
				release()
				return nil, xe
			}
			if werr == nil {
				werr = errors.New("lock holder exited without printing \"locked\"")
			}
			return fail(werr)
		}
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGTERM)
		_ = stdin.Close()
		_ = s.Close()
		select {
		case <-done: //nolint:errcheck // cancelled: only waiting for the holder to exit
		case <-time.After(cancelGrace):
		}
		return fail(fmt.Errorf("waiting for lock: %w", ctx.Err()))
	}
	acquired := time.Now()
	h.p.log.Info("ssh: lock acquired", map[string]any{"host": h.name, "lock": name, "waited_ms": acquired.Sub(start).Milliseconds()})

	var once sync.Once
	var uerr error
	return func() error {
		once.Do(func() {
			_ = stdin.Close() // the holder's cat sees EOF and exits
			_ = s.Signal(ssh.SIGTERM)
			select {
			case <-done: //nolint:errcheck // the holder exiting is the unlock
			case <-time.After(h.p.unlockTimeout):
				uerr = fmt.Errorf("%s: unlock %q: lock holder did not exit within %s", h.name, name, h.p.unlockTimeout)
			}
			release()
			h.p.log.Info("ssh: lock released", map[string]any{"host": h.name, "lock": name, "held_ms": time.Since(acquired).Milliseconds()})
		})
		return uerr
	}, nil
}
