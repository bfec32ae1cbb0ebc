// Package cluster is MOHD's orchestration: which host gets which configuration, in which order, to make one
// highly-available Moodle site out of hosts cloned from the role images. The Terraform provider maps its
// resources onto Spec, Backend and Replica and calls the Apply/Inspect/Remove functions here; the domain
// packages (haproxy, mariadb, moodle, nfs, redis) do the work on each host.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mohd-dev/mohd/internal/moodle"
)

// Host is a machine reached over SSH. Address is also the address the cluster's members use to reach it.
type Host struct {
	Address string `json:"address"`
	Port    int    `json:"port,omitempty"`
	HostKey string `json:"host_key,omitempty"`
}

func (h Host) String() string {
	if h.Port == 0 || h.Port == 22 {
		return h.Address
	}
	return net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
}

// Same reports whether h and o are the same machine (the host key is how it is verified, not who it is).
func (h Host) Same(o Host) bool {
	return h.Address == o.Address && h.port() == o.port()
}

func (h Host) port() int {
	if h.Port == 0 {
		return 22
	}
	return h.Port
}

// Spec is one Moodle site: its hosts, secrets and settings. Backends and replicas receive the whole Spec
// (the provider passes it as the cluster's sensitive `spec`), so that they configure themselves
// against the same facts the cluster was configured with.
type Spec struct {
	Name    string `json:"name"`
	WWWRoot string `json:"wwwroot"`
	// ClusterCIDR is the private network of the cluster's hosts: database accounts and the NFS export are
	// limited to it.
	ClusterCIDR string `json:"cluster_cidr"`

	Frontends []Host `json:"frontends"`
	// VIP ("address/prefix") floats between two front ends (keepalived); required with two.
	VIP string `json:"vip,omitempty"`
	// TLS at the front ends; both empty means plain HTTP (labs).
	TLSCertificate string `json:"tls_certificate,omitempty"`
	TLSKey         string `json:"tls_key,omitempty"`

	Database Database `json:"database"`
	NFS      NFS      `json:"nfs"`
	Redis    Redis    `json:"redis"`
	// Monitoring, when set, is the Prometheus + Alertmanager host every member registers its exporters with.
	Monitoring *Monitoring `json:"monitoring,omitempty"`

	Code  moodle.Source `json:"code"`
	Admin moodle.Admin  `json:"admin"`
	// LogLifetimeDays is logstore_standard's loglifetime: the standard log is purged after it (0 keeps it).
	LogLifetimeDays int `json:"log_lifetime_days"`
	// Settings are extra config.php $CFG keys, checked against Moodle's known keys.
	Settings map[string]string `json:"settings,omitempty"`
}

// Database is the site's MariaDB primary and accounts.
type Database struct {
	Primary             Host   `json:"primary"`
	Name                string `json:"name"`
	User                string `json:"user"`
	Password            string `json:"password"`
	ReplicationUser     string `json:"replication_user"`
	ReplicationPassword string `json:"replication_password"`
}

// NFS is the moodledata share.
type NFS struct {
	Host    Host   `json:"host"`
	Export  string `json:"export"`
	Version string `json:"version"`
	// ExistingStorage: the web nodes already have shared storage mounted at moodledata (a platform volume, or
	// the lab's shared Docker volume where the kernel has no NFS client); MOHD checks it instead of mounting.
	ExistingStorage bool `json:"existing_storage,omitempty"`
}

// Redis holds the sessions.
type Redis struct {
	Host     Host   `json:"host"`
	Password string `json:"password"`
}

// Monitoring is the site's monitoring host (role monitoring).
type Monitoring struct {
	Host Host `json:"host"`
	// WebhookURL is the Mattermost incoming webhook Alertmanager posts alerts to; empty keeps alerts in
	// Alertmanager's UI.
	WebhookURL string `json:"webhook_url,omitempty"`
}

