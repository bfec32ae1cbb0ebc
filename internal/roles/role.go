// Package roles is MOHD's role library: for each role (haproxy, web, db, nfs, redis, monitoring) the Debian
// packages, configuration files, services, firewall ports, hardening and checks, written once. The Packer
// provisioner applies a role to bake an image; the Terraform provider applies the same role to converge a
// host, so an image and a host can never disagree about what a role is.
package roles

import (
	"fmt"
	"slices"
	"sort"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Params are the site's choices that shape a role.
type Params struct {
	// ClusterCIDR is the private network the role's ports are open to (the firewall drops the rest).
	ClusterCIDR string
	// Hardening is "baseline" or "strict".
	Hardening string
	// ExtraPackages are more Debian packages a site wants in every image of the role.
	ExtraPackages []string
	// MoodleVersion is the Moodle branch a web image is prepared for ("4.5"); empty elsewhere.
	MoodleVersion string
	// PluginVersion is the version of the MOHD build applying the role, recorded in the manifest.
	PluginVersion string
}

// Role is everything MOHD knows about one role.
type Role struct {
	Name    string
	Summary string
	// Packages are installed with apt-get (no recommends).
	Packages []string
	// Forbidden packages are purged when present and must stay absent (mod_php, prefork, compilers...).
	Forbidden []string
	// KeyPackages are the packages whose versions the image manifest records.
	KeyPackages []string
	// Ports are opened in the firewall, to ClusterCIDR unless Public.
	Ports []Port
	// Files renders the role's configuration files for p.
	Files func(p Params) ([]File, error)
	// Setup runs after the files are written, in order; each step must be idempotent and say whether it
	// changed anything by printing "changed" on its last line.
	Setup []Step
	// Services are enabled and started; those named by a changed File are restarted (or reloaded).
	Services []string
	// Checks must all exit 0 once the role is applied (and in every image before capture).
	Checks []Step
	// InContainer maps a unit to the systemd drop-in it needs when the host is a container (the lab, and
	// the Docker images baked for it): sandboxing a container's kernel refuses, such as ProtectProc= with
	// PrivateUsers=. VMs never get these drop-ins.
	InContainer map[string]string
}

// Port is one inbound port of a role.
type Port struct {
	Port   int
	Proto  string // "tcp" (default) or "udp"
	What   string
	Public bool // open to any source (the front end's 80/443), not only the cluster network
}

// File is a configuration file and what to do when it changes.
type File struct {
	remote.File
	// Restart lists services restarted when the file changed; Reload those reloaded instead.
	Restart []string
	Reload  []string
}

// Step is one shell script run as root on the host.
type Step struct {
	Desc   string
	Script string
}

var registry = map[string]*Role{}

// register adds a role; each role's file calls it from init.
func register(r *Role) {
	if _, dup := registry[r.Name]; dup {
		panic("roles: " + r.Name + " registered twice")
	}
	registry[r.Name] = r
}

// Get returns a role by name.
func Get(name string) (*Role, error) {
	r, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown role %q (known: %v)", name, Names())
	}
	return r, nil
}

// Names lists the roles, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// allPackages is what Apply installs for r: the common hardening packages, the role's, then the extras.
func (r *Role) allPackages(p Params) []string {
	pk := append(slices.Clone(commonPackages), r.Packages...)
	return append(pk, p.ExtraPackages...)
}
