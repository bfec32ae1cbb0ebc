package monitoring

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Paths and names on the monitoring host. The targets directory, the jobs and the URL file are the monitoring
// role's (internal/roles/monitoring.go, files/monitoring/prometheus.yml and alertmanager.yml); the registry and
// the locks are this package's.
const (
	TargetsDir = "/etc/prometheus/targets"
	// RegistryFile holds every member's targets: what the job files are rendered from.
	RegistryFile = "/etc/prometheus/mohd-targets.json"
	// MattermostURLFile is read by Alertmanager's receiver at each notification (a secret).
	MattermostURLFile = "/etc/prometheus/alertmanager-mattermost-url"
	// LockName guards the registry and the job files rendered from it.
	LockName = "prometheus-targets"
	// alertingLock guards MattermostURLFile.
	alertingLock = "prometheus-alerting"
	// prometheusGroup is the group Prometheus and Alertmanager run as (Debian's packages).
	prometheusGroup = "prometheus"
	// MemberLabel is the label every target gets: the member that registered it.
	MemberLabel = "mohd_member"
	// prometheusAPI answers on the monitoring host itself.
	prometheusAPI    = "http://127.0.0.1:9090"
	prometheusUnit   = "prometheus"
	alertmanagerUnit = "prometheus-alertmanager"
)

// The jobs of the monitoring role's prometheus.yml that read a file_sd file.
const (
	JobNode    = "node"    // prometheus-node-exporter (every role; leave the monitoring host out: it scrapes itself)
	JobHAProxy = "haproxy" // HAProxy's built-in exporter on the front ends
	JobApache  = "apache"  // prometheus-apache-exporter on the web nodes
	JobMySQLd  = "mysqld"  // prometheus-mysqld-exporter on the primary and the replicas
	JobRedis   = "redis"   // prometheus-redis-exporter
	JobNFS     = "nfs"     // the NFS server's node exporter again (the role's job keeps the NFS series only)
)

// exporterPorts are the ports the role images' exporters listen on (internal/roles: Ports; the node exporter's
// 9100 is common to every role), open to the cluster network.
var exporterPorts = map[string]int{
	JobNode:    9100,
	JobHAProxy: 8405,
	JobApache:  9117,
	JobMySQLd:  9104,
	JobRedis:   9121,
	JobNFS:     9100,
}

// Jobs returns the jobs a Target may name, sorted.
func Jobs() []string { return slices.Sorted(maps.Keys(exporterPorts)) }

// ExporterPort returns the port job's exporter listens on in MOHD's role images.
func ExporterPort(job string) (int, bool) {
	p, ok := exporterPorts[job]
	return p, ok
}

// Exporter returns the target of job's exporter on host (an IP address or a name), at the port the role images
// use (ExporterPort).
func Exporter(job, host string, labels map[string]string) (Target, error) {
	p, ok := exporterPorts[job]
	if !ok {
		return Target{}, fmt.Errorf("monitoring: unknown job %q (known: %s)", job, strings.Join(Jobs(), ", "))
	}
	return Target{Job: job, Address: net.JoinHostPort(host, strconv.Itoa(p)), Labels: labels}.normalized()
}

// JobFile is job's file_sd file.
func JobFile(job string) string { return TargetsDir + "/" + job + ".yml" }

// Target is one exporter Prometheus scrapes.
type Target struct {
	// Job is one of Jobs().
	Job string `json:"job"`
	// Address is host:port (an IPv6 address in brackets), as Prometheus dials it.
	Address string `json:"address"`
	// Labels are added to every series of the target ("role": "web"). Names follow Prometheus' rules; job,
	// mohd_member and names starting with "__" are reserved. instance may be set (it defaults to Address).
	Labels map[string]string `json:"labels,omitempty"`
}

func (t Target) String() string { return t.Job + " " + t.Address }

// key identifies a target within a member, and a scrape within Prometheus.
func (t Target) key() string { return t.Job + " " + t.Address }

