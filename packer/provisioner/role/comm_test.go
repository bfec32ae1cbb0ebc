package role

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/mohd-dev/mohd/internal/remote"
)

func TestCommHostDetectsUserOnce(t *testing.T) {
	for _, tc := range []struct {
		uid, user string
		sudo      bool
		name      string
	}{
		{"0", "root", false, "root@test-build"},
		{"1000", "debian", true, "debian@test-build"},
	} {
		f := newFakeComm(tc.uid, tc.user, nil)
		h := connectFake(t, f)
		if h.sudo != tc.sudo || h.user != tc.user || h.Name() != tc.name {
			t.Errorf("uid %s: sudo %v, user %q, name %q; want %v, %q, %q", tc.uid, h.sudo, h.user, h.Name(), tc.sudo, tc.user, tc.name)
		}
		for range 3 {
			if _, err := h.Run(context.Background(), remote.Cmd{Command: "true"}); err != nil {
				t.Fatal(err)
			}
		}
		n := 0
		for _, c := range f.commands() {
			if strings.Contains(c, "id -u") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("uid %s: the user was detected %d times, want once: %q", tc.uid, n, f.commands())
		}
	}
}

func TestCommHostDetectionFailures(t *testing.T) {
	cases := []struct {
		name   string
		answer reply
		want   string
	}{
		{"fails", reply{stderr: "sh: id: not found\n", status: 127},
			`step "detect the communicator's user" failed with exit code 127`},
		{"garbage", reply{stdout: "uid=0(root)\n"},
			"`id -u && id -un` printed \"uid=0(root)\", not a user id and name"},
		{"disconnect", reply{status: packersdk.CmdDisconnect},
			"the communicator lost the connection"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			comm := &packersdk.MockCommunicator{StartStdout: tc.answer.stdout, StartStderr: tc.answer.stderr, StartExitStatus: tc.answer.status}
			_, err := newCommHost(context.Background(), comm, "b")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("newCommHost: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCommHostRunWrapsInShellAndSudo(t *testing.T) {
	script := `echo "it's $HOME"`
	quoted := `'echo "it'\''s $HOME"'`
	cases := []struct {
		uid, user, asUser string
		want              string
	}{
		{"0", "root", "", "sh -c " + quoted},
		{"0", "root", "root", "sh -c " + quoted},
		{"0", "root", "redis", "sudo -n -H -u redis -- sh -c " + quoted},
		{"1000", "debian", "", "sudo -n -- sh -c " + quoted},
		{"1000", "debian", "debian", "sh -c " + quoted},
		{"1000", "debian", "postgres", "sudo -n -H -u postgres -- sh -c " + quoted},
	}
	for _, tc := range cases {
		f := newFakeComm(tc.uid, tc.user, func(string, string) reply { return reply{stdout: "out\n", stderr: "err\n"} })
		h := connectFake(t, f)
		res, err := h.Run(context.Background(), remote.Cmd{Command: script, AsUser: tc.asUser, Stdin: []byte("input")})
		if err != nil {
			t.Fatal(err)
		}
		last := f.sent[len(f.sent)-1]
		if last.line != tc.want {
			t.Errorf("user %s, as %q: sent\n  %s\nwant\n  %s", tc.user, tc.asUser, last.line, tc.want)
		}
		if last.stdin != "input" {
			t.Errorf("stdin %q, want the command's", last.stdin)
		}
		if string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" || res.ExitCode != 0 {
			t.Errorf("result %+v", res)
		}
	}
}

// The docker communicator closes a command's stdin only when it has a reader to copy: the adapter must
// always give one, or `cat` and `sh -s` would wait forever.
func TestCommHostAlwaysGivesStdin(t *testing.T) {
	var got []bool
	comm := &stdinProbe{got: &got}
	h, err := newCommHost(context.Background(), comm, "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Run(context.Background(), remote.Cmd{Command: "cat"}); err != nil {
		t.Fatal(err)
	}
	for i, ok := range got {
		if !ok {
			t.Errorf("command %d had a nil Stdin", i)
		}
	}
}

type stdinProbe struct {
	packersdk.MockCommunicator
	got *[]bool
}

func (s *stdinProbe) Start(ctx context.Context, rc *packersdk.RemoteCmd) error {
	*s.got = append(*s.got, rc.Stdin != nil)
	m := &packersdk.MockCommunicator{StartStdout: "0\nroot\n"}
	return m.Start(ctx, rc)
}

func TestCommHostExitError(t *testing.T) {
	var lines []string
	for i := 1; i <= 30; i++ {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	f := newFakeComm("0", "root", func(string, string) reply {
		return reply{stdout: "partial\n", stderr: strings.Join(lines, "\n") + "\nthe token s3cr3t-t0ken leaked\n", status: 100}
	})
	h := connectFake(t, f)
	res, err := h.Run(context.Background(), remote.Cmd{
		Command: "apt-get install redis-server --password s3cr3t-t0ken",
		Desc:    "install redis-server",
		Secrets: []string{"s3cr3t-t0ken"},
	})
	var ee *remote.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Run returned %T %v, want *remote.ExitError", err, err)
	}
	if ee.Host != "root@test-build" || ee.Step != "install redis-server" || ee.ExitCode != 100 || ee.Signal != "" || ee.Err != nil {
		t.Errorf("ExitError %+v", ee)
	}
	if strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(ee.Command, "--password ***") {
		t.Errorf("the secret is not redacted:\n%s", err)
	}
	if !strings.Contains(ee.Stderr, "line 30") || strings.Contains(ee.Stderr, "line 10\n") {
		t.Errorf("stderr is not the tail:\n%s", ee.Stderr)
	}
	if res.ExitCode != 100 || string(res.Stdout) != "partial\n" {
		t.Errorf("the result is not filled with the failure: %+v", res)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, `root@test-build: step "install redis-server" failed with exit code 100`) {
		t.Errorf("message:\n%s", msg)
	}
}

func TestCommHostClassifiesSudoFailures(t *testing.T) {
	cases := []struct {
		stderr string
		status int
		want   error
	}{
		{"sudo: a password is required\n", 1, remote.ErrSudoPasswordRequired},
		{"debian is not in the sudoers file.  This incident will be reported.\n", 1, remote.ErrSudoNotAllowed},
		{"sh: 1: sudo: not found\n", 127, remote.ErrSudoMissing},
	}
	for _, tc := range cases {
		f := newFakeComm("1000", "debian", func(string, string) reply { return reply{stderr: tc.stderr, status: tc.status} })
		h := connectFake(t, f)
		_, err := h.Run(context.Background(), remote.Cmd{Command: "true", Desc: "step"})
		if !errors.Is(err, tc.want) {
			t.Errorf("%q: %v, want %v", tc.stderr, err, tc.want)
		} else if !strings.Contains(err.Error(), "debian ALL=(ALL) NOPASSWD: ALL") && tc.want != remote.ErrSudoMissing {
			t.Errorf("no hint how to fix it: %v", err)
		}
	}
	// As root nothing goes through sudo: a command's own "password is required" is its own business.
	f := newFakeComm("0", "root", func(string, string) reply { return reply{stderr: "sudo: a password is required\n", status: 1} })
	_, err := connectFake(t, f).Run(context.Background(), remote.Cmd{Command: "true"})
	var ee *remote.ExitError
	if !errors.As(err, &ee) || ee.Err != nil {
		t.Errorf("as root: %v", err)
	}
}

func TestCommHostDisconnectAndCancel(t *testing.T) {
	f := newFakeComm("0", "root", func(string, string) reply { return reply{status: packersdk.CmdDisconnect} })
	_, err := connectFake(t, f).Run(context.Background(), remote.Cmd{Command: "apt-get update", Desc: "update"})
	var ee *remote.ExitError
	if err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), `root@test-build: step "update": the communicator lost the connection`) {
		t.Errorf("disconnect: %v", err)
	}

	hang := &hangingComm{}
	h, err := newCommHost(context.Background(), hang, "b")
	if err != nil {
		t.Fatal(err)
	}
	hang.hang = true
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = h.Run(ctx, remote.Cmd{Command: "sleep 1000", Desc: "sleep"})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("cancel: %v after %s", err, time.Since(start))
	}
}

