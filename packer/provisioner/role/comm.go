package role

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path"
	"strings"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/mohd-dev/mohd/internal/remote"
)

// defaultUploadDir is where uploads land before they are moved into place as root. Not /tmp: the lab's
// machines (and the docker template's build container) mount a tmpfs there, and the docker communicator
// uploads with `docker cp`, which writes beneath a tmpfs mount where nothing inside the container sees it.
// /var/tmp is on the root filesystem everywhere and writable by every user, as the upload needs.
const defaultUploadDir = "/var/tmp"

// commHost is a remote.Host over the communicator of a Packer build: the role library drives the machine
// Packer started exactly as it drives a host over SSH (package sshx), so an image and a converged host are
// given their role by the same code.
//
// Every command runs as root: directly when the communicator's user is root, through `sudo -n` otherwise
// (found out once, with `id -u`, by newCommHost).
type commHost struct {
	comm packersdk.Communicator
	name string
	user string // the communicator's user name
	sudo bool
	red  *remote.Redactor
	// uploadDir holds uploads until they are moved into place (defaultUploadDir; tests change it).
	uploadDir string
}

var _ remote.Host = (*commHost)(nil)

// newCommHost asks the machine who the communicator's user is. name labels the machine in messages and
// errors ("<build name>" in Packer's UI); the user name is put in front of it as in "user@host".
func newCommHost(ctx context.Context, comm packersdk.Communicator, name string) (*commHost, error) {
	h := &commHost{comm: comm, name: name, red: remote.NewRedactor(), uploadDir: defaultUploadDir}
	c := remote.Cmd{Command: "id -u && id -un", Desc: "detect the communicator's user"}
	res, err := h.exec(ctx, c.Command, c)
	if err != nil {
		return nil, h.stepErr(c, err)
	}
	if res.ExitCode != 0 {
		return nil, remote.NewExitError(h.name, c, res.ExitCode, "", res.Stderr, h.red)
	}
	f := strings.Fields(string(res.Stdout))
	if len(f) != 2 || strings.Trim(f[0], "0123456789") != "" {
		return nil, fmt.Errorf("%s: step %q: `id -u && id -un` printed %q, not a user id and name", h.name, c.Desc, strings.TrimSpace(string(res.Stdout)))
	}
	h.user, h.sudo = f[1], f[0] != "0"
	h.name = h.user + "@" + name
	return h, nil
}

// Name implements remote.Host.
func (h *commHost) Name() string { return h.name }

// Lock implements remote.Host without a lock: a Packer build owns its machine. Nothing else converges a
// machine that a builder started for one build (the provider never sees it, and Packer runs a build's
// provisioners one after the other), so there is no one to exclude; and a communicator has no way to hold
// a lock across commands, which a remote lock (flock held by a long-running command) would need.
func (h *commHost) Lock(_ context.Context, name string) (func() error, error) {
	if err := remote.ValidLockName(name); err != nil {
		return nil, fmt.Errorf("%s: %w", h.name, err)
	}
	return func() error { return nil }, nil
}

// command returns the command line sent to the communicator for a POSIX shell script: "sh -c '...'" (the
// communicator's own shell may be anything), as root (through "sudo -n" when the communicator's user is not
// root) unless asUser names another user (through "sudo -n -u").
func (h *commHost) command(script, asUser string) string {
	var b strings.Builder
	switch {
	case asUser == h.user, asUser == "" && !h.sudo:
	case asUser != "":
		b.WriteString("sudo -n -H -u " + remote.Quote(asUser) + " -- ")
	default:
		// -n: fail at once, rather than hang on a password prompt, when sudo wants a password.
		b.WriteString("sudo -n -- ")
	}
	b.WriteString("sh -c " + remote.Quote(script))
	return b.String()
}

