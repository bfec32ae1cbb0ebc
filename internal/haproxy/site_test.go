package haproxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestRenderSite(t *testing.T) {
	reg := registry{Version: 1, TLS: true, Servers: []Server{
		{Name: "web3", Address: "10.20.0.23", Port: 80, Weight: 100, State: StateMaintenance},
		{Name: "web1", Address: "10.20.0.21", Port: 80, Weight: 100, State: StateActive},
		{Name: "web2", Address: "10.20.0.22", Port: 8080, Weight: 50, State: StateDrain},
		{Name: "web4", Address: "fd00::24", Port: 80, Weight: 0, State: StateActive},
	}}
	cfg, rev := renderSite(reg)
	want := `# Managed by MOHD: the site's front end settings (10-site.cfg of the haproxy role), rendered from
# /etc/haproxy/mohd-site.json, which the Terraform provider keeps (moodle_cluster, moodle_backend).
# Do not edit: a change by hand shows as drift and the next apply undoes it.
# Server states: "drain" is weight 0 and "maintenance" is disabled, so that a reload keeps them.

global
	setenv MOHD_SITE_REV ` + rev + `
	# TLS: /etc/haproxy/certs/site.pem is the site's certificate; 20-mohd-moodle.cfg listens on :443
	# and redirects http to https.
	setenv MOHD_TLS 1
	# Check states survive MOHD's reloads: it saves them here just before, and removes the file after.
	server-state-file /run/mohd-haproxy-server-state

backend moodle from moodle-web
	load-server-state-from-file global
	server web1 10.20.0.21:80 weight 100
	server web2 10.20.0.22:8080 weight 0 # drain (weight 50 once active)
	server web3 10.20.0.23:80 weight 100 disabled # maintenance
	server web4 fd00::24:80 weight 0
`
	if string(cfg) != want {
		t.Fatalf("rendered:\n%s\nwant:\n%s", cfg, want)
	}
	if len(rev) != 16 {
		t.Fatalf("revision %q", rev)
	}
	// The revision is the hash of the rest of the file.
	without := strings.Replace(string(cfg), "\tsetenv MOHD_SITE_REV "+rev+"\n", "", 1)
	if sha256Hex([]byte(without))[:16] != rev {
		t.Fatal("the revision is not the hash of the file without its marker")
	}

	// The order of registration does not matter; the input is not modified.
	shuffled := registry{Version: 1, TLS: true, Servers: []Server{reg.Servers[1], reg.Servers[3], reg.Servers[0], reg.Servers[2]}}
	if cfg2, rev2 := renderSite(shuffled); string(cfg2) != string(cfg) || rev2 != rev {
		t.Fatal("the rendering depends on the servers' order")
	}
	if shuffled.Servers[0].Name != "web1" || shuffled.Servers[1].Name != "web4" {
		t.Fatal("renderSite sorted its caller's slice")
	}

	// Without TLS: no switch; any change gives another revision.
	plain, rev3 := renderSite(registry{Version: 1, Servers: reg.Servers})
	if strings.Contains(string(plain), "MOHD_TLS") || rev3 == rev {
		t.Fatalf("plain rendering (rev %s):\n%s", rev3, plain)
	}
	empty, _ := renderSite(registry{Version: 1})
	if !strings.HasSuffix(string(empty), "backend moodle from moodle-web\n\tload-server-state-from-file global\n") {
		t.Fatalf("no server:\n%s", empty)
	}
}

