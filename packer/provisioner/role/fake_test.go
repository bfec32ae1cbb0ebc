package role

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

func TestMain(m *testing.M) {
	log.SetOutput(io.Discard) // the adapter logs every command for PACKER_LOG
	os.Exit(m.Run())
}

// testUi is a packersdk.BasicUi whose output the test can read.
func testUi() (*packersdk.BasicUi, *bytes.Buffer) {
	var out bytes.Buffer
	return &packersdk.BasicUi{Reader: new(bytes.Buffer), Writer: &out, ErrorWriter: &out, PB: &packersdk.NoopProgressTracker{}}, &out
}

// reply is a scripted answer of fakeComm.
type reply struct {
	stdout, stderr string
	status         int
}

// sentCmd is a command the communicator was given, with the stdin it got.
type sentCmd struct {
	line  string
	stdin string
}

// fakeComm is a packersdk.MockCommunicator whose commands are answered by a function of the command line and
// stdin, recording every command and upload (the mock itself keeps only the last). It answers the adapter's
// `id -u && id -un` as the user uid/name.
type fakeComm struct {
	packersdk.MockCommunicator

	uid, user string
	answer    func(line, stdin string) reply
	uploadErr error

	mu      sync.Mutex
	sent    []sentCmd
	uploads []fakeUpload
}

type fakeUpload struct {
	path, data string
	mode       os.FileMode
}

func newFakeComm(uid, user string, answer func(line, stdin string) reply) *fakeComm {
	return &fakeComm{uid: uid, user: user, answer: answer}
}

func (f *fakeComm) Start(ctx context.Context, rc *packersdk.RemoteCmd) error {
	var stdin []byte
	if rc.Stdin != nil {
		stdin, _ = io.ReadAll(rc.Stdin)
	}
	f.mu.Lock()
	f.sent = append(f.sent, sentCmd{rc.Command, string(stdin)})
	f.mu.Unlock()
	var r reply
	switch {
	case rc.Command == "id -u && id -un":
		r = reply{stdout: f.uid + "\n" + f.user + "\n"}
	case f.answer != nil:
		r = f.answer(rc.Command, string(stdin))
	}
	mock := &packersdk.MockCommunicator{StartStdout: r.stdout, StartStderr: r.stderr, StartExitStatus: r.status}
	rc.Stdin = nil // read above
	return mock.Start(ctx, rc)
}

func (f *fakeComm) Upload(path string, r io.Reader, fi *os.FileInfo) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	var mode os.FileMode
	if fi != nil {
		mode = (*fi).Mode()
	}
	f.mu.Lock()
	f.uploads = append(f.uploads, fakeUpload{path, string(b), mode})
	f.mu.Unlock()
	return f.uploadErr
}

func (f *fakeComm) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.sent))
	for i, s := range f.sent {
		out[i] = s.line
	}
	return out
}

// connectFake returns a commHost over f, failing the test when the adapter cannot be made.
func connectFake(t *testing.T, comm packersdk.Communicator) *commHost {
	t.Helper()
	h, err := newCommHost(context.Background(), comm, "test-build")
	if err != nil {
		t.Fatalf("newCommHost: %v", err)
	}
	return h
}

// localComm is a packersdk.Communicator that runs every command on this machine with `sh -c` and uploads by
// writing the local file, so the adapter's scripts (inspection, the move into place) really run. A fake
// `sudo` first on PATH runs what follows its options (recording them) and the communicator's user can be
// made to look non-root: the adapter's sudo wrapping is exercised without privileges. Only ever give it
// paths under a test's temporary directory.
type localComm struct {
	packersdk.MockCommunicator

	uid, user string // answered to `id -u && id -un`; empty: the real ones
	bin       string // holds the fake sudo
	sudoLog   string
	// corrupt, when set, changes what an upload writes (a transfer gone wrong).
	corrupt func([]byte) []byte

	mu      sync.Mutex
	lines   []string
	uploads []fakeUpload
}

const fakeSudo = `#!/bin/sh
# Test stand-in for sudo: records its options, then runs the command after "--" as the current user.
opts=
while [ $# -gt 0 ] && [ "$1" != "--" ]; do opts="$opts $1"; shift; done
[ "$1" = "--" ] && shift
echo "sudo$opts" >> "$MOHD_FAKE_SUDO_LOG"
exec "$@"
`

func newLocalComm(t *testing.T, uid, user string) *localComm {
	t.Helper()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "sudo"), []byte(fakeSudo), 0o755); err != nil {
		t.Fatal(err)
	}
	return &localComm{uid: uid, user: user, bin: bin, sudoLog: filepath.Join(bin, "sudo.log")}
}

func (c *localComm) Start(ctx context.Context, rc *packersdk.RemoteCmd) error {
	c.mu.Lock()
	c.lines = append(c.lines, rc.Command)
	c.mu.Unlock()
	line := rc.Command
	if line == "id -u && id -un" && c.uid != "" {
		line = "echo " + c.uid + "; echo " + c.user
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Env = append(os.Environ(), "PATH="+c.bin+":"+os.Getenv("PATH"), "MOHD_FAKE_SUDO_LOG="+c.sudoLog)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = rc.Stdin, rc.Stdout, rc.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			rc.SetExited(0)
		case errors.As(err, &ee):
			rc.SetExited(ee.ExitCode())
		default:
			rc.SetExited(packersdk.CmdDisconnect)
		}
	}()
	return nil
}

func (c *localComm) Upload(path string, r io.Reader, fi *os.FileInfo) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if fi != nil {
		mode = (*fi).Mode()
	}
	c.mu.Lock()
	c.uploads = append(c.uploads, fakeUpload{path, string(b), mode})
	c.mu.Unlock()
	if c.corrupt != nil {
		b = c.corrupt(b)
	}
	// As scp and docker cp do: write the file (which mktemp created) with the content.
	return os.WriteFile(path, b, mode)
}

func (c *localComm) commands() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

func (c *localComm) sudoCalls() []string {
	b, err := os.ReadFile(c.sudoLog)
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