// hangingComm answers `id -u` and then starts commands that never end.
type hangingComm struct {
	packersdk.MockCommunicator
	hang bool
}

func (c *hangingComm) Start(ctx context.Context, rc *packersdk.RemoteCmd) error {
	if c.hang {
		return nil
	}
	m := &packersdk.MockCommunicator{StartStdout: "0\nroot\n"}
	return m.Start(ctx, rc)
}

func TestCommHostLock(t *testing.T) {
	f := newFakeComm("1000", "debian", nil)
	h := connectFake(t, f)
	unlock, err := h.Lock(context.Background(), "apply")
	if err != nil {
		t.Fatal(err)
	}
	// A build owns its machine: a second holder is not excluded, and nothing runs on the machine.
	unlock2, err := h.Lock(context.Background(), "apply")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []func() error{unlock, unlock, unlock2} { // twice is safe
		if err := u(); err != nil {
			t.Errorf("unlock: %v", err)
		}
	}
	if len(f.commands()) != 1 {
		t.Errorf("Lock ran commands: %q", f.commands())
	}
	if _, err := h.Lock(context.Background(), "../x"); err == nil {
		t.Error("Lock accepted an invalid name")
	}
}

// own returns this process's uid and gid as strings: the owner tests give files so they run without root.
func own() (string, string) { return strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid()) }