func TestServerValidation(t *testing.T) {
	s, err := Server{Name: "web1", Address: "10.0.0.1"}.normalized()
	if err != nil || s.Port != DefaultPort || s.State != StateActive || s.Weight != 0 {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	for _, ok := range []Server{
		{Name: "web-1.a_b", Address: "web1.example.org", Port: 8080, Weight: 256, State: StateDrain},
		{Name: "w", Address: "2001:db8::1", Port: 65535, State: StateMaintenance},
	} {
		if _, err := ok.normalized(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for _, bad := range []Server{
		{Name: "", Address: "10.0.0.1"},
		{Name: "web 1", Address: "10.0.0.1"},
		{Name: "moodle/web1", Address: "10.0.0.1"},
		{Name: "-web", Address: "10.0.0.1"},
		{Name: "web1", Address: ""},
		{Name: "web1", Address: "10.0.0.1 check"},
		{Name: "web1", Address: "10.0.0.1", Port: 70000},
		{Name: "web1", Address: "10.0.0.1", Weight: 257},
		{Name: "web1", Address: "10.0.0.1", Weight: -1},
		{Name: "web1", Address: "10.0.0.1", State: "disabled"},
	} {
		if _, err := bad.normalized(); err == nil {
			t.Errorf("%+v was accepted", bad)
		}
	}
}

func TestRegistryRoundTrip(t *testing.T) {
	r := registry{TLS: true, CertificateSHA256: "ab", Servers: []Server{{Name: "b", Address: "10.0.0.2", Port: 80, Weight: 1, State: StateActive}, {Name: "a", Address: "10.0.0.1", Port: 80, Weight: 2, State: StateDrain}}}
	b := r.marshal()
	got, err := parseRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != registryVersion || !got.TLS || got.CertificateSHA256 != "ab" || len(got.Servers) != 2 || got.Servers[0].Name != "a" {
		t.Fatalf("round trip: %+v\n%s", got, b)
	}
	if empty, err := parseRegistry(nil); err != nil || empty.Version != registryVersion || len(empty.Servers) != 0 {
		t.Fatalf("no registry: %+v %v", empty, err)
	}
	if !strings.Contains(string(registry{}.marshal()), `"servers": []`) {
		t.Fatal("an empty registry has no server list")
	}
	for _, bad := range []string{"{", `{"version": 2, "servers": []}`, `{"version": 1, "servers": [{"name": "a b", "address": "10.0.0.1"}]}`} {
		if _, err := parseRegistry([]byte(bad)); err == nil {
			t.Errorf("registry %q was accepted", bad)
		}
	}
}

// testPair returns a self-signed certificate and its PKCS#8 key, PEM encoded.
func testPair(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "moodle.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

func TestSitePEM(t *testing.T) {
	cert, key := testPair(t)
	s := Site{TLSCertificatePEM: cert, TLSKeyPEM: key}
	b, err := s.pemFile()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != cert+key {
		t.Fatalf("PEM file:\n%s", b)
	}
	sum, err := s.CertificateSHA256()
	if err != nil || sum != sha256Hex(b) {
		t.Fatalf("checksum %s %v", sum, err)
	}
	// Line endings and blank lines do not change the file or its checksum.
	crlf := Site{TLSCertificatePEM: "\n" + strings.ReplaceAll(cert, "\n", "\r\n") + "\n\n", TLSKeyPEM: strings.ReplaceAll(key, "\n", "\r\n")}
	if sum2, err := crlf.CertificateSHA256(); err != nil || sum2 != sum {
		t.Fatalf("CRLF copy: %s %v, want %s", sum2, err, sum)
	}
	if sum, err := (Site{}).CertificateSHA256(); sum != "" || err != nil || (Site{}).TLS() {
		t.Fatal("plain site")
	}
	_, otherKey := testPair(t)
	for name, bad := range map[string]Site{
		"certificate only":  {TLSCertificatePEM: cert},
		"key only":          {TLSKeyPEM: key},
		"key of another":    {TLSCertificatePEM: cert, TLSKeyPEM: otherKey},
		"key in cert field": {TLSCertificatePEM: cert + key, TLSKeyPEM: key},
		"garbage":           {TLSCertificatePEM: "not a certificate", TLSKeyPEM: key},
	} {
		_, err := bad.CertificateSHA256()
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "PRIVATE KEY-----") || strings.Contains(err.Error(), strings.Split(key, "\n")[1]) {
			t.Errorf("%s: the error shows the key: %v", name, err)
		}
	}
}
