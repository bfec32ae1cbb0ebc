package roles

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
)

// HardeningLevels are the accepted Params.Hardening values; the first is the default.
var HardeningLevels = []string{"baseline", "strict"}

var (
	debianPackageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	gitRefRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
)

func (p Params) withDefaults() Params {
	if p.Hardening == "" {
		p.Hardening = HardeningLevels[0]
	}
	if p.PluginVersion == "" {
		p.PluginVersion = "dev"
	}
	return p
}

// Validate reports every problem with p at once, each naming the setting and what is allowed.
func (p Params) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if p.ClusterCIDR == "" {
		add("cluster_cidr is required: the cluster's network in CIDR notation (for example 10.20.0.0/24), from which the role's firewall admits its ports")
	} else if ip, network, err := net.ParseCIDR(p.ClusterCIDR); err != nil {
		add("cluster_cidr: %q is not a network in CIDR notation (for example 10.20.0.0/24)", p.ClusterCIDR)
	} else if !ip.Equal(network.IP) {
		add("cluster_cidr: %q has host bits set; use its network address %s", p.ClusterCIDR, network)
	}
	if p.Hardening != "" && !contains(HardeningLevels, p.Hardening) {
		add("hardening: %q is not a hardening level; allowed values: %s", p.Hardening, strings.Join(HardeningLevels, ", "))
	}
	for i, name := range p.ExtraPackages {
		if !debianPackageRE.MatchString(name) {
			add("extra_packages[%d]: %q is not a Debian package name (a-z, 0-9, +, - and ., no version or architecture suffix)", i, name)
		}
	}
	if p.MoodleVersion != "" && !ValidGitRef(p.MoodleVersion) {
		add("moodle_version: %q is neither a Moodle release (for example 4.5) nor a git ref (for example MOODLE_405_STABLE or v4.5.1)", p.MoodleVersion)
	}
	return errors.Join(errs...)
}

// ValidGitRef accepts a branch, tag or release name as git allows it (no "..", no trailing "/" or ".lock").
func ValidGitRef(ref string) bool {
	if len(ref) > 255 || !gitRefRE.MatchString(ref) {
		return false
	}
	if strings.Contains(ref, "..") || strings.Contains(ref, "//") || strings.Contains(ref, "/.") {
		return false
	}
	return !strings.HasSuffix(ref, "/") && !strings.HasSuffix(ref, ".") && !strings.HasSuffix(ref, ".lock")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