func localHost(t *testing.T, uid, user string) (*commHost, *localComm) {
	t.Helper()
	c := newLocalComm(t, uid, user)
	h := connectFake(t, c)
	h.uploadDir = t.TempDir()
	return h, c
}

func TestUploadWritesSkipsAndChanges(t *testing.T) {
	h, c := localHost(t, "", "")
	uid, gid := own()
	dir := t.TempDir()
	p := filepath.Join(dir, "etc", "mohd", "app.conf")
	f := remote.File{Path: p, Content: []byte("a = 1\n"), Mode: 0o640, Owner: uid, Group: gid, MkdirParents: true}
	ctx := context.Background()

	changed, err := h.Upload(ctx, f)
	if err != nil || !changed {
		t.Fatalf("first upload: changed %v, %v", changed, err)
	}
	assertFile(t, p, "a = 1\n", 0o640)
	if len(c.uploads) != 1 || !strings.HasPrefix(c.uploads[0].path, h.uploadDir+"/mohd-upload.") || c.uploads[0].mode != 0o600 {
		t.Errorf("the communicator's upload: %+v, want one 0600 file in %s", c.uploads, h.uploadDir)
	}
	assertEmptyDir(t, h.uploadDir) // the temporary upload is gone
	assertOnly(t, filepath.Dir(p), "app.conf")

	// Identical: nothing is uploaded or changed.
	changed, err = h.Upload(ctx, f)
	if err != nil || changed {
		t.Fatalf("identical upload: changed %v, %v", changed, err)
	}
	if len(c.uploads) != 1 {
		t.Errorf("an identical file was uploaded again")
	}

	// Only the mode differs: fixed in place, without an upload.
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	changed, err = h.Upload(ctx, f)
	if err != nil || !changed {
		t.Fatalf("mode fix: changed %v, %v", changed, err)
	}
	assertFile(t, p, "a = 1\n", 0o640)
	if len(c.uploads) != 1 {
		t.Errorf("a mode change uploaded the content again")
	}

	// New content (and the 0644 default mode).
	f.Content, f.Mode = []byte("a = 2\n"), 0
	changed, err = h.Upload(ctx, f)
	if err != nil || !changed {
		t.Fatalf("new content: changed %v, %v", changed, err)
	}
	assertFile(t, p, "a = 2\n", 0o644)
	if len(c.uploads) != 2 {
		t.Errorf("%d uploads, want 2", len(c.uploads))
	}
	assertEmptyDir(t, h.uploadDir)
	assertOnly(t, filepath.Dir(p), "app.conf")
}

func TestUploadThroughSudo(t *testing.T) {
	h, c := localHost(t, "1000", "builder")
	uid, gid := own()
	p := filepath.Join(t.TempDir(), "x.conf")
	changed, err := h.Upload(context.Background(), remote.File{Path: p, Content: []byte("x\n"), Owner: uid, Group: gid})
	if err != nil || !changed {
		t.Fatalf("upload: changed %v, %v", changed, err)
	}
	assertFile(t, p, "x\n", 0o644)
	// Inspecting and moving into place run as root; the temporary file is the communicator's user's, so
	// that scp (logged in as that user) can write it.
	var sudo, plain []string
	for _, l := range c.commands()[1:] {
		switch {
		case strings.HasPrefix(l, "sudo -n -- sh -c '"):
			sudo = append(sudo, l)
		case strings.HasPrefix(l, "sh -c '"):
			plain = append(plain, l)
		default:
			t.Errorf("command neither through sudo nor plain: %s", l)
		}
	}
	if len(sudo) != 2 || !strings.Contains(sudo[0], "sha256sum") || !strings.Contains(sudo[1], `mv -f -- "$t" "$p"`) {
		t.Errorf("through sudo: %q", sudo)
	}
	if len(plain) != 1 || !strings.Contains(plain[0], "mktemp") {
		t.Errorf("as the user: %q", plain)
	}
	if got := c.sudoCalls(); len(got) != 2 || got[0] != "sudo -n" {
		t.Errorf("sudo was called as %q", got)
	}
}

