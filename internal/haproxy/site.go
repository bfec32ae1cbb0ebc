package haproxy

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Paths and names on a front end. The conf.d layout, the certificate directory and the sockets are the
// haproxy role's (internal/roles/haproxy.go); the registry, the site's certificate file and the server
// state file are this package's.
const (
	ConfDir      = "/etc/haproxy/conf.d"
	SiteFile     = ConfDir + "/10-site.cfg"
	CertDir      = "/etc/haproxy/certs"
	CertFile     = CertDir + "/site.pem"
	RegistryFile = "/etc/haproxy/mohd-site.json"
	AdminSocket  = "/run/haproxy/admin.sock"
	MasterSocket = "/run/haproxy-master.sock"
	// Backend is the site's backend in 10-site.cfg; 20-mohd-moodle.cfg's front end uses it.
	Backend = "moodle"
	// LockName is the host lock that guards the registry and the files rendered from it.
	LockName = "haproxy-site"
	// serverStateFile carries the servers' check states across MOHD's reloads: written just before a
	// reload, read by the new configuration, removed once the new worker runs (a stale copy must never be
	// read by a later reload someone else starts).
	serverStateFile = "/run/mohd-haproxy-server-state"
)

// Server states, as the registry and Server.State spell them.
const (
	StateActive      = "active"      // takes traffic at its weight
	StateDrain       = "drain"       // no new traffic (weight 0); its current requests finish
	StateMaintenance = "maintenance" // no traffic, no health checks ("disabled")
)

// Defaults applied to a Server's zero fields (Port, State). Weight 0 is a real weight (no new traffic), as
// in HAProxy: callers choose the weight; DefaultWeight is the one the provider should default to.
const (
	DefaultPort   = 80
	DefaultWeight = 100
	MaxWeight     = 256
)

// Site is the site-wide part of the front end. Both fields empty: plain HTTP on :80. Both set: HTTPS on
// :443 with this certificate, and :80 redirects to https.
type Site struct {
	// TLSCertificatePEM is the certificate, then its chain (PEM).
	TLSCertificatePEM string
	// TLSKeyPEM is the certificate's private key (PEM). A secret: it only travels in the uploaded file.
	TLSKeyPEM string
}

// TLS reports whether the site serves HTTPS.
func (s Site) TLS() bool { return s.TLSCertificatePEM != "" || s.TLSKeyPEM != "" }

// CertificateSHA256 is the checksum of the PEM file the site's certificate and key become on the front end
// (empty without TLS): what State.CertificateSHA256 holds once the site is configured with s, so that a
// caller can tell a changed certificate from the one in place without reading the key back.
func (s Site) CertificateSHA256() (string, error) {
	if !s.TLS() {
		return "", nil
	}
	b, err := s.pemFile()
	if err != nil {
		return "", err
	}
	return sha256Hex(b), nil
}

// pemFile validates the pair (the key must match the certificate) and returns the single PEM HAProxy
// reads: the certificates in their order, then the key, re-encoded so that the checksum does not depend on
// line endings or blank lines.
func (s Site) pemFile() ([]byte, error) {
	if s.TLSCertificatePEM == "" || s.TLSKeyPEM == "" {
		return nil, errors.New("haproxy: a TLS site needs both the certificate and its private key (or neither for plain HTTP)")
	}
	if _, err := tls.X509KeyPair([]byte(s.TLSCertificatePEM), []byte(s.TLSKeyPEM)); err != nil {
		return nil, fmt.Errorf("haproxy: the site's certificate and key are not a valid pair: %w", err)
	}
	var out bytes.Buffer
	rest := []byte(s.TLSCertificatePEM)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("haproxy: the site's certificate holds a %q block: give the private key separately", b.Type)
		}
		if err := pem.Encode(&out, &pem.Block{Type: b.Type, Bytes: b.Bytes}); err != nil {
			return nil, err
		}
	}
	rest = []byte(s.TLSKeyPEM)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("haproxy: the site's private key has no PEM key block")
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			if err := pem.Encode(&out, &pem.Block{Type: b.Type, Bytes: b.Bytes}); err != nil {
				return nil, err
			}
			return out.Bytes(), nil
		}
	}
}

// Server is one web server of the site's backend.
type Server struct {
	// Name is HAProxy's server name (moodle/<Name> on the runtime API): letters, digits, '.', '_', '-'.
	Name string `json:"name"`
	// Address is an IP address or a host name the front end resolves when it loads its configuration.
	Address string `json:"address"`
	// Port is the web server's HTTP port (0: DefaultPort).
	Port int `json:"port"`
	// Weight is HAProxy's weight, 0..256 (0 takes no new traffic).
	Weight int `json:"weight"`
	// State is StateActive (""), StateDrain or StateMaintenance.
	State string `json:"state"`
}

var serverNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

// normalized applies the defaults and validates s.
func (s Server) normalized() (Server, error) {
	if s.Port == 0 {
		s.Port = DefaultPort
	}
	if s.State == "" {
		s.State = StateActive
	}
	if err := validServerName(s.Name); err != nil {
		return s, err
	}
	if net.ParseIP(s.Address) == nil && !hostNameRE.MatchString(s.Address) {
		return s, fmt.Errorf("haproxy: server %s: address %q is neither an IP address nor a host name", s.Name, s.Address)
	}
	if s.Port < 1 || s.Port > 65535 {
		return s, fmt.Errorf("haproxy: server %s: port %d is out of range 1-65535", s.Name, s.Port)
	}
	if s.Weight < 0 || s.Weight > MaxWeight {
		return s, fmt.Errorf("haproxy: server %s: weight %d is out of range 0-%d", s.Name, s.Weight, MaxWeight)
	}
	switch s.State {
	case StateActive, StateDrain, StateMaintenance:
	default:
		return s, fmt.Errorf("haproxy: server %s: state %q is not one of %s, %s, %s", s.Name, s.State, StateActive, StateDrain, StateMaintenance)
	}
	return s, nil
}

