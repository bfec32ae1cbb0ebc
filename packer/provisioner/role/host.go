package role

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// outputTailLines is how many lines of a failed command's output its error quotes.
const outputTailLines = 20

// host runs commands on the machine being provisioned through Packer's communicator. Commands that change
// the system run as root: directly when the communicator's user is root, through `sudo -n` otherwise.
type host struct {
	comm packersdk.Communicator
	ui   packersdk.Ui
	sudo bool
}

// connect finds out whether the communicator's user is root (`id -u`); when it is not, it checks that the
// user has passwordless sudo.
func connect(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator) (*host, error) {
	h := &host{comm: comm, ui: ui}
	out, err := h.run(ctx, "detect the remote user", "id -u", runOpts{})
	if err != nil {
		return nil, err
	}
	uid := strings.TrimSpace(out)
	if uid == "" || strings.Trim(uid, "0123456789") != "" {
		return nil, fmt.Errorf("step \"detect the remote user\": `id -u` printed %q, not a user id", uid)
	}
	h.sudo = uid != "0"
	if h.sudo {
		ui.Say(fmt.Sprintf("Remote user has uid %s: running privileged steps with sudo -n", uid))
		if _, err := h.run(ctx, "check passwordless sudo", "sudo -n true", runOpts{}); err != nil {
			return nil, fmt.Errorf("%w\n(the communicator's user must be root or have passwordless sudo)", err)
		}
	}
	return h, nil
}

type runOpts struct {
	// stream sends each line of output to the UI as it comes (for long steps such as apt-get).
	stream bool
	// okStatus are exit statuses besides 0 that do not fail the step.
	okStatus []int
}

// root runs a POSIX shell script as root and returns its standard output.
func (h *host) root(ctx context.Context, step, script string, opts runOpts) (string, error) {
	return h.run(ctx, step, h.asRoot(script), opts)
}

// user runs a POSIX shell script as the communicator's user and returns its standard output.
func (h *host) user(ctx context.Context, step, script string, opts runOpts) (string, error) {
	return h.run(ctx, step, "sh -c "+shellQuote(script), opts)
}

func (h *host) asRoot(script string) string {
	if h.sudo {
		// -n: fail at once, rather than hang on a password prompt, when sudo needs a password.
		return "sudo -n sh -c " + shellQuote(script)
	}
	return "sh -c " + shellQuote(script)
}

// run runs command and waits for it. It returns the command's standard output, or an error naming the step,
// the exit status and the tail of the output.
func (h *host) run(ctx context.Context, step, command string, opts runOpts) (string, error) {
	stdout, combined := &lockedBuffer{}, &lockedBuffer{}
	var outW, errW io.Writer = combined, combined
	var streams []*lineWriter
	if opts.stream {
		so, se := &lineWriter{emit: h.ui.Say}, &lineWriter{emit: h.ui.Say}
		streams = append(streams, so, se)
		outW, errW = io.MultiWriter(combined, so), io.MultiWriter(combined, se)
	}
	cmd := &packersdk.RemoteCmd{
		Command: command,
		Stdout:  io.MultiWriter(stdout, outW),
		Stderr:  errW,
	}
	if err := h.comm.Start(ctx, cmd); err != nil {
		return "", fmt.Errorf("step %q: starting the remote command: %w", step, err)
	}
	done := make(chan int, 1)
	go func() { done <- cmd.Wait() }()
	var status int
	select {
	case status = <-done:
	case <-ctx.Done():
		return "", fmt.Errorf("step %q: %w", step, ctx.Err())
	}
	for _, s := range streams {
		s.flush()
	}
	if status == 0 || slices.Contains(opts.okStatus, status) {
		return stdout.String(), nil
	}
	return "", &stepError{Step: step, Command: command, Status: status, Output: combined.String()}
}

// stepError is a remote command that exited with a failure status.
type stepError struct {
	Step    string
	Command string
	Status  int
	Output  string
}

func (e *stepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "step %q failed: the remote command exited with status %d", e.Step, e.Status)
	if e.Status == packersdk.CmdDisconnect {
		b.WriteString(" (the communicator lost the connection)")
	}
	tail, n := lastLines(e.Output, outputTailLines)
	if n == 0 {
		b.WriteString(" and printed nothing")
	} else {
		fmt.Fprintf(&b, "; last %d line(s) of its output:\n%s", n, tail)
	}
	return b.String()
}

// lastLines returns the last n non-empty lines of s (without a trailing newline) and how many there are.
func lastLines(s string, n int) (string, int) {
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, strings.TrimRight(l, " \t\r"))
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n"), len(lines)
}

// shellQuote quotes s as one word for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellQuoteAll(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	return strings.Join(q, " ")
}

// lockedBuffer collects stdout and stderr, which communicators write from different goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lineWriter hands complete lines to emit.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) line(l string) {
	if l = strings.TrimRight(l, " \t\r"); strings.TrimSpace(l) != "" {
		w.emit(l)
	}
}
