//go:generate packer-sdc mapstructure-to-hcl2 -type Config
//go:generate ../../scripts/struct-markdown.sh

package role

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/mohd-dev/mohd/internal/roles"
	"github.com/mohd-dev/mohd/packer/version"
)

// Config is the configuration of the moodle-role provisioner.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// The role the image is baked for: one of the roles of MOHD's role library
	// (`haproxy`, `web`, `db`, `nfs`, `redis`, `monitoring`; a role the library
	// does not provide yet is refused, naming those it does).
	Role string `mapstructure:"role" required:"true"`
	// The cluster's network in CIDR notation, for example `10.20.0.0/24`: the
	// role's firewall admits its ports from this network only. It must be a
	// network address (no host bits set).
	ClusterCIDR string `mapstructure:"cluster_cidr" required:"true"`
	// The hardening level: `baseline` (the default) or `strict`.
	Hardening string `mapstructure:"hardening" required:"false"`
	// Further Debian packages to install with `apt-get` (without recommended
	// packages) along with the role's; packages already installed are left
	// alone. Each must be a Debian package name (`^[a-z0-9][a-z0-9+.-]+$`);
	// their installed versions are recorded in the image manifest.
	ExtraPackages []string `mapstructure:"extra_packages" required:"false"`
	// The Moodle version to install: a release such as `4.5`, or a git ref of
	// Moodle's repository such as `MOODLE_405_STABLE` or `v4.5.1`. Only allowed
	// when `role` is `web`.
	MoodleVersion string `mapstructure:"moodle_version" required:"false"`

	ctx interpolate.Context
}

// params are the role library's parameters for this configuration.
func (c *Config) params() roles.Params {
	return roles.Params{
		ClusterCIDR:   c.ClusterCIDR,
		Hardening:     c.Hardening,
		ExtraPackages: c.ExtraPackages,
		MoodleVersion: c.MoodleVersion,
		PluginVersion: version.PluginVersion.String(),
	}
}

// prepare sets defaults and validates c with the role library (roles.Get, roles.Params.Validate), so that
// Packer and the provider accept and refuse exactly the same things. It returns every problem at once, as a
// *packersdk.MultiError.
func (c *Config) prepare() error {
	var errs *packersdk.MultiError
	add := func(err error) { errs = packersdk.MultiErrorAppend(errs, err) }

	if c.Hardening == "" {
		c.Hardening = roles.HardeningLevels[0]
	}

	if c.Role == "" {
		add(fmt.Errorf("role is required: set it to one of %s", strings.Join(roles.Names(), ", ")))
	} else if _, err := roles.Get(c.Role); err != nil {
		add(fmt.Errorf("role: %w", err))
	}

	p := c.params()
	webOnly := c.MoodleVersion != "" && c.Role != "web"
	if webOnly {
		p.MoodleVersion = "" // reported below instead: the value does not matter on another role
	}
	if err := p.Validate(); err != nil {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				add(e)
			}
		} else {
			add(err)
		}
	}
	if webOnly {
		add(fmt.Errorf("moodle_version is only allowed for role \"web\" (role is %q): only the web role installs Moodle", c.Role))
	}

	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}