// Run implements remote.Host.
func (h *commHost) Run(ctx context.Context, c remote.Cmd) (remote.Result, error) {
	h.red.Add(c.Secrets...)
	step := remote.ShortCommand(h.red.Redact(c.Command))
	if c.Desc != "" {
		step = h.red.Redact(c.Desc)
	}
	line := h.command(c.Command, c.AsUser)
	res, err := h.exec(ctx, line, c)
	if err != nil {
		log.Printf("[WARN] moodle-role: %s: step %q did not complete: %s", h.name, step, h.red.Redact(err.Error()))
		return res, h.stepErr(c, err)
	}
	log.Printf("[DEBUG] moodle-role: %s: step %q exited %d after %s", h.name, step, res.ExitCode, res.Duration.Round(time.Millisecond))
	if res.ExitCode == 0 {
		return res, nil
	}
	ee := remote.NewExitError(h.name, c, res.ExitCode, "", res.Stderr, h.red)
	if strings.HasPrefix(line, "sudo ") {
		classifySudo(ee, string(res.Stderr), h.user)
	}
	return res, ee
}

func (h *commHost) stepErr(c remote.Cmd, err error) error {
	r := h.red.With(c.Secrets...)
	step := c.Desc
	if step == "" {
		step = remote.ShortCommand(c.Command)
	}
	// err is the communicator's or the context's, never the command's output: it holds no secret.
	return fmt.Errorf("%s: step %q: %w", h.name, r.Redact(step), err)
}

// errDisconnected is a command whose end the communicator could not see.
var errDisconnected = errors.New("the communicator lost the connection before the command ended")

// exec runs line and waits for it. A non-zero exit is no error here: it is in Result.ExitCode.
func (h *commHost) exec(ctx context.Context, line string, c remote.Cmd) (remote.Result, error) {
	start := time.Now()
	var stdout, stderr remote.SyncBuffer
	rc := &packersdk.RemoteCmd{
		Command: line,
		// Always a reader, even an empty one: the docker communicator closes the command's stdin only when it
		// has one to copy, and a command reading stdin would wait for it forever.
		Stdin:  bytes.NewReader(c.Stdin),
		Stdout: &stdout,
		Stderr: &stderr,
	}
	if c.StdinStream != nil {
		rc.Stdin = c.StdinStream
	}
	if c.StdoutStream != nil {
		rc.Stdout = c.StdoutStream
	}
	if err := h.comm.Start(ctx, rc); err != nil {
		return remote.Result{ExitCode: -1, Duration: time.Since(start)}, fmt.Errorf("starting the command: %w", err)
	}
	done := make(chan int, 1)
	go func() { done <- rc.Wait() }()
	var status int
	select {
	case status = <-done:
	case <-ctx.Done():
		// A communicator cannot signal a command: it may go on running on the machine until it ends.
		return remote.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: -1, Duration: time.Since(start)},
			fmt.Errorf("cancelled while the command ran: %w", ctx.Err())
	}
	res := remote.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: status, Duration: time.Since(start)}
	if status == packersdk.CmdDisconnect {
		res.ExitCode = -1
		return res, errDisconnected
	}
	return res, nil
}

// classifySudo recognises sudo's own failures, as package sshx does for SSH hosts.
func classifySudo(ee *remote.ExitError, stderr, user string) {
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(stderr, s) {
				return true
			}
		}
		return false
	}
	fix := fmt.Sprintf("add \"%s ALL=(ALL) NOPASSWD: ALL\" to /etc/sudoers.d/%s in the source image, or make the communicator log in as root", user, user)
	switch {
	case ee.ExitCode == 1 && has("a password is required", "a terminal is required", "no tty present"):
		ee.Err = remote.ErrSudoPasswordRequired
		ee.Hint = fmt.Sprintf("moodle-role runs commands with \"sudo -n\" and needs passwordless sudo for user %q: %s", user, fix)
	case ee.ExitCode == 1 && has("is not in the sudoers file", "is not allowed to execute", "may not run sudo"):
		ee.Err = remote.ErrSudoNotAllowed
		ee.Hint = fmt.Sprintf("allow user %q passwordless sudo: %s", user, fix)
	case ee.ExitCode == 127 && has("sudo: not found", "sudo: command not found"):
		ee.Err = remote.ErrSudoMissing
		ee.Hint = "install sudo in the source image, or make the communicator log in as root"
	}
}

