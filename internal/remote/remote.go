// Package remote defines how MOHD's domain code talks to a managed host:
// run a command, upload a file, take a host-wide lock. It has no SSH, Terraform
// or Packer types, so role logic can be unit tested against Fake while the
// real implementation (package sshx) speaks SSH.
package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Host is one managed machine. Implementations are safe for concurrent use.
type Host interface {
	// Run executes c.Command with the remote POSIX shell. A non-zero exit
	// status is returned as *ExitError (the Result is filled as well).
	// Cancelling ctx terminates the remote command.
	Run(ctx context.Context, c Cmd) (Result, error)

	// Upload writes f atomically (temporary file in the same directory, then
	// rename) unless the host already has identical content, mode and
	// ownership. changed reports whether anything on the host was modified.
	Upload(ctx context.Context, f File) (changed bool, err error)

	// Lock takes the host-wide mutex name (see ValidLockName), blocking while
	// another holder (any process, any connection) has it, until ctx ends.
	// unlock releases it; it is safe to call more than once.
	Lock(ctx context.Context, name string) (unlock func() error, err error)

	// Name is "user@host:port", for messages.
	Name() string
}

// Cmd is one remote command.
type Cmd struct {
	// Command is a POSIX shell command line or script. Never put secrets in
	// it: pass them in Stdin (or a 0600 file uploaded first) instead.
	Command string
	// Stdin is fed to the command's standard input (nil: empty input).
	Stdin []byte
	// StdinStream, when set, is streamed to the command's standard input instead of Stdin: for data too
	// large to hold in memory (a database copy piped from one host to another).
	StdinStream io.Reader
	// StdoutStream, when set, receives the command's standard output as it comes instead of
	// Result.Stdout (which stays empty).
	StdoutStream io.Writer
	// Desc names the step for logs and errors ("install php packages").
	// When empty the (redacted, shortened) command is used instead.
	Desc string
	// Secrets are strings that must never appear in logs or errors; they
	// are replaced by "***" (in addition to the host's Redactor).
	Secrets []string
	// AsUser runs the command as this user (via "sudo -n -u USER").
	AsUser string
}

// Step returns the step description used in logs and errors.
func (c Cmd) Step() string {
	if c.Desc != "" {
		return c.Desc
	}
	return ShortCommand(c.Command)
}

// Result of a finished command. Stdout and Stderr are complete and not redacted.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int
	Duration       time.Duration
}

// File is a file to upload.
type File struct {
	Path    string      // absolute path on the host
	Content []byte      // sent over stdin, never argv
	Mode    os.FileMode // permission bits (setuid/setgid/sticky allowed); 0 means 0644
	// Owner and Group (names or numeric ids); empty leaves the owner that the
	// writing user gets (root when commands run through sudo).
	Owner, Group string
	// MkdirParents creates missing parent directories (mode 0755).
	MkdirParents bool
}

// Errors that ExitError.Err may hold (test with errors.Is).
var (
	// ErrSudoPasswordRequired: the login user may not run sudo without a
	// password. MOHD requires NOPASSWD sudo for non-root users.
	ErrSudoPasswordRequired = errors.New("sudo requires a password")
	// ErrSudoNotAllowed: the login user is not in sudoers at all.
	ErrSudoNotAllowed = errors.New("user may not run sudo")
	// ErrSudoMissing: sudo is not installed on the host.
	ErrSudoMissing = errors.New("sudo is not installed")
)

// ExitError reports a remote command that ended with a non-zero status (or
// was killed by a signal). All strings are already redacted.
type ExitError struct {
	Host     string // "user@host:port"
	Step     string // Cmd.Desc or shortened command
	Command  string // shortened, redacted command
	ExitCode int    // -1 when killed by a signal
	Signal   string // e.g. "TERM" when killed by a signal
	Stderr   string // tail of stderr: last TailLines lines / TailBytes bytes
	// Err is a classified cause (ErrSudoPasswordRequired, ...) or nil.
	Err error
	// Hint tells the user how to fix a classified cause.
	Hint string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: step %q failed", e.Host, e.Step)
	if e.Signal != "" {
		fmt.Fprintf(&b, ": killed by signal %s", e.Signal)
	} else {
		fmt.Fprintf(&b, " with exit code %d", e.ExitCode)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	if e.Command != "" && e.Command != e.Step {
		fmt.Fprintf(&b, "\ncommand: %s", e.Command)
	}
	if e.Stderr != "" {
		fmt.Fprintf(&b, "\nstderr (last lines):\n%s", e.Stderr)
	}
	return b.String()
}

func (e *ExitError) Unwrap() error { return e.Err }

// NewExitError builds an ExitError, redacting the command and the stderr
// tail with red (nil: no redaction) plus extra secrets.
func NewExitError(host string, c Cmd, code int, signal string, stderr []byte, red *Redactor) *ExitError {
	r := red.With(c.Secrets...)
	step := c.Desc
	if step == "" {
		step = ShortCommand(r.Redact(c.Command))
	} else {
		step = r.Redact(step)
	}
	return &ExitError{
		Host:     host,
		Step:     step,
		Command:  ShortCommand(r.Redact(c.Command)),
		ExitCode: code,
		Signal:   signal,
		Stderr:   Tail(r.Redact(string(stderr))),
	}
}

// Limits of the stderr tail kept in errors.
const (
	TailLines = 20
	TailBytes = 2048
)

// Tail returns the last TailLines lines of s, at most TailBytes bytes,
// without a trailing newline.
func Tail(s string) string {
	s = strings.TrimRight(s, "\r\n")
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			lines++
			if lines == TailLines {
				s = s[i+1:]
				break
			}
		}
	}
	if len(s) > TailBytes {
		s = s[len(s)-TailBytes:]
		// do not start in the middle of a UTF-8 sequence or line
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < 200 {
			s = s[i+1:]
		}
		s = "..." + strings.ToValidUTF8(s, "")
	}
	return s
}

// ShortCommand returns the first line of cmd, at most 200 bytes, for messages.
func ShortCommand(cmd string) string {
	cmd = strings.TrimSpace(cmd)
	more := false
	if i := strings.IndexByte(cmd, '\n'); i >= 0 {
		cmd, more = cmd[:i], true
	}
	if len(cmd) > 200 {
		cmd, more = strings.ToValidUTF8(cmd[:200], ""), true
	}
	if more {
		cmd += " ..."
	}
	return cmd
}

// Quote returns s as a single POSIX shell word ('...' quoting).
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ValidLockName reports whether name can be used with Host.Lock: 1-64
// characters from [A-Za-z0-9._-], not starting with '.' or '-'.
func ValidLockName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("invalid lock name %q: must be 1-64 characters", name)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("invalid lock name %q: must not start with '.' or '-'", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("invalid lock name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

// FileMode returns f.Mode with the 0644 default applied.
func (f File) FileMode() os.FileMode {
	if f.Mode&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) == 0 {
		return 0o644
	}
	return f.Mode & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
}

// ModeOctal returns mode as chmod/stat octal digits ("644", "4755").
func ModeOctal(mode os.FileMode) string {
	m := uint32(mode.Perm())
	if mode&os.ModeSetuid != 0 {
		m |= 0o4000
	}
	if mode&os.ModeSetgid != 0 {
		m |= 0o2000
	}
	if mode&os.ModeSticky != 0 {
		m |= 0o1000
	}
	return fmt.Sprintf("%o", m)
}
