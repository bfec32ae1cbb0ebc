// Package role is the moodle-role provisioner: it bakes the image of one MOHD role (haproxy, web, db, nfs,
// redis, monitoring) on a machine a Packer builder started. It is thin glue: what a role is, how it is
// applied and checked, the image manifest and the generalization before capture all live in MOHD's role
// library (internal/roles), which the Terraform provider uses as well; this package only adapts Packer's
// communicator to the library's remote.Host (comm.go) and Packer's configuration to its parameters.
package role

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/mohd-dev/mohd/internal/remote"
	"github.com/mohd-dev/mohd/internal/roles"
)

// systemdWait bounds the wait for the build machine's boot to finish before the role is applied.
const systemdWait = 5 * time.Minute

// Provisioner is the moodle-role provisioner.
type Provisioner struct {
	config Config
}

var _ packersdk.Provisioner = (*Provisioner)(nil)

// ConfigSpec returns the HCL2 spec of the provisioner's configuration.
func (p *Provisioner) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Prepare decodes and validates the configuration; it reports every problem at once.
func (p *Provisioner) Prepare(raws ...any) error {
	err := config.Decode(&p.config, &config.DecodeOpts{
		PluginType:         "moodle-role",
		Interpolate:        true,
		InterpolateContext: &p.config.ctx,
		InterpolateFilter:  &interpolate.RenderFilter{Exclude: []string{}},
	}, raws...)
	if err != nil {
		return err
	}
	return p.config.prepare()
}

// Provision waits for the machine to finish booting, gives it the role (roles.Apply: packages, files,
// services, firewall, hardening, checks, image manifest) and generalizes it for capture (roles.Generalize).
func (p *Provisioner) Provision(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, _ map[string]any) error {
	c := &p.config
	r, err := roles.Get(c.Role)
	if err != nil {
		return err // Prepare refused it already; a role can only vanish between the two in tests
	}
	name := c.PackerBuildName
	if name == "" {
		name = "packer-build"
	}
	ui.Say(fmt.Sprintf("Baking the %s role (hardening %s, cluster network %s)", r.Name, c.Hardening, c.ClusterCIDR))
	h, err := newCommHost(ctx, comm, name)
	if err != nil {
		return err
	}
	if h.sudo {
		ui.Say(fmt.Sprintf("The communicator's user %s is not root: running every step with sudo -n", h.user))
	}
	if err := waitForBoot(ctx, ui, h, systemdWait); err != nil {
		return err
	}

	start := time.Now()
	rep, err := roles.Apply(ctx, h, r, c.params(), ui.Say)
	if err != nil {
		return fmt.Errorf("applying role %s: %w", r.Name, err)
	}
	ui.Say(fmt.Sprintf("Role %s applied in %s: %s", r.Name, time.Since(start).Round(time.Second), summary(rep)))

	if err := roles.Generalize(ctx, h, ui.Say); err != nil {
		return fmt.Errorf("generalizing the machine: %w", err)
	}
	ui.Say(fmt.Sprintf("The %s role is baked; the machine is generalized and ready for capture", r.Name))
	return nil
}

// waitForBoot waits, at most limit, until systemd has finished booting the machine: the role's packages and
// services must not race the boot (first-boot key generation, cloud-init's own apt runs), and a machine
// without systemd as PID 1 (a container started without /sbin/init) cannot be given a role at all.
// "degraded" (a unit failed) is accepted: the role's checks judge the services that matter.
func waitForBoot(ctx context.Context, ui packersdk.Ui, h remote.Host, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit+30*time.Second)
	defer cancel()
	res, err := h.Run(ctx, remote.Cmd{Command: waitScript(limit), Desc: "wait for systemd to finish booting"})
	if err != nil {
		return err
	}
	state := lastLine(string(res.Stdout))
	switch state {
	case "running":
		ui.Say("systemd has finished booting the machine")
		return nil
	case "degraded":
		failed, _ := h.Run(ctx, remote.Cmd{Command: "systemctl --failed --no-legend --plain | cut -d' ' -f1", Desc: "list failed units"})
		ui.Say(fmt.Sprintf("systemd has finished booting the machine, degraded (failed units: %s): going on, the role's checks judge its own services",
			strings.Join(strings.Fields(string(failed.Stdout)), ", ")))
		return nil
	case "no-systemd":
		return fmt.Errorf("%s: systemd is not running as PID 1 on the build machine: a role's services need it (a Docker build container must run /sbin/init, as packer/templates/docker does)", h.Name())
	case "initializing", "starting", "unknown":
		return fmt.Errorf("%s: systemd did not finish booting the machine within %s (state %q)", h.Name(), limit, state)
	default:
		return fmt.Errorf("%s: systemd is %q, not running: the machine is not fit to be given a role", h.Name(), state)
	}
}

// waitScript prints systemd's state once the boot is over, or the last one seen when limit passed
// ("unknown": systemd did not answer yet), or "no-systemd" when PID 1 is not systemd. Early in a boot
// systemctl cannot reach systemd yet and prints nothing: it is asked again until limit.
func waitScript(limit time.Duration) string {
	return fmt.Sprintf(`[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] || { echo no-systemd; exit 0; }
end=$(($(date +%%s) + %d))
s=
while [ "$(date +%%s)" -lt "$end" ]; do
	# is-system-running exits non-zero for every state but "running": its output is what counts.
	s=$(timeout $((end - $(date +%%s) + 1)) systemctl is-system-running --wait 2>/dev/null) || true
	case "$s" in ""|initializing|starting) sleep 1 ;; *) break ;; esac
done
echo "${s:-unknown}"`, int(limit.Seconds()))
}

// summary says what an Apply changed, in one line.
func summary(rep *roles.Report) string {
	if !rep.Changed() {
		return "nothing to change"
	}
	var parts []string
	for _, x := range []struct {
		what string
		list []string
	}{
		{"installed", rep.Installed}, {"purged", rep.Purged}, {"wrote", rep.Files}, {"setup steps", rep.Steps},
		{"restarted", rep.Restarted}, {"started", rep.Started},
	} {
		if len(x.list) > 0 {
			parts = append(parts, fmt.Sprintf("%s %d (%s)", x.what, len(x.list), strings.Join(x.list, ", ")))
		}
	}
	return strings.Join(parts, "; ")
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}
