// Package role is the moodle-role provisioner: it bakes the image of one MOHD role (haproxy, web, db, nfs,
// redis, monitoring) on a machine a Packer builder started, records what it baked in an image manifest and
// generalizes the machine so that its clones get their own identity.
package role

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// roleInstall is what the role library provides for one role.
type roleInstall struct {
	// keyPackages are the role's main Debian packages: the manifest records their installed versions.
	keyPackages []string
	// steps install and configure the role, in order, before extra_packages, the manifest and the
	// generalization.
	steps []roleStep
}

// roleStep is one step of a role's installation.
type roleStep struct {
	name string
	run  func(ctx context.Context, h *host, c *Config) error
}

// roleSteps holds the install steps of each role. It is empty until the role library provides them (issue 4):
// Provision refuses a role that has no entry before it touches the machine, so that the plugin never passes
// an image off as a role it has not installed.
var roleSteps = map[string]roleInstall{}

// Provisioner is the moodle-role provisioner.
type Provisioner struct {
	config Config
	// now is the clock of the manifest's build_time; nil means time.Now.
	now func() time.Time
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

// Provision installs the role, then the extra packages, writes the image manifest and generalizes the machine.
func (p *Provisioner) Provision(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, _ map[string]any) error {
	c := &p.config
	install, ok := roleSteps[c.Role]
	if !ok {
		return fmt.Errorf("role %q: the role library does not provide its install steps yet (see issue 4)", c.Role)
	}
	now := p.now
	if now == nil {
		now = time.Now
	}

	ui.Say(fmt.Sprintf("Baking the %s role (hardening %s, cluster network %s)", c.Role, c.Hardening, c.ClusterCIDR))
	h, err := connect(ctx, ui, comm)
	if err != nil {
		return err
	}
	for _, s := range install.steps {
		ui.Say(fmt.Sprintf("Role %s: %s", c.Role, s.name))
		if err := s.run(ctx, h, c); err != nil {
			return fmt.Errorf("role %q, step %q: %w", c.Role, s.name, err)
		}
	}
	if err := installExtraPackages(ctx, h, c.ExtraPackages); err != nil {
		return err
	}
	if err := writeManifest(ctx, h, c, install.keyPackages, now().UTC()); err != nil {
		return err
	}
	if err := generalize(ctx, h); err != nil {
		return err
	}
	ui.Say(fmt.Sprintf("The %s role is baked; the machine is generalized and ready for capture", c.Role))
	return nil
}
