package role

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/acctest"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/mohd-dev/mohd/internal/imagemanifest"
	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/remote"
)

// TestAccCommHostAndProvisionAsCloudUser drives a real Debian 12 machine through the adapter: a lab host (a
// container of the lab's base image, systemd as PID 1) reached as its non-root cloud user through `docker
// exec`, as an SSH communicator reaches a VM's cloud user, so every step goes through sudo. It checks the
// adapter's uploads and commands, then bakes the redis role with Provision as a vSphere or OpenStack build
// would (the docker template's builds run as root: packer/images_acc_test.go).
//
//	PACKER_ACC=1 go test -count=1 -run TestAcc -v ./packer/provisioner/role
func TestAccCommHostAndProvisionAsCloudUser(t *testing.T) {
	if os.Getenv(acctest.TestEnvVar) == "" {
		t.Skipf("Acceptance tests skipped unless env '%s' set", acctest.TestEnvVar)
	}
	l := labtest.New(t)
	host := labtest.Start(t, l, lab.HostSpec{Name: "comm"})[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	comm := &dockerComm{container: host.Container, user: lab.DefaultUser}
	h, err := newCommHost(ctx, comm, "acc")
	if err != nil {
		t.Fatal(err)
	}
	if !h.sudo || h.user != lab.DefaultUser || h.Name() != "debian@acc" {
		t.Fatalf("adapter: sudo %v, user %q, name %q", h.sudo, h.user, h.Name())
	}
	ui, _ := testUi()
	if err := waitForBoot(ctx, ui, h, time.Minute); err != nil {
		t.Fatal(err)
	}

	// Commands: as root, as another user, with stdin, failing.
	run := func(c remote.Cmd) string {
		t.Helper()
		res, err := h.Run(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(res.Stdout))
	}
	if got := run(remote.Cmd{Command: "id -u"}); got != "0" {
		t.Errorf("as root: uid %s", got)
	}
	if got := run(remote.Cmd{Command: "id -un", AsUser: "nobody"}); got != "nobody" {
		t.Errorf("as nobody: %s", got)
	}
	if got := run(remote.Cmd{Command: "id -un", AsUser: lab.DefaultUser}); got != lab.DefaultUser {
		t.Errorf("as the cloud user: %s", got)
	}
	if got := run(remote.Cmd{Command: "tr a-z A-Z", Stdin: []byte("piped\n")}); got != "PIPED" {
		t.Errorf("stdin: %q", got)
	}
	_, err = h.Run(ctx, remote.Cmd{Command: "echo broken >&2; exit 3", Desc: "fail on purpose"})
	var ee *remote.ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 3 || ee.Stderr != "broken" || ee.Step != "fail on purpose" {
		t.Errorf("exit error: %v", err)
	}

	// Uploads: written as root with owner and mode, skipped when identical, nothing left behind.
	f := remote.File{Path: "/etc/mohd-acc/app.conf", Content: []byte("secret = 1\n"), Mode: 0o640, Owner: "root", Group: lab.DefaultUser, MkdirParents: true}
	upload := func(want bool) {
		t.Helper()
		changed, err := h.Upload(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if changed != want {
			t.Errorf("upload changed = %v, want %v", changed, want)
		}
	}
	upload(true)
	upload(false)
	labtest.Exec(t, host, "chmod 0644 /etc/mohd-acc/app.conf")
	upload(true)
	f.Content = []byte("secret = 2\n")
	upload(true)
	// (/var/tmp also holds the private temporary directories of services with PrivateTmp=.)
	if got := labtest.Exec(t, host, "stat -c '%a %U %G' /etc/mohd-acc/app.conf; cat /etc/mohd-acc/app.conf; ls -A /etc/mohd-acc; ls -A /var/tmp | grep -c mohd-upload || true"); got != "640 root debian\nsecret = 2\napp.conf\n0" {
		t.Errorf("after the uploads:\n%s", got)
	}

	// The whole bake, as the cloud user: the role, its manifest, the generalization.
	p := newProvisioner(t, map[string]any{"role": "redis", "cluster_cidr": l.Subnet.String(), "extra_packages": []string{"jq"}})
	ui, uiOut := testUi()
	start := time.Now()
	if err := p.Provision(ctx, ui, comm, nil); err != nil {
		t.Fatalf("Provision: %v\nUI:\n%s", err, uiOut)
	}
	t.Logf("Provision as %s took %s; UI:\n%s", lab.DefaultUser, time.Since(start).Round(time.Second), uiOut)
	raw := labtest.Exec(t, host, "cat "+imagemanifest.Path)
	m, err := imagemanifest.Decode([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Role != "redis" || m.ClusterCIDR != l.Subnet.String() || m.Packages["jq"] == "" || m.Packages["redis-server"] == "" || m.BaseOS.VersionID != "12" {
		t.Errorf("manifest:\n%s", raw)
	}
	for cmd, want := range map[string]string{
		"ls /etc/ssh/ | grep -c '^ssh_host_' || true":            "0",
		"stat -c %s /etc/machine-id":                             "0",
		"ls -A /var/lib/apt/lists | wc -l":                       "0",
		"ls -A /var/tmp | grep -c mohd-upload || true":           "0",
		"nft list chain inet mohd input | grep -c 'policy drop'": "1",
	} {
		if got := labtest.Exec(t, host, cmd); got != want {
			t.Errorf("after Provision, %s: %q, want %q", cmd, got, want)
		}
	}
}

// dockerComm is a packersdk.Communicator that runs commands in a container with `docker exec` as a given user,
// as an SSH communicator runs them as its login user.
type dockerComm struct{ container, user string }

func (d *dockerComm) Start(ctx context.Context, rc *packersdk.RemoteCmd) error {
	cmd := exec.CommandContext(ctx, "docker", "exec", "-i", "-u", d.user, d.container, "/bin/sh", "-c", rc.Command)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = rc.Stdin, rc.Stdout, rc.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		err := cmd.Wait()
		var exitErr *exec.ExitError
		switch {
		case err == nil:
			rc.SetExited(0)
		case errors.As(err, &exitErr):
			rc.SetExited(exitErr.ExitCode())
		default:
			rc.SetExited(packersdk.CmdDisconnect)
		}
	}()
	return nil
}

// Upload writes the file as the communicator's user, as scp would.
func (d *dockerComm) Upload(path string, r io.Reader, _ *os.FileInfo) error {
	cmd := exec.Command("docker", "exec", "-i", "-u", d.user, d.container, "/bin/sh", "-c", `cat > "$1"`, "sh", path)
	cmd.Stdin = r
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return errors.New(err.Error() + ": " + out.String())
	}
	return nil
}

func (d *dockerComm) UploadDir(string, string, []string) error   { return errors.ErrUnsupported }
func (d *dockerComm) Download(string, io.Writer) error           { return errors.ErrUnsupported }
func (d *dockerComm) DownloadDir(string, string, []string) error { return errors.ErrUnsupported }
