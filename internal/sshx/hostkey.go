package sshx

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError is a failed host key verification. It is never retried.
type HostKeyError struct {
	Host string // "host:port" as dialled
	// Got describes the key the server presented: "SHA256:... (ssh-ed25519)".
	Got string
	// Want lists the fingerprints that would have been accepted; empty when
	// the host is unknown (not in known_hosts and no host_key).
	Want []string
	// Reason explains rejections that are not simple mismatches (revoked
	// key, untrusted or invalid certificate).
	Reason string
}

func (e *HostKeyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ssh: host key verification failed for %s: ", e.Host)
	switch {
	case e.Reason != "":
		fmt.Fprintf(&b, "%s; server presented %s", e.Reason, e.Got)
		if len(e.Want) > 0 {
			fmt.Fprintf(&b, ", expected %s", strings.Join(e.Want, " or "))
		}
	case len(e.Want) == 0:
		fmt.Fprintf(&b, "host is unknown (not in known_hosts, no host_key); server presented %s", e.Got)
	default:
		fmt.Fprintf(&b, "MISMATCH: server presented %s, expected %s. The host was re-created, its keys changed, or the connection is being intercepted; if the change is expected update host_key/known_hosts",
			e.Got, strings.Join(e.Want, " or "))
	}
	return b.String()
}

func describeKey(k ssh.PublicKey) string {
	if c, ok := k.(*ssh.Certificate); ok {
		return fmt.Sprintf("%s (%s host certificate signed by CA %s (%s))",
			ssh.FingerprintSHA256(c.Key), c.Key.Type(), ssh.FingerprintSHA256(c.SignatureKey), c.SignatureKey.Type())
	}
	return fmt.Sprintf("%s (%s)", ssh.FingerprintSHA256(k), k.Type())
}

// hostKeys verifies the host key of one endpoint.
type hostKeys struct {
	insecure bool
	keys     []ssh.PublicKey // plain host keys (also accepted as CAs)
	cas      []ssh.PublicKey // @cert-authority keys
	kh       []*knownHosts
}

// newHostKeys parses hostKey (authorized_keys lines, optionally
// "@cert-authority"-marked) and combines it with known_hosts databases.
func newHostKeys(hostKey string, insecure bool, kh ...*knownHosts) (*hostKeys, error) {
	v := &hostKeys{insecure: insecure}
	for _, k := range kh {
		if k != nil {
			v.kh = append(v.kh, k)
		}
	}
	for i, line := range strings.Split(hostKey, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		ca := false
		if rest, ok := strings.CutPrefix(line, "@cert-authority"); ok {
			ca, line = true, strings.TrimSpace(rest)
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("host_key line %d: cannot parse (want authorized_keys format, e.g. \"ssh-ed25519 AAAA...\"): %w", i+1, err)
		}
		if _, isCert := key.(*ssh.Certificate); isCert {
			return nil, fmt.Errorf("host_key line %d: is a certificate; give the host's public key or its CA key (@cert-authority)", i+1)
		}
		if ca {
			v.cas = append(v.cas, key)
		} else {
			v.keys = append(v.keys, key)
		}
	}
	if !insecure && len(v.keys) == 0 && len(v.cas) == 0 && len(v.kh) == 0 {
		return nil, errors.New("no host key to verify against: set host_key or known_hosts (or, insecurely, insecure_ignore_host_key = true)")
	}
	return v, nil
}

func keyIn(k ssh.PublicKey, list []ssh.PublicKey) bool {
	b := k.Marshal()
	for _, l := range list {
		if string(l.Marshal()) == string(b) {
			return true
		}
	}
	return false
}

