package role

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/acctest"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// TestAccGeneralizeInContainer runs Provision's shared steps (extra packages, manifest, generalization) on a
// real Debian 12 machine: a container of the lab's base image, with systemd as PID 1, reached as its non-root
// cloud user (so through sudo), as a Packer communicator would. The role's own steps are a test stand-in.
//
//	PACKER_ACC=1 go test -count=1 -run TestAcc -v ./packer/provisioner/role
//
// The image is MOHD_BASE_IMAGE, by default mohd/base:bookworm (built by the lab, internal/lab).
func TestAccGeneralizeInContainer(t *testing.T) {
	if os.Getenv(acctest.TestEnvVar) == "" {
		t.Skipf("Acceptance tests skipped unless env '%s' set", acctest.TestEnvVar)
	}
	image := os.Getenv("MOHD_BASE_IMAGE")
	if image == "" {
		image = "mohd/base:bookworm"
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker is not installed")
	}
	if out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", image).CombinedOutput(); err != nil {
		t.Skipf("image %s is not present (build the lab's base image, or set MOHD_BASE_IMAGE): %s", image, bytes.TrimSpace(out))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "run", "-d", "--label", "org.mohd.test=moodle-role-acc",
		"--tmpfs", "/run:exec,mode=755", "--tmpfs", "/run/lock", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
		image, "/sbin/init").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v: %s", err, out)
	}
	container := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", "-v", container).Run() })
	root := &dockerComm{container: container, user: "root"}

	// First boot creates the SSH host keys (mohd-firstboot): wait for them, so they are there to remove.
	deadline := time.Now().Add(60 * time.Second)
	for dockerSh(t, root, "test -s /etc/ssh/ssh_host_ed25519_key && echo yes || true") != "yes" {
		if time.Now().After(deadline) {
			t.Fatal("no SSH host keys after 60s: did mohd-firstboot run?")
		}
		time.Sleep(time.Second)
	}
	dockerSh(t, root, "mkdir -p /var/log/apt && echo old > /var/log/apt/history.log.1.gz && echo noise > /var/log/mohd-test.log")

	registerRole(t, "web", roleInstall{keyPackages: []string{"openssh-server"}})
	raw := map[string]any{
		"role":           "web",
		"cluster_cidr":   "10.20.0.0/24",
		"moodle_version": "4.5",
		"extra_packages": []string{"sudo", "procps"}, // in the base image: no network needed
	}
	user := &dockerComm{container: container, user: "debian"}
	ui, uiOut := testUi()
	if err := newProvisioner(t, raw, t1).Provision(ctx, ui, user, nil); err != nil {
		t.Fatalf("Provision: %v\nUI:\n%s", err, uiOut)
	}
	t.Logf("UI:\n%s", uiOut)

	if got := dockerSh(t, root, "stat -c '%a %U %G' /etc/mohd/image-manifest.json"); got != "644 root root" {
		t.Errorf("manifest mode and owner: %s", got)
	}
	first := dockerSh(t, root, "cat /etc/mohd/image-manifest.json")
	var m Manifest
	if err := json.Unmarshal([]byte(first), &m); err != nil {
		t.Fatalf("manifest: %v\n%s", err, first)
	}
	if m.Role != "web" || m.BuildTime != "2025-03-04T05:07:08Z" || m.BaseOS.ID != "debian" || m.BaseOS.VersionID != "12" ||
		m.BaseOS.VersionCodename != "bookworm" || m.ClusterCIDR != "10.20.0.0/24" || m.MoodleVersion != "4.5" || m.Hardening != "baseline" {
		t.Errorf("manifest:\n%s", first)
	}
	for _, p := range []string{"openssh-server", "sudo", "procps"} {
		if m.Packages[p] == "" {
			t.Errorf("manifest has no version of %s:\n%s", p, first)
		}
	}
	if !strings.Contains(uiOut.String(), "All extra packages are installed already: nothing to do") {
		t.Errorf("extra packages were not skipped:\n%s", uiOut)
	}

	checks := map[string]string{
		"ls /etc/ssh/ | grep -c '^ssh_host_' || true":                          "0",
		"stat -c %s /etc/machine-id":                                           "0",
		"test -e /var/lib/dbus/machine-id && echo present || echo absent":      "absent",
		"ls -A /var/lib/apt/lists | wc -l":                                     "0",
		"test -e /var/log/apt/history.log.1.gz && echo present || echo absent": "absent",
		"stat -c %s /var/log/mohd-test.log":                                    "0",
		"ls /tmp | grep -c mohd-manifest || true":                              "0",
		"ls -A /etc/mohd": "image-manifest.json",
	}
	for cmd, want := range checks {
		if got := dockerSh(t, root, cmd); got != want {
			t.Errorf("%s: %q, want %q", cmd, got, want)
		}
	}

	// Again, a day later: nothing changes, not even build_time.
	ui, uiOut = testUi()
	if err := newProvisioner(t, raw, t2).Provision(ctx, ui, user, nil); err != nil {
		t.Fatalf("second Provision: %v\nUI:\n%s", err, uiOut)
	}
	if again := dockerSh(t, root, "cat /etc/mohd/image-manifest.json"); again != first {
		t.Errorf("the second run changed the manifest:\n%s\nwas:\n%s", again, first)
	}
	if !strings.Contains(uiOut.String(), "The manifest is up to date") {
		t.Errorf("second run:\n%s", uiOut)
	}
}

// dockerSh runs a shell command in the container and returns its trimmed output.
func dockerSh(t *testing.T, c *dockerComm, command string) string {
	t.Helper()
	var out bytes.Buffer
	rc := &packersdk.RemoteCmd{Command: command, Stdout: &out, Stderr: &out}
	if err := c.Start(context.Background(), rc); err != nil {
		t.Fatal(err)
	}
	if status := rc.Wait(); status != 0 {
		t.Fatalf("%s: exit status %d: %s", command, status, out.String())
	}
	return strings.TrimSpace(out.String())
}

// dockerComm is a packersdk.Communicator that runs commands in a container with `docker exec` as a given user,
// as an SSH communicator would run them as its login user.
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
	if out, err := cmd.CombinedOutput(); err != nil {
		return errors.New(err.Error() + ": " + string(out))
	}
	return nil
}

func (d *dockerComm) UploadDir(string, string, []string) error   { return errors.ErrUnsupported }
func (d *dockerComm) Download(string, io.Writer) error           { return errors.ErrUnsupported }
func (d *dockerComm) DownloadDir(string, string, []string) error { return errors.ErrUnsupported }
