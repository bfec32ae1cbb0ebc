//go:generate packer-sdc mapstructure-to-hcl2 -type Config
//go:generate ../../scripts/struct-markdown.sh

package role

import (
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// Roles are the roles an image can be baked for, in the order error messages list them.
var Roles = []string{"haproxy", "web", "db", "nfs", "redis", "monitoring"}

// HardeningLevels are the allowed values of hardening; the first is the default.
var HardeningLevels = []string{"baseline", "strict"}

// DefaultManifestPath is where the image manifest goes unless manifest_path says otherwise.
const DefaultManifestPath = "/etc/mohd/image-manifest.json"

var (
	// Debian Policy §5.6.1: at least two characters, lowercase letters, digits, + - and ., starting with an
	// alphanumeric character.
	debianPackageRe = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	// A Moodle release ("4.5", "4.5.1") or a git ref of Moodle's repository ("MOODLE_405_STABLE",
	// "v4.5.1", a commit id); git check-ref-format's other rules are checked in validGitRef.
	gitRefRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
)

// Config is the configuration of the moodle-role provisioner.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// The role the image is baked for: one of `haproxy`, `web`, `db`, `nfs`,
	// `redis` or `monitoring`.
	Role string `mapstructure:"role" required:"true"`
	// The cluster's network in CIDR notation, for example `10.20.0.0/24`: the
	// role's firewall admits its ports from this network only. It must be a
	// network address (no host bits set).
	ClusterCIDR string `mapstructure:"cluster_cidr" required:"true"`
	// The hardening level: `baseline` (the default) or `strict`.
	Hardening string `mapstructure:"hardening" required:"false"`
	// Further Debian packages to install with `apt-get` (without recommended
	// packages); packages already installed are left alone. Each must be a
	// Debian package name (`^[a-z0-9][a-z0-9+.-]+$`); their installed versions
	// are recorded in the image manifest.
	ExtraPackages []string `mapstructure:"extra_packages" required:"false"`
	// The Moodle version to install: a release such as `4.5`, or a git ref of
	// Moodle's repository such as `MOODLE_405_STABLE` or `v4.5.1`. Only allowed
	// when `role` is `web`.
	MoodleVersion string `mapstructure:"moodle_version" required:"false"`
	// Where the image manifest (a JSON file, mode 0644, owned by root) is
	// written in the image. Defaults to `/etc/mohd/image-manifest.json`.
	ManifestPath string `mapstructure:"manifest_path" required:"false"`

	ctx interpolate.Context
}

// prepare sets defaults and validates c; it returns every problem at once, as a *packersdk.MultiError.
func (c *Config) prepare() error {
	var errs *packersdk.MultiError
	add := func(format string, a ...any) { errs = packersdk.MultiErrorAppend(errs, fmt.Errorf(format, a...)) }

	if c.Hardening == "" {
		c.Hardening = HardeningLevels[0]
	}
	if c.ManifestPath == "" {
		c.ManifestPath = DefaultManifestPath
	}

	switch {
	case c.Role == "":
		add("role is required: set it to one of %s", allowed(Roles))
	case !slices.Contains(Roles, c.Role):
		add("role: %q is not a MOHD role; allowed values: %s", c.Role, allowed(Roles))
	}

	if c.ClusterCIDR == "" {
		add("cluster_cidr is required: the cluster's network in CIDR notation (for example 10.20.0.0/24), from which the role's firewall admits its ports")
	} else if ip, network, err := net.ParseCIDR(c.ClusterCIDR); err != nil {
		add("cluster_cidr: %q is not a network in CIDR notation (for example 10.20.0.0/24)", c.ClusterCIDR)
	} else if !ip.Equal(network.IP) {
		add("cluster_cidr: %q has host bits set; use its network address %s", c.ClusterCIDR, network)
	}

	if !slices.Contains(HardeningLevels, c.Hardening) {
		add("hardening: %q is not a hardening level; allowed values: %s", c.Hardening, allowed(HardeningLevels))
	}

	for i, name := range c.ExtraPackages {
		if !debianPackageRe.MatchString(name) {
			add("extra_packages[%d]: %q is not a Debian package name (at least two characters of a-z, 0-9, +, - and ., starting with a letter or digit; no version or architecture suffix)", i, name)
		}
	}

	if c.MoodleVersion != "" {
		if c.Role != "web" {
			add("moodle_version is only allowed for role \"web\" (role is %q): only the web role installs Moodle", c.Role)
		} else if !validGitRef(c.MoodleVersion) {
			add("moodle_version: %q is neither a Moodle release (for example 4.5) nor a git ref (for example MOODLE_405_STABLE or v4.5.1)", c.MoodleVersion)
		}
	}

	if !validManifestPath(c.ManifestPath) {
		add("manifest_path: %q must be an absolute, clean path to a file (for example %s)", c.ManifestPath, DefaultManifestPath)
	}

	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

func validGitRef(ref string) bool {
	if len(ref) > 255 || !gitRefRe.MatchString(ref) {
		return false
	}
	if strings.Contains(ref, "..") || strings.Contains(ref, "//") || strings.Contains(ref, "/.") {
		return false
	}
	return !strings.HasSuffix(ref, "/") && !strings.HasSuffix(ref, ".") && !strings.HasSuffix(ref, ".lock")
}

func validManifestPath(p string) bool {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return false
	}
	return !strings.ContainsFunc(p, unicode.IsControl)
}

func allowed(list []string) string { return strings.Join(list, ", ") }