// check verifies key presented by addr ("host:port"); it never logs.
func (v *hostKeys) check(addr string, remote net.Addr, key ssh.PublicKey) error {
	if v.insecure {
		return nil
	}
	var want []string
	var reasons []string
	// host_key
	if len(v.keys) > 0 || len(v.cas) > 0 {
		if cert, ok := key.(*ssh.Certificate); ok {
			cc := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
				return keyIn(auth, v.cas) || keyIn(auth, v.keys)
			}}
			err := cc.CheckHostKey(addr, remote, cert)
			if err == nil {
				return nil
			}
			if keyIn(cert.SignatureKey, v.cas) || keyIn(cert.SignatureKey, v.keys) {
				reasons = append(reasons, "invalid host certificate: "+err.Error())
			} else if len(v.cas) > 0 || len(v.keys) > 0 {
				reasons = append(reasons, "host certificate is not signed by a trusted CA")
			}
		} else if keyIn(key, v.keys) {
			return nil
		}
		for _, k := range v.keys {
			want = append(want, fmt.Sprintf("%s (%s)", ssh.FingerprintSHA256(k), k.Type()))
		}
		for _, k := range v.cas {
			want = append(want, fmt.Sprintf("a certificate signed by CA %s (%s)", ssh.FingerprintSHA256(k), k.Type()))
		}
	}
	// known_hosts
	for _, db := range v.kh {
		err := db.cb(addr, remote, key)
		if err == nil {
			return nil
		}
		trustedCA := false
		for _, e := range db.entries(addr) {
			if db.isCA(e.Line) {
				want = append(want, fmt.Sprintf("a certificate signed by CA %s (%s)", ssh.FingerprintSHA256(e.Key), e.Key.Type()))
				if cert, ok := key.(*ssh.Certificate); ok && keyIn(cert.SignatureKey, []ssh.PublicKey{e.Key}) {
					trustedCA = true
				}
			} else {
				want = append(want, fmt.Sprintf("%s (%s)", ssh.FingerprintSHA256(e.Key), e.Key.Type()))
			}
		}
		var re *knownhosts.RevokedError
		var ke *knownhosts.KeyError
		_, isCert := key.(*ssh.Certificate)
		switch {
		case errors.As(err, &re):
			reasons = append(reasons, fmt.Sprintf("key %s is marked @revoked in known_hosts", ssh.FingerprintSHA256(re.Revoked.Key)))
		case isCert && trustedCA:
			reasons = append(reasons, "invalid host certificate: "+err.Error())
		case isCert:
			reasons = append(reasons, "host certificate is not signed by a CA trusted for this host")
		case errors.As(err, &ke):
		default:
			reasons = append(reasons, "known_hosts: "+err.Error())
		}
	}
	return &HostKeyError{Host: addr, Got: describeKey(key), Want: dedupe(want), Reason: strings.Join(dedupe(reasons), "; ")}
}

// algorithms returns the host key algorithms to negotiate with addr so the
// server presents a key that can be verified (nil: library default).
func (v *hostKeys) algorithms(addr string) []string {
	if v.insecure {
		return nil
	}
	var certs, plain []string
	if len(v.cas) > 0 {
		certs = append(certs, certAlgos...)
	}
	for _, k := range v.keys {
		plain = append(plain, plainAlgos(k.Type())...)
	}
	for _, db := range v.kh {
		c, p := db.algorithms(addr)
		certs = append(certs, c...)
		plain = append(plain, p...)
	}
	return dedupe(append(certs, plain...))
}

var certAlgos = []string{
	ssh.CertAlgoED25519v01,
	ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
	ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01,
}

func plainAlgos(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{keyType}
}

func dedupe(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// knownHosts is parsed known_hosts content.
type knownHosts struct {
	cb    ssh.HostKeyCallback
	lines []string // raw lines, for marker lookup by line number
	probe ssh.PublicKey
}

// parseKnownHosts parses known_hosts content with x/crypto's knownhosts
// (which only reads files: the content goes through a private temp file).
func parseKnownHosts(content string) (*knownHosts, error) {
	if strings.TrimSpace(content) == "" {
		return nil, nil
	}
	f, err := os.CreateTemp("", "mohd-known_hosts-*")
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(content)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("known_hosts: %w", werr)
	}
	cb, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %v", strings.ReplaceAll(err.Error(), f.Name(), "content"))
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return &knownHosts{cb: cb, lines: strings.Split(content, "\n"), probe: probe}, nil
}

func (k *knownHosts) isCA(line int) bool {
	if line < 1 || line > len(k.lines) {
		return false
	}
	return strings.HasPrefix(strings.TrimSpace(k.lines[line-1]), "@cert-authority")
}

// entries returns the known_hosts entries (plain and @cert-authority)
// matching addr, found by probing with a random key: the mismatch error
// lists every matching entry.
func (k *knownHosts) entries(addr string) []knownhosts.KnownKey {
	err := k.cb(addr, &net.TCPAddr{IP: net.IPv4zero}, k.probe)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	return ke.Want
}

// algorithms returns the host key algorithms that can be verified for addr.
func (k *knownHosts) algorithms(addr string) (certs, plain []string) {
	for _, w := range k.entries(addr) {
		if k.isCA(w.Line) {
			certs = append(certs, certAlgos...)
		} else {
			plain = append(plain, plainAlgos(w.Key.Type())...)
		}
	}
	return certs, plain
}
