// Package sshx is MOHD's SSH transport: a Pool of shared, verified,
// automatically (re)connecting SSH connections whose hosts implement
// remote.Host. It has no Terraform or Packer types; see README.md for the
// options and the provider schema they map to.
package sshx

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Defaults.
const (
	DefaultPort              = 22
	DefaultMaxSessions       = 8 // below OpenSSH's MaxSessions default of 10
	DefaultConnectTimeout    = 5 * time.Minute
	DefaultKeepaliveInterval = 30 * time.Second
)

// Auth holds the credentials of one SSH login. All key material is passed
// as content (never read from ~/.ssh).
type Auth struct {
	// User is the login user.
	User string
	// PrivateKey is a PEM or OpenSSH private key (RSA, ECDSA, Ed25519).
	PrivateKey string
	// Passphrase decrypts PrivateKey when it is encrypted.
	Passphrase string
	// Certificate is an OpenSSH user certificate (the one-line content of
	// id_xxx-cert.pub) for PrivateKey, or for the agent key it certifies.
	Certificate string
	// Agent enables authentication through an ssh-agent.
	Agent bool
	// AgentSocket is the agent's unix socket; default $SSH_AUTH_SOCK.
	AgentSocket string
	// AgentIdentity selects the one agent key to offer: a public key in
	// authorized_keys format, a "SHA256:..." fingerprint or the key's
	// comment. Empty offers every agent key (servers allow only a few
	// attempts: MaxAuthTries is 6 by default).
	AgentIdentity string
}

func (a Auth) hasMethod() bool { return a.PrivateKey != "" || a.Agent }

// Hop is a bastion (jump host). Empty User and credentials (no
// PrivateKey and no Agent) are inherited from Config; host keys are not
// inherited, except Config.KnownHosts which is consulted for every host.
type Hop struct {
	Host string
	Port int // default 22
	Auth
	// HostKey is the hop's public host key in authorized_keys format (one
	// key per line; "@cert-authority KEY" lines name a CA that signed
	// the host certificate; an unmarked key is also accepted as a CA, like
	// Terraform's host_key).
	HostKey string
	// KnownHosts is known_hosts content for this hop (hashed entries,
	// @cert-authority and @revoked lines supported).
	KnownHosts string
}

// SudoMode says when commands are run through "sudo -n".
type SudoMode int

const (
	// SudoAuto uses sudo when the login user is not root.
	SudoAuto SudoMode = iota
	// SudoAlways always uses sudo.
	SudoAlways
	// SudoNever never uses sudo for escalation (Cmd.AsUser still does).
	SudoNever
)

// Config configures a Pool: how to log in to every target, and through
// which bastions.
type Config struct {
	Auth
	// KnownHosts is known_hosts content used for targets and bastions.
	KnownHosts string
	// InsecureIgnoreHostKey disables host key verification for every
	// host (targets and bastions). Each connection logs a warning.
	InsecureIgnoreHostKey bool
	// Bastions are jump hosts, outermost first: the first is dialled
	// directly, each next one through the previous, the target through
	// the last.
	Bastions []Hop
	// Sudo chooses when commands run through "sudo -n" (passwordless
	// sudo, NOPASSWD, is required for non-root users).
	Sudo SudoMode
	// MaxSessions limits concurrent sessions (commands, uploads, held
	// locks) per target connection; default 8.
	MaxSessions int
	// ConnectTimeout bounds how long connecting (with retries) may take,
	// unless the caller's context ends earlier; default 5m.
	ConnectTimeout time.Duration
	// KeepaliveInterval between keepalive requests; a connection whose
	// keepalive is not answered within an interval is closed and
	// re-dialled on next use. Default 30s; negative disables.
	KeepaliveInterval time.Duration
	// Logger receives redacted log entries; nil discards.
	Logger remote.Logger
	// Redactor hides secrets in logs and errors; nil creates one. The
	// pool registers its own credentials and every Cmd.Secrets in it.
	Redactor *remote.Redactor
}

// Target is one host to manage.
type Target struct {
	Host string
	Port int // default 22
	// HostKey: the host's public key in authorized_keys format (see
	// Hop.HostKey for CA handling). Optional when Config.KnownHosts
	// covers the host or InsecureIgnoreHostKey is set.
	HostKey string
}

// parsedAuth is validated Auth, ready to produce ssh.AuthMethods.
type parsedAuth struct {
	user        string
	signer      ssh.Signer       // from PrivateKey (wrapped with cert when given), may be nil
	cert        *ssh.Certificate // user certificate, may be nil
	agent       bool
	agentSocket string
	agentID     string
	agentIDKey  ssh.PublicKey // AgentIdentity parsed as a key, may be nil
}