func validServerName(name string) error {
	if !serverNameRE.MatchString(name) {
		return fmt.Errorf("haproxy: server name %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// hostPort is the server's address as HAProxy reads it (the last ':' separates the port, IPv6 included).
func (s Server) hostPort() string { return s.Address + ":" + strconv.Itoa(s.Port) }

// configWeight is the weight written in the configuration: a drained server keeps its weight in the
// registry, for when it is active again, but is loaded with weight 0.
func (s Server) configWeight() int {
	if s.State == StateDrain {
		return 0
	}
	return s.Weight
}

// registry is the site's desired state on a front end (RegistryFile).
type registry struct {
	Version int  `json:"version"`
	TLS     bool `json:"tls"`
	// CertificateSHA256 is the checksum of CertFile when TLS is on.
	CertificateSHA256 string   `json:"certificate_sha256,omitempty"`
	Servers           []Server `json:"servers"`
}

const registryVersion = 1

func parseRegistry(b []byte) (registry, error) {
	var r registry
	if len(bytes.TrimSpace(b)) == 0 {
		return registry{Version: registryVersion}, nil
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("haproxy: %s is not valid JSON (%w): fix or remove it, then apply again", RegistryFile, err)
	}
	if r.Version != registryVersion {
		return r, fmt.Errorf("haproxy: %s has version %d, this MOHD reads version %d", RegistryFile, r.Version, registryVersion)
	}
	for i, s := range r.Servers {
		n, err := s.normalized()
		if err != nil {
			return r, fmt.Errorf("%s: %w", RegistryFile, err)
		}
		r.Servers[i] = n
	}
	r.sort()
	return r, nil
}

func (r *registry) sort() {
	slices.SortFunc(r.Servers, func(a, b Server) int { return strings.Compare(a.Name, b.Name) })
}

func (r registry) marshal() []byte {
	r.Version = registryVersion
	r.sort()
	if r.Servers == nil {
		r.Servers = []Server{}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic("haproxy: registry: " + err.Error()) // plain structs: cannot happen
	}
	return append(b, '\n')
}

func (r registry) clone() registry {
	r.Servers = slices.Clone(r.Servers)
	return r
}

func (r registry) server(name string) (Server, bool) {
	for _, s := range r.Servers {
		if s.Name == name {
			return s, true
		}
	}
	return Server{}, false
}

func (r *registry) put(s Server) {
	for i := range r.Servers {
		if r.Servers[i].Name == s.Name {
			r.Servers[i] = s
			return
		}
	}
	r.Servers = append(r.Servers, s)
	r.sort()
}

func (r *registry) remove(name string) bool {
	n := len(r.Servers)
	r.Servers = slices.DeleteFunc(r.Servers, func(s Server) bool { return s.Name == name })
	return len(r.Servers) != n
}

// revMarker is the variable 10-site.cfg sets to its own revision, so that the running HAProxy tells
// (`show env`) which rendering it loaded.
const revMarker = "MOHD_SITE_REV"

// renderSite renders 10-site.cfg from the registry, and returns its revision too.
func renderSite(r registry) (cfg []byte, rev string) {
	r = r.clone()
	r.sort()
	var b strings.Builder
	b.WriteString(`# Managed by MOHD: the site's front end settings (10-site.cfg of the haproxy role), rendered from
# ` + RegistryFile + `, which the Terraform provider keeps (moodle_cluster, moodle_backend).
# Do not edit: a change by hand shows as drift and the next apply undoes it.
# Server states: "drain" is weight 0 and "maintenance" is disabled, so that a reload keeps them.

global
`)
	if r.TLS {
		b.WriteString("\t# TLS: " + CertFile + " is the site's certificate; 20-mohd-moodle.cfg listens on :443\n")
		b.WriteString("\t# and redirects http to https.\n")
		b.WriteString("\tsetenv MOHD_TLS 1\n")
	}
	b.WriteString("\t# Check states survive MOHD's reloads: it saves them here just before, and removes the file after.\n")
	b.WriteString("\tserver-state-file " + serverStateFile + "\n")
	b.WriteString("\nbackend " + Backend + " from moodle-web\n")
	b.WriteString("\tload-server-state-from-file global\n")
	for _, s := range r.Servers {
		line := fmt.Sprintf("\tserver %s %s weight %d", s.Name, s.hostPort(), s.configWeight())
		switch s.State {
		case StateDrain:
			line += fmt.Sprintf(" # drain (weight %d once active)", s.Weight)
		case StateMaintenance:
			line += " disabled # maintenance"
		}
		b.WriteString(line + "\n")
	}
	body := b.String()
	rev = sha256Hex([]byte(body))[:16]
	// The marker goes first in the global section; the revision is the hash of everything else.
	i := strings.Index(body, "\nglobal\n") + len("\nglobal\n")
	cfg = []byte(body[:i] + "\tsetenv " + revMarker + " " + rev + "\n" + body[i:])
	return cfg, rev
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