// Validate checks what can be checked without a host: what the provider reports at plan time.
func (s *Spec) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.Name == "" {
		bad("name is empty")
	}
	if err := ValidateWWWRoot(s.WWWRoot); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := net.ParseCIDR(s.ClusterCIDR); err != nil {
		bad("cluster_cidr %q is not a CIDR network (e.g. 10.20.0.0/24)", s.ClusterCIDR)
	}
	switch len(s.Frontends) {
	case 1:
		if s.VIP != "" {
			bad("a virtual IP needs two front ends (keepalived moves it between them); one is given")
		}
	case 2:
		if s.VIP == "" {
			bad("two front ends need a virtual IP (vip) for users to reach whichever is alive")
		} else if _, _, err := net.ParseCIDR(s.VIP); err != nil {
			bad("vip %q must be an address with its prefix length (e.g. 10.20.0.10/24)", s.VIP)
		}
		if s.Frontends[0].Same(s.Frontends[1]) {
			bad("the two front ends are the same host %s", s.Frontends[0])
		}
	default:
		bad("one or two front ends are supported, %d given", len(s.Frontends))
	}
	if (s.TLSCertificate == "") != (s.TLSKey == "") {
		bad("TLS needs both the certificate and its private key")
	}
	if strings.HasPrefix(s.WWWRoot, "https://") && s.TLSCertificate == "" {
		bad("wwwroot is https but no TLS certificate is given for the front ends")
	}
	for _, h := range s.hosts() {
		if h.host.Address == "" {
			bad("%s: address is empty", h.what)
		}
	}
	d := s.Database
	if d.Name == "" || d.User == "" || d.ReplicationUser == "" {
		bad("the database name, user and replication user must be set")
	}
	if d.Password == "" || d.ReplicationPassword == "" {
		bad("the database password and the replication password must be set")
	}
	if strings.ContainsAny(d.Password, "\"\n") {
		bad("the database password must not contain a double quote or a newline (the web nodes' health check reads it from an ini file)")
	}
	if d.User == d.ReplicationUser {
		bad("the database user and the replication user must differ (least privilege)")
	}
	if m := s.Monitoring; m != nil && m.WebhookURL != "" {
		if u, err := url.Parse(m.WebhookURL); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
			bad("the Mattermost webhook URL must be an http(s) URL such as https://chat.example.edu/hooks/xxx")
		}
	}
	if s.Redis.Password == "" {
		bad("the Redis password must be set")
	}
	if !slices.Contains([]string{"3", "4.2"}, s.NFS.Version) {
		bad("nfs version must be \"3\" or \"4.2\", not %q", s.NFS.Version)
	}
	if !strings.HasPrefix(s.NFS.Export, "/") {
		bad("nfs export %q must be an absolute path (the role exports /moodledata)", s.NFS.Export)
	}
	if err := s.Code.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("code: %w", err))
	}
	if s.Admin.User == "" || s.Admin.Password == "" || s.Admin.Email == "" {
		bad("the admin user, password and email must be set")
	}
	if s.LogLifetimeDays < 0 {
		bad("log_lifetime_days must be 0 (keep forever) or more")
	}
	for k := range s.Settings {
		if err := moodle.KnownSetting(k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ValidateWWWRoot checks Moodle's wwwroot: an absolute http(s) URL without a trailing slash, query or fragment.
func ValidateWWWRoot(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("wwwroot %q must be an absolute http:// or https:// URL such as https://moodle.example.edu", s)
	}
	if strings.HasSuffix(s, "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("wwwroot %q must not end with a slash or carry a query or fragment (Moodle compares it literally)", s)
	}
	return nil
}

type namedHost struct {
	what string
	host Host
}

// hosts lists the cluster-level hosts and what they are for, in the order they are configured.
func (s *Spec) hosts() []namedHost {
	out := []namedHost{
		{"nfs", s.NFS.Host},
		{"redis", s.Redis.Host},
		{"database primary", s.Database.Primary},
	}
	for i, f := range s.Frontends {
		out = append(out, namedHost{fmt.Sprintf("front end %d", i+1), f})
	}
	if s.Monitoring != nil {
		out = append(out, namedHost{"monitoring", s.Monitoring.Host})
	}
	return out
}

// Encode is the JSON form the provider stores as the cluster's spec.
func (s *Spec) Encode() (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

// Decode reads a spec produced by Encode.
func Decode(conn string) (*Spec, error) {
	var s Spec
	if err := json.Unmarshal([]byte(conn), &s); err != nil {
		return nil, fmt.Errorf("the cluster spec is not one a moodle_cluster produced: %w", err)
	}
	return &s, nil
}