// Upload implements remote.Host like package sshx does: it compares the file on the machine (sha256, mode,
// owner) first and changes nothing when it is identical; otherwise it uploads the content with the
// communicator to a temporary file of the communicator's user (mode 0600) and, as root, checks its sha256,
// copies it next to the destination with its owner and mode, and renames it into place, so that the file is
// never seen half-written or with the wrong owner.
func (h *commHost) Upload(ctx context.Context, f remote.File) (bool, error) {
	u, err := remote.NewUpload(h.name, f)
	if err != nil {
		return false, err
	}
	act, err := u.Reconcile(ctx, h)
	if err != nil {
		return false, err
	}
	if act != remote.UploadWrite {
		return act == remote.UploadFixOwnerMode, nil
	}
	step := u.Step

	// The temporary file belongs to the communicator's user, who must be able to write it (scp logs in as
	// that user); mktemp makes it 0600.
	res, err := h.Run(ctx, remote.Cmd{Command: "mktemp " + remote.Quote(h.uploadDir+"/mohd-upload.XXXXXXXXXX"), Desc: step + " (temporary file)", AsUser: h.user})
	if err != nil {
		return false, err
	}
	tmp := strings.TrimSpace(string(res.Stdout))
	if !strings.HasPrefix(tmp, h.uploadDir+"/mohd-upload.") || strings.ContainsAny(tmp, "\n'") {
		return false, fmt.Errorf("%s: %s: mktemp printed %q, not a temporary file in %s", h.name, step, tmp, h.uploadDir)
	}
	fi := os.FileInfo(uploadInfo{name: path.Base(tmp), size: int64(len(f.Content))})
	if err := h.comm.Upload(tmp, bytes.NewReader(f.Content), &fi); err != nil {
		_, _ = h.Run(ctx, remote.Cmd{Command: "rm -f -- " + remote.Quote(tmp), Desc: step + " (remove temporary file)"})
		return false, fmt.Errorf("%s: %s: the communicator could not upload to %s: %w", h.name, step, tmp, err)
	}
	if _, err := h.Run(ctx, remote.Cmd{Command: installScript(u, tmp), Desc: step}); err != nil {
		return false, err
	}
	log.Printf("[DEBUG] moodle-role: %s: uploaded %s (%d bytes, mode %s)", h.name, f.Path, len(f.Content), u.Mode)
	return true, nil
}

// installScript moves the uploaded src into place at u's destination: checked, copied to a temporary file
// in the destination's directory (same filesystem), given its owner and mode, renamed. src is removed in
// any case.
func installScript(u *remote.Upload, src string) string {
	f := u.File
	var b strings.Builder
	b.WriteString("set -e\nsrc=" + remote.Quote(src) + "\np=" + remote.Quote(f.Path) + "\nd=" + remote.Quote(path.Dir(f.Path)) + "\n")
	b.WriteString("t=\ntrap 'rm -f -- \"$src\" ${t:+\"$t\"}' EXIT\ntrap 'exit 143' HUP INT TERM PIPE\n")
	b.WriteString(remote.MkdirScript(f))
	b.WriteString(`h=$(sha256sum < "$src")
if [ "${h%% *}" != "` + u.SHA256 + `" ]; then echo "mohd: uploaded content does not match (sha256), upload incomplete" >&2; exit 4; fi
umask 077
t=$(mktemp "$d/.mohd-upload.XXXXXXXXXX")
cat -- "$src" > "$t"
`)
	b.WriteString(remote.ChownChmod(f, u.Mode, `"$t"`))
	b.WriteString("mv -f -- \"$t\" \"$p\"\nt=\n")
	return b.String()
}

// uploadInfo describes an upload to the communicator: mode 0600, so that the content is never readable by
// others on its way (the docker communicator and scp both take the mode from it).
type uploadInfo struct {
	name string
	size int64
}

func (u uploadInfo) Name() string       { return u.name }
func (u uploadInfo) Size() int64        { return u.size }
func (u uploadInfo) Mode() os.FileMode  { return 0o600 }
func (u uploadInfo) ModTime() time.Time { return time.Now() }
func (u uploadInfo) IsDir() bool        { return false }
func (u uploadInfo) Sys() any           { return nil }