// parseAuth validates a. what names the login in messages ("ssh" or
// "bastion 1 (host)").
func parseAuth(a Auth, what string) (*parsedAuth, error) {
	p := &parsedAuth{user: a.User, agent: a.Agent, agentID: strings.TrimSpace(a.AgentIdentity)}
	if a.User == "" {
		return nil, fmt.Errorf("%s: user is required", what)
	}
	if !a.hasMethod() {
		return nil, fmt.Errorf("%s: no authentication method: set private_key or agent = true", what)
	}
	if a.Certificate != "" {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(a.Certificate))
		if err != nil {
			return nil, fmt.Errorf("%s: certificate: cannot parse OpenSSH certificate: %w", what, err)
		}
		cert, ok := pub.(*ssh.Certificate)
		if !ok {
			return nil, fmt.Errorf("%s: certificate: got a plain %s public key, want an OpenSSH certificate (the content of id_xxx-cert.pub)", what, pub.Type())
		}
		if cert.CertType != ssh.UserCert {
			return nil, fmt.Errorf("%s: certificate: is a host certificate, want a user certificate", what)
		}
		p.cert = cert
	}
	if a.PrivateKey != "" {
		signer, err := parsePrivateKey(a.PrivateKey, a.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if p.cert != nil {
			cs, err := ssh.NewCertSigner(p.cert, signer)
			if err != nil {
				if !a.Agent {
					return nil, fmt.Errorf("%s: certificate does not certify private_key (key %s, certificate for %s)",
						what, ssh.FingerprintSHA256(signer.PublicKey()), ssh.FingerprintSHA256(p.cert.Key))
				}
				// the certificate is for an agent key
			} else {
				signer = cs
				p.cert = nil // consumed
			}
		}
		p.signer = signer
	} else if p.cert != nil && !a.Agent {
		return nil, fmt.Errorf("%s: certificate needs private_key or agent = true", what)
	}
	if a.Agent {
		p.agentSocket = a.AgentSocket
		if p.agentSocket == "" {
			p.agentSocket = os.Getenv("SSH_AUTH_SOCK")
		}
		if p.agentSocket == "" {
			return nil, fmt.Errorf("%s: agent = true but no agent socket: set agent_socket or SSH_AUTH_SOCK", what)
		}
		if p.agentID != "" && !strings.HasPrefix(p.agentID, "SHA256:") {
			if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(p.agentID)); err == nil {
				p.agentIDKey = k
			}
		}
	}
	return p, nil
}

func parsePrivateKey(pem, passphrase string) (ssh.Signer, error) {
	signer, err := ssh.ParsePrivateKey([]byte(pem))
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return signer, nil
	case errors.As(err, &missing):
		if passphrase == "" {
			return nil, errors.New("private_key is encrypted: set private_key_passphrase")
		}
		signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(pem), []byte(passphrase))
		if err != nil {
			return nil, fmt.Errorf("private_key: cannot decrypt with the given passphrase: %w", err)
		}
		return signer, nil
	default:
		return nil, fmt.Errorf("private_key: cannot parse (want a PEM or OpenSSH private key): %w", err)
	}
}

// secrets returns the strings of a that must be redacted.
func (a Auth) secrets() []string { return []string{a.PrivateKey, a.Passphrase} }

// normalize fills defaults and validates cfg.
func (cfg *Config) normalize() error {
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxSessions < 0 {
		return fmt.Errorf("ssh: max_sessions must be positive, got %d", cfg.MaxSessions)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.ConnectTimeout < 0 {
		return fmt.Errorf("ssh: connect timeout must be positive, got %s", cfg.ConnectTimeout)
	}
	if cfg.KeepaliveInterval == 0 {
		cfg.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = remote.NopLogger()
	}
	if cfg.Redactor == nil {
		cfg.Redactor = remote.NewRedactor()
	}
	switch cfg.Sudo {
	case SudoAuto, SudoAlways, SudoNever:
	default:
		return fmt.Errorf("ssh: invalid sudo mode %d", cfg.Sudo)
	}
	cfg.Bastions = append([]Hop(nil), cfg.Bastions...)
	for i := range cfg.Bastions {
		h := &cfg.Bastions[i]
		if h.Host == "" {
			return fmt.Errorf("ssh: bastion %d: host is required", i+1)
		}
		if h.Port == 0 {
			h.Port = DefaultPort
		}
		if h.Port < 0 || h.Port > 65535 {
			return fmt.Errorf("ssh: bastion %d (%s): invalid port %d", i+1, h.Host, h.Port)
		}
		if h.User == "" {
			h.User = cfg.User
		}
		if !h.hasMethod() {
			user := h.User
			h.Auth = cfg.Auth
			h.User = user
		}
	}
	return nil
}