var (
	memberRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$`)
	labelNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hostNameRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)
)

func validMember(member string) error {
	if !memberRE.MatchString(member) {
		return fmt.Errorf("monitoring: member %q: use 1-128 letters, digits, '.', '_', ':', '/', '@' or '-', starting with a letter or digit (e.g. \"backend/web1\")", member)
	}
	return nil
}

// normalized validates t and drops an empty label map, so that equal targets compare equal.
func (t Target) normalized() (Target, error) {
	if _, ok := exporterPorts[t.Job]; !ok {
		return t, fmt.Errorf("monitoring: target %s: unknown job %q (the monitoring role's jobs: %s)", t.Address, t.Job, strings.Join(Jobs(), ", "))
	}
	host, port, err := net.SplitHostPort(t.Address)
	if err != nil {
		return t, fmt.Errorf("monitoring: target %s: address %q is not host:port", t.Job, t.Address)
	}
	if net.ParseIP(host) == nil && !hostNameRE.MatchString(host) {
		return t, fmt.Errorf("monitoring: target %s: %q is neither an IP address nor a host name", t.Job, host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return t, fmt.Errorf("monitoring: target %s: port %q is not a number in 1-65535", t.Job, port)
	}
	for name, value := range t.Labels {
		switch {
		case !labelNameRE.MatchString(name):
			return t, fmt.Errorf("monitoring: target %s: label name %q: use letters, digits and '_', not starting with a digit", t, name)
		case strings.HasPrefix(name, "__"):
			return t, fmt.Errorf("monitoring: target %s: label name %q: names starting with \"__\" are Prometheus' own", t, name)
		case name == "job" || name == MemberLabel:
			return t, fmt.Errorf("monitoring: target %s: label %q is set by MOHD", t, name)
		case value == "":
			return t, fmt.Errorf("monitoring: target %s: label %q is empty (leave it out instead)", t, name)
		case !utf8.ValidString(value):
			return t, fmt.Errorf("monitoring: target %s: label %q is not valid UTF-8", t, name)
		}
	}
	if len(t.Labels) == 0 {
		t.Labels = nil
	} else {
		t.Labels = maps.Clone(t.Labels)
	}
	return t, nil
}

// normalizeTargets validates targets and sorts them by job and address; a target twice is an error.
func normalizeTargets(targets []Target) ([]Target, error) {
	out := make([]Target, 0, len(targets))
	seen := map[string]bool{}
	for _, t := range targets {
		n, err := t.normalized()
		if err != nil {
			return nil, err
		}
		if seen[n.key()] {
			return nil, fmt.Errorf("monitoring: target %s is given twice", n)
		}
		seen[n.key()] = true
		out = append(out, n)
	}
	sortTargets(out)
	return out, nil
}

func sortTargets(ts []Target) {
	slices.SortFunc(ts, func(a, b Target) int {
		return cmp.Or(strings.Compare(a.Job, b.Job), strings.Compare(a.Address, b.Address))
	})
}

func equalTargets(a, b []Target) bool {
	return slices.EqualFunc(a, b, func(x, y Target) bool {
		return x.Job == y.Job && x.Address == y.Address && maps.Equal(x.Labels, y.Labels)
	})
}

// registry is every member's targets (RegistryFile).
type registry struct {
	Version int                 `json:"version"`
	Members map[string][]Target `json:"members"`
}

const registryVersion = 1

func parseRegistry(b []byte) (registry, error) {
	r := registry{Version: registryVersion, Members: map[string][]Target{}}
	if len(bytes.TrimSpace(b)) == 0 {
		return r, nil
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s is not valid JSON (%w): fix or remove it, then apply again", RegistryFile, err)
	}
	if r.Version != registryVersion {
		return r, fmt.Errorf("%s has version %d, this MOHD reads version %d", RegistryFile, r.Version, registryVersion)
	}
	if r.Members == nil {
		r.Members = map[string][]Target{}
	}
	for m, ts := range r.Members {
		if err := validMember(m); err != nil {
			return r, fmt.Errorf("%s: %w", RegistryFile, err)
		}
		n, err := normalizeTargets(ts)
		if err != nil {
			return r, fmt.Errorf("%s: member %s: %w", RegistryFile, m, err)
		}
		if len(n) == 0 {
			delete(r.Members, m)
			continue
		}
		r.Members[m] = n
	}
	return r, nil
}

// marshal is deterministic: encoding/json sorts map keys, and members' targets are kept sorted.
func (r registry) marshal() []byte {
	r.Version = registryVersion
	if r.Members == nil {
		r.Members = map[string][]Target{}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic("monitoring: registry: " + err.Error()) // plain strings and maps: cannot happen
	}
	return append(b, '\n')
}

func (r registry) clone() registry {
	c := registry{Version: r.Version, Members: make(map[string][]Target, len(r.Members))}
	for m, ts := range r.Members {
		c.Members[m] = slices.Clone(ts)
	}
	return c
}

// entry is one target of one member, as a job file lists it.
type entry struct {
	member string
	Target
}

// scraped returns job's targets as Prometheus gets them: sorted by address, one per address. Two members that
// registered the same address for the same job (a host handed from one resource to another) make one scrape, not
// two (twice the series, every alert twice): the member first by name keeps it, the other's entry waits.
func (r registry) scraped(job string) []entry {
	var all []entry
	for m, ts := range r.Members {
		for _, t := range ts {
			if t.Job == job {
				all = append(all, entry{m, t})
			}
		}
	}
	slices.SortFunc(all, func(a, b entry) int {
		return cmp.Or(strings.Compare(a.Address, b.Address), strings.Compare(a.member, b.member))
	})
	return slices.CompactFunc(all, func(a, b entry) bool { return a.Address == b.Address })
}

// owner returns the member whose entry Prometheus scrapes for t's job and address ("" when none).
func (r registry) owner(t Target) string {
	for _, e := range r.scraped(t.Job) {
		if e.Address == t.Address {
			return e.member
		}
	}
	return ""
}

// renderJob renders job's file_sd file: a YAML list of target groups, one per target. Strings are written as
// JSON strings, which YAML reads as double-quoted scalars with the same escapes.
func renderJob(r registry, job string) []byte {
	var b bytes.Buffer
	b.WriteString("# Managed by MOHD: Prometheus' targets of job " + job + ", rendered from " + RegistryFile + "\n")
	b.WriteString("# (each Terraform resource registers its own hosts' exporters there, as member " + MemberLabel + ").\n")
	b.WriteString("# Do not edit: a change by hand shows as drift and the next apply undoes it.\n")
	entries := r.scraped(job)
	if len(entries) == 0 {
		b.WriteString("[]\n")
		return b.Bytes()
	}
	for _, e := range entries {
		labels := maps.Clone(e.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels[MemberLabel] = e.member
		b.WriteString("- targets: [" + yamlString(e.Address) + "]\n  labels: {")
		for i, k := range slices.Sorted(maps.Keys(labels)) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(yamlString(k) + ": " + yamlString(labels[k]))
		}
		b.WriteString("}\n")
	}
	return b.Bytes()
}

func yamlString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(errors.New("monitoring: encoding a string: " + err.Error())) // a string: cannot happen
	}
	return strings.TrimSuffix(b.String(), "\n")
}
