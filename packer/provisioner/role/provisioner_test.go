package role

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/mohd-dev/mohd/internal/remote"
	"github.com/mohd-dev/mohd/internal/roles"
)

func newProvisioner(t *testing.T, raw map[string]any) *Provisioner {
	t.Helper()
	p := &Provisioner{}
	if err := p.Prepare(raw); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return p
}

// A role the library does not provide is refused before the machine is touched: the plugin never passes an
// image off as a role it has not installed.
func TestProvisionRefusesRolesTheLibraryLacks(t *testing.T) {
	for _, role := range []string{"haproxy", "web", "db", "nfs", "monitoring", "mail"} {
		if _, err := roles.Get(role); err == nil {
			continue // landed in the library
		}
		t.Run(role, func(t *testing.T) {
			raw := validRaw()
			raw["role"] = role
			var p Provisioner
			err := p.Prepare(raw)
			if err == nil || !strings.Contains(err.Error(), `role: unknown role "`+role+`" (known: `+knownRoles()+`)`) {
				t.Fatalf("Prepare: %v", err)
			}
			// Even when Prepare's verdict was ignored.
			comm := &packersdk.MockCommunicator{}
			err = p.Provision(context.Background(), packersdk.TestUi(t), comm, nil)
			if err == nil || !strings.Contains(err.Error(), `unknown role "`+role+`"`) {
				t.Fatalf("Provision: %v", err)
			}
			if comm.StartCalled || comm.UploadCalled {
				t.Errorf("Provision touched the machine before refusing the role (command %v)", comm.StartCmd)
			}
		})
	}
}

const waitCmd = "systemctl is-system-running --wait"

func TestWaitForBoot(t *testing.T) {
	cases := []struct {
		state, want, say string
	}{
		{"running", "", "systemd has finished booting the machine"},
		{"degraded", "", "degraded (failed units: auditd.service, x.service): going on"},
		{"no-systemd", "systemd is not running as PID 1 on the build machine", ""},
		{"starting", `systemd did not finish booting the machine within 1s (state "starting")`, ""},
		{"unknown", `systemd did not finish booting the machine within 1s (state "unknown")`, ""},
		{"maintenance", `systemd is "maintenance", not running`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.state, func(t *testing.T) {
			f := newFakeComm("1000", "debian", func(line, _ string) reply {
				switch {
				case strings.Contains(line, waitCmd):
					return reply{stdout: tc.state + "\n"}
				case strings.Contains(line, "systemctl --failed"):
					return reply{stdout: "auditd.service\nx.service\n"}
				}
				return reply{status: 99}
			})
			h := connectFake(t, f)
			ui, out := testUi()
			err := waitForBoot(context.Background(), ui, h, time.Second)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("waitForBoot: %v, want %q", err, tc.want)
			}
			if tc.say != "" && !strings.Contains(out.String(), tc.say) {
				t.Errorf("UI lacks %q:\n%s", tc.say, out)
			}
			// Bounded on the machine too, and run as root like everything else.
			if c := f.commands()[1]; !strings.HasPrefix(c, "sudo -n -- sh -c ") || !strings.Contains(c, "end=$(($(date +%s) + 1))") {
				t.Errorf("wait command: %s", c)
			}
		})
	}
}

func TestProvisionStopsWithoutSystemd(t *testing.T) {
	f := newFakeComm("0", "root", func(line, _ string) reply {
		if strings.Contains(line, waitCmd) {
			return reply{stdout: "no-systemd\n"}
		}
		return reply{status: 99}
	})
	ui, _ := testUi()
	err := newProvisioner(t, validRaw()).Provision(context.Background(), ui, f, nil)
	if err == nil || !strings.Contains(err.Error(), "a Docker build container must run /sbin/init") {
		t.Fatalf("Provision: %v", err)
	}
	if n := len(f.commands()); n != 2 {
		t.Errorf("%d commands ran, want only the user's detection and the wait: %q", n, f.commands())
	}
}

