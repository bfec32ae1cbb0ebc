package role

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"regexp"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// fakeHost is a packersdk.MockCommunicator that records every command and upload (the mock itself keeps only
// the last) and answers the commands the provisioner sends as a Debian 12 machine would: a uid, os-release,
// a dpkg database, and the files it writes (the manifest and uploads).
type fakeHost struct {
	packersdk.MockCommunicator

	uid       string
	osRelease string
	installed map[string]string // package -> version
	files     map[string]string // path -> content
	modes     map[string]string // path -> `stat -c '%a %u %g'`
	failures  []failure

	commands []string
	uploads  []fakeUpload
	mktemps  int
}

type fakeUpload struct{ path, data string }

// failure makes the first command whose script contains match exit with status, printing output.
type failure struct {
	match  string
	status int
	output string
}

const debianOSRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
`

func newFakeHost(uid string) *fakeHost {
	return &fakeHost{
		uid:       uid,
		osRelease: debianOSRelease,
		installed: map[string]string{"curl": "7.88.1-10+deb12u8", "sudo": "1.9.13p3-1+deb12u1"},
		files:     map[string]string{},
		modes:     map[string]string{},
	}
}

var (
	quotedWordRe = regexp.MustCompile(`'([^']*)'`)
	srcDstRe     = regexp.MustCompile(`src='([^']*)' dst='([^']*)'`)
)

// script undoes the provisioner's `[sudo -n ]sh -c '<script>'` wrapping.
func script(command string) string {
	s := strings.TrimPrefix(command, "sudo -n ")
	if !strings.HasPrefix(s, "sh -c '") || !strings.HasSuffix(s, "'") {
		return command
	}
	return strings.ReplaceAll(s[len("sh -c '"):len(s)-1], `'\''`, `'`)
}

func (f *fakeHost) Start(ctx context.Context, rc *packersdk.RemoteCmd) error {
	f.commands = append(f.commands, rc.Command)
	stdout, stderr, status := f.respond(script(rc.Command))
	f.StartStdout, f.StartStderr, f.StartExitStatus = stdout, stderr, status
	return f.MockCommunicator.Start(ctx, rc)
}

func (f *fakeHost) Upload(path string, r io.Reader, fi *os.FileInfo) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	f.uploads = append(f.uploads, fakeUpload{path, b.String()})
	f.files[path] = b.String()
	return f.MockCommunicator.Upload(path, bytes.NewReader(b.Bytes()), fi)
}

func (f *fakeHost) respond(s string) (stdout, stderr string, status int) {
	for i, fl := range f.failures {
		if strings.Contains(s, fl.match) {
			f.failures = append(f.failures[:i:i], f.failures[i+1:]...)
			return fl.output, "", fl.status
		}
	}
	switch {
	case s == "id -u":
		return f.uid + "\n", "", 0
	case strings.Contains(s, "os-release"):
		return f.osRelease, "", 0
	case strings.HasPrefix(s, "dpkg-query -W -f="):
		var missing []string
		words := quotedWordRe.FindAllStringSubmatch(s, -1)
		for _, w := range words[1:] { // words[0] is the format
			if v, ok := f.installed[w[1]]; ok {
				stdout += fmt.Sprintf("%s\tii \t%s\n", w[1], v)
			} else {
				missing = append(missing, w[1])
			}
		}
		if len(missing) > 0 {
			for _, m := range missing {
				stderr += "dpkg-query: no packages found matching " + m + "\n"
			}
			return stdout, stderr, 1
		}
		return stdout, "", 0
	case strings.Contains(s, "apt-get install"):
		_, args, _ := strings.Cut(s, "--force-confold ")
		for _, w := range quotedWordRe.FindAllStringSubmatch(args, -1) {
			f.installed[w[1]] = "1.0-test"
			stdout += "Setting up " + w[1] + " (1.0-test) ...\n"
		}
		return stdout, "", 0
	case strings.Contains(s, "stat -c"):
		path := quotedWordRe.FindStringSubmatch(s)[1]
		if c, ok := f.files[path]; ok {
			return f.modes[path] + "\n" + c, "", 0
		}
		return "", "", 0
	case strings.HasPrefix(s, "mktemp /tmp/mohd-manifest."):
		f.mktemps++
		return fmt.Sprintf("/tmp/mohd-manifest.tmp%03d\n", f.mktemps), "", 0
	case strings.Contains(s, `mv -f "$tmp" "$dst"`):
		m := srcDstRe.FindStringSubmatch(s)
		f.files[m[2]] = f.files[m[1]]
		f.modes[m[2]] = "644 0 0"
		delete(f.files, m[1])
		return "", "", 0
	}
	return "", "", 0
}

// scripts returns the scripts of the commands sent so far.
func (f *fakeHost) scripts() []string {
	out := make([]string, len(f.commands))
	for i, c := range f.commands {
		out[i] = script(c)
	}
	return out
}

// indexOf returns the index of the first script containing sub, or -1.
func (f *fakeHost) indexOf(sub string) int {
	for i, s := range f.scripts() {
		if strings.Contains(s, sub) {
			return i
		}
	}
	return -1
}

func TestMain(m *testing.M) {
	log.SetOutput(io.Discard) // BasicUi logs every line it shows
	os.Exit(m.Run())
}

// testUi is a packersdk.BasicUi whose output the test can read.
func testUi() (*packersdk.BasicUi, *bytes.Buffer) {
	var out bytes.Buffer
	return &packersdk.BasicUi{Reader: new(bytes.Buffer), Writer: &out, ErrorWriter: &out, PB: &packersdk.NoopProgressTracker{}}, &out
}

// registerRole gives role install steps for the duration of the test.
func registerRole(t *testing.T, role string, install roleInstall) {
	t.Helper()
	if _, ok := roleSteps[role]; ok {
		t.Fatalf("role %q already has install steps", role)
	}
	roleSteps[role] = install
	t.Cleanup(func() { delete(roleSteps, role) })
}