func TestUploadFailures(t *testing.T) {
	ctx := context.Background()
	uid, gid := own()

	t.Run("corrupted transfer", func(t *testing.T) {
		h, c := localHost(t, "", "")
		c.corrupt = func(b []byte) []byte { return append(b, "junk"...) }
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := h.Upload(ctx, remote.File{Path: p, Content: []byte("new\n"), Owner: uid, Group: gid})
		var ee *remote.ExitError
		if !errors.As(err, &ee) || ee.ExitCode != 4 || !strings.Contains(ee.Stderr, "does not match (sha256)") || ee.Step != "upload "+p {
			t.Fatalf("Upload: %v", err)
		}
		assertFile(t, p, "old\n", 0o644)
		assertEmptyDir(t, h.uploadDir)
		assertOnly(t, filepath.Dir(p), "f")
	})
	t.Run("communicator fails", func(t *testing.T) {
		h, _ := localHost(t, "", "")
		comm := &failingUpload{localComm: h.comm.(*localComm)}
		h.comm = comm
		_, err := h.Upload(ctx, remote.File{Path: filepath.Join(t.TempDir(), "f"), Content: []byte("x")})
		if err == nil || !strings.Contains(err.Error(), "the communicator could not upload") || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("Upload: %v", err)
		}
		assertEmptyDir(t, h.uploadDir)
	})
	t.Run("no parent directory", func(t *testing.T) {
		h, _ := localHost(t, "", "")
		p := filepath.Join(t.TempDir(), "missing", "f")
		_, err := h.Upload(ctx, remote.File{Path: p, Content: []byte("x"), Owner: uid})
		var ee *remote.ExitError
		if !errors.As(err, &ee) || ee.ExitCode != 3 || !strings.Contains(ee.Stderr, "parent directory") {
			t.Fatalf("Upload: %v", err)
		}
		assertEmptyDir(t, h.uploadDir)
	})
	t.Run("not a file", func(t *testing.T) {
		h, c := localHost(t, "", "")
		_, err := h.Upload(ctx, remote.File{Path: t.TempDir(), Content: []byte("x")})
		if err == nil || !strings.Contains(err.Error(), "exists and is not a regular file") || len(c.uploads) != 0 {
			t.Fatalf("Upload: %v", err)
		}
	})
	t.Run("bad paths and owners", func(t *testing.T) {
		f := newFakeComm("0", "root", nil)
		h := connectFake(t, f)
		for _, file := range []remote.File{
			{Path: "etc/x"}, {Path: "/etc/../x"}, {Path: "/"}, {Path: ""},
			{Path: "/etc/x", Owner: "a:b"}, {Path: "/etc/x", Group: "-r"},
		} {
			if _, err := h.Upload(ctx, file); err == nil {
				t.Errorf("Upload accepted %+v", file)
			}
		}
		if len(f.commands()) != 1 {
			t.Errorf("invalid uploads ran commands: %q", f.commands())
		}
	})
	t.Run("odd inspection", func(t *testing.T) {
		f := newFakeComm("0", "root", func(string, string) reply { return reply{stdout: "what?\n"} })
		_, err := connectFake(t, f).Upload(ctx, remote.File{Path: "/etc/x"})
		if err == nil || !strings.Contains(err.Error(), "unexpected output from inspection") {
			t.Fatalf("Upload: %v", err)
		}
	})
}

type failingUpload struct{ *localComm }

func (f *failingUpload) Upload(string, io.Reader, *os.FileInfo) error { return errors.New("disk full") }

func assertFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content || fi.Mode().Perm() != mode {
		t.Errorf("%s: %q mode %o, want %q mode %o", p, b, fi.Mode().Perm(), content, mode)
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	assertOnly(t, dir)
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}