// Provision hands the machine to the role library through the adapter: the library's first command (the
// host facts probe, a script on stdin) arrives as root, and its verdict comes back as the build's error.
func TestProvisionAppliesTheRoleThroughTheLibrary(t *testing.T) {
	var probed string
	f := newFakeComm("1000", "debian", func(line, stdin string) reply {
		switch {
		case strings.Contains(line, waitCmd):
			return reply{stdout: "running\n"}
		case line == "sudo -n -- sh -c 'sh -s'":
			probed = stdin
			return reply{stdout: "os_id=ubuntu\nos_version_id=24.04\nos_pretty_name=Ubuntu 24.04 LTS\ncpus=2\nmem_total_kb=2048000\n"}
		}
		return reply{status: 99, stderr: "unexpected\n"}
	})
	ui, out := testUi()
	raw := validRaw()
	raw["hardening"] = "strict"
	err := newProvisioner(t, raw).Provision(context.Background(), ui, f, nil)
	if err == nil || !strings.Contains(err.Error(), "applying role redis: debian@packer-build runs Ubuntu 24.04 LTS: MOHD's roles are written for Debian 12") {
		t.Fatalf("Provision: %v", err)
	}
	if !strings.Contains(probed, "os_id") {
		t.Errorf("the probe script did not arrive on stdin: %q", probed)
	}
	for _, want := range []string{
		"Baking the redis role (hardening strict, cluster network 10.20.0.0/24)",
		"The communicator's user debian is not root: running every step with sudo -n",
		"systemd has finished booting the machine",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("UI lacks %q:\n%s", want, out)
		}
	}
}

// The generalization's scripts go on stdin to a root shell, as the role library's every step does.
func TestGeneralizeThroughSudo(t *testing.T) {
	f := newFakeComm("1000", "debian", nil)
	h := connectFake(t, f)
	ui, out := testUi()
	if err := roles.Generalize(context.Background(), h, ui.Say); err != nil {
		t.Fatal(err)
	}
	if len(f.sent) < 3 {
		t.Fatalf("commands: %q", f.commands())
	}
	var scripts []string
	for _, s := range f.sent[1:] {
		if s.line != "sudo -n -- sh -c 'sh -eu'" {
			t.Errorf("generalize step sent as %s", s.line)
		}
		scripts = append(scripts, s.stdin)
	}
	all := strings.Join(scripts, "\n")
	for _, want := range []string{"rm -f /etc/ssh/ssh_host_*", "truncate -s 0 /etc/machine-id", "rm -rf /var/lib/apt/lists/*"} {
		if !strings.Contains(all, want) {
			t.Errorf("generalization lacks %q", want)
		}
	}
	if !strings.Contains(out.String(), "generalize: remove the SSH host keys") {
		t.Errorf("UI:\n%s", out)
	}
}

func TestSummary(t *testing.T) {
	if got := summary(&roles.Report{}); got != "nothing to change" {
		t.Errorf("empty report: %q", got)
	}
	got := summary(&roles.Report{Installed: []string{"redis-server", "nftables"}, Files: []string{"/etc/nftables.conf"}, Started: []string{"redis-server"}})
	if want := "installed 2 (redis-server, nftables); wrote 1 (/etc/nftables.conf); started 1 (redis-server)"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}

var _ remote.Host = (*commHost)(nil)

func TestWaitScriptIsValidShell(t *testing.T) {
	out, err := exec.Command("sh", "-n", "-c", waitScript(5*time.Minute)).CombinedOutput()
	if err != nil {
		t.Fatalf("sh -n: %v\n%s\n%s", err, out, waitScript(5*time.Minute))
	}
	if !strings.Contains(waitScript(5*time.Minute), "+ 300))") {
		t.Errorf("the limit is not in the script:\n%s", waitScript(5*time.Minute))
	}
}
