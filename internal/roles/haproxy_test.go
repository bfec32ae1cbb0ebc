package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// haproxyMustContainLines fails unless every line of want is a line of got (leading/trailing blanks ignored).
func haproxyMustContainLines(t *testing.T, name, got string, want ...string) {
	t.Helper()
	lines := map[string]bool{}
	for _, l := range strings.Split(got, "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("%s has no line %q:\n%s", name, w, got)
		}
	}
}

func TestHAProxyRoleDefinition(t *testing.T) {
	r, err := Get("haproxy")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"haproxy", "keepalived", "socat"} {
		if !contains(r.Packages, pkg) {
			t.Errorf("package %s missing: %v", pkg, r.Packages)
		}
	}
	for _, s := range []string{"haproxy", "keepalived"} {
		if !contains(r.Services, s) {
			t.Errorf("service %s missing: %v", s, r.Services)
		}
	}
	public, cluster := r.ports()
	for _, want := range []string{"tcp . 80", "tcp . 443", "tcp . 22"} {
		if !contains(public, want) {
			t.Errorf("%s is not public: public %v", want, public)
		}
	}
	if !contains(cluster, "tcp . 8405") || contains(public, "tcp . 8405") {
		t.Errorf("8405 (metrics, stats) must be open to the cluster only: public %v, cluster %v", public, cluster)
	}
}

func TestHAProxyConfigRendering(t *testing.T) {
	files := renderedFiles(t, "haproxy", Params{ClusterCIDR: "10.20.0.0/24"})

	global := files["/etc/haproxy/conf.d/00-mohd-global.cfg"]
	haproxyMustContainLines(t, "00-mohd-global.cfg", string(global.Content),
		"log /dev/log local0",
		"chroot /var/lib/haproxy",
		"user haproxy",
		"group haproxy",
		"master-worker",
		"stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners",
		"ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
		"ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets",
		"maxconn 8000",
		"unsetenv MOHD_TLS",
		"defaults mohd",
		"mode http",
		"option httplog",
		"option dontlognull",
		"option forwardfor",
		"timeout connect 5s",
		"timeout client 300s",
		"timeout server 300s",
		"timeout http-request 10s",
		"timeout http-keep-alive 10s",
		"timeout queue 60s",
		"defaults moodle-web from mohd",
		"option httpchk GET /mohd-health",
		"http-check expect status 200",
	)
	// TLS 1.2 ciphers: forward secrecy and AEAD only.
	for _, l := range strings.Split(string(global.Content), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "ssl-default-bind-ciphers ") {
			for _, c := range strings.Split(strings.TrimPrefix(l, "ssl-default-bind-ciphers "), ":") {
				if !strings.HasPrefix(c, "ECDHE-") || !(strings.Contains(c, "GCM") || strings.Contains(c, "CHACHA20")) {
					t.Errorf("weak TLS 1.2 cipher %q", c)
				}
			}
		}
	}
	// "daemon" would fight systemd's Type=notify and -Ws.
	if strings.Contains(string(global.Content), "\tdaemon") {
		t.Error("00-mohd-global.cfg sets daemon mode")
	}

	moodle := string(files["/etc/haproxy/conf.d/20-mohd-moodle.cfg"].Content)
	haproxyMustContainLines(t, "20-mohd-moodle.cfg", moodle,
		"frontend moodle from mohd",
		"bind :80",
		".if defined(MOHD_TLS)",
		"bind :443 ssl crt /etc/haproxy/certs/ alpn h2,http/1.1",
		".endif",
		"default_backend moodle",
	)
	// Without the site's switch there is no :443 listener: the image has no certificate and HAProxy refuses
	// an ssl bind without one.
	tls := strings.Index(moodle, ".if defined(MOHD_TLS)")
	if i := strings.Index(moodle, "bind :443"); i < tls || i > strings.Index(moodle, ".endif") {
		t.Errorf("the :443 bind is not inside the MOHD_TLS condition:\n%s", moodle)
	}

	metrics := string(files["/etc/haproxy/conf.d/30-mohd-metrics.cfg"].Content)
	haproxyMustContainLines(t, "30-mohd-metrics.cfg", metrics,
		"frontend prometheus from mohd",
		"bind :8405",
		"acl cluster src 10.20.0.0/24 127.0.0.0/8",
		"http-request deny unless cluster",
		"http-request use-service prometheus-exporter if { path /metrics }",
		"stats enable",
	)
	if strings.Index(metrics, "http-request deny unless cluster") > strings.Index(metrics, "use-service prometheus-exporter") {
		t.Error("the cluster ACL must come before the Prometheus service")
	}

	for _, name := range []string{"00-mohd-global.cfg", "20-mohd-moodle.cfg", "30-mohd-metrics.cfg"} {
		f := files["/etc/haproxy/conf.d/"+name]
		if f.Mode != 0o640 || f.Owner != "root" || !contains(f.Reload, "haproxy") || len(f.Restart) != 0 {
			t.Errorf("%s: mode %o owner %s reload %v restart %v; want 0640 root, reloaded (seamless), not restarted",
				name, f.Mode, f.Owner, f.Reload, f.Restart)
		}
	}
	// The site's file is never a managed file: the role would overwrite the provider's servers.
	if _, ok := files[haproxySiteFile]; ok {
		t.Errorf("%s is rendered as a managed file", haproxySiteFile)
	}

	unit := files["/etc/systemd/system/haproxy.service.d/50-mohd.conf"]
	haproxyMustContainLines(t, "haproxy drop-in", string(unit.Content), "[Service]", `Environment="CONFIG=/etc/haproxy/conf.d"`)
	if !contains(unit.Restart, "haproxy") {
		t.Errorf("a changed CONFIG needs a restart: %v", unit.Restart)
	}
	ka := files["/etc/systemd/system/keepalived.service.d/50-mohd.conf"]
	haproxyMustContainLines(t, "keepalived drop-in", string(ka.Content), "[Unit]", "ConditionFileNotEmpty=/etc/keepalived/keepalived.conf")

	fw := string(files["/etc/nftables.conf"].Content)
	if !strings.Contains(fw, "ip protocol vrrp accept") {
		t.Errorf("the haproxy firewall does not admit keepalived's VRRP:\n%s", fw)
	}
}

func TestHAProxyConfigRenderingIPv6(t *testing.T) {
	files := renderedFiles(t, "haproxy", Params{ClusterCIDR: "fd00:20::/64"})
	haproxyMustContainLines(t, "30-mohd-metrics.cfg", string(files["/etc/haproxy/conf.d/30-mohd-metrics.cfg"].Content),
		"acl cluster src fd00:20::/64 127.0.0.0/8")
}

// The image's copy of the site's file is written once and never again: the provider's servers survive every
// later apply of the role.
func TestHAProxySiteSeedScript(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this machine")
	}
	seed, err := filesFS.ReadFile("files/haproxy/10-site.cfg")
	if err != nil {
		t.Fatal(err)
	}
	haproxyMustContainLines(t, "10-site.cfg", string(seed), "backend moodle from moodle-web")
	for _, l := range strings.Split(string(seed), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "server ") {
			t.Errorf("the image's site file has a server: %q", l)
		}
	}

	dir := t.TempDir()
	target := filepath.Join(dir, "10-site.cfg")
	script := strings.ReplaceAll(haproxySiteSeedScript(), haproxySiteFile, target)
	run := func() string {
		t.Helper()
		cmd := exec.Command(sh, "-eu")
		cmd.Stdin = strings.NewReader(script)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("seed script: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out := run(); out != "changed" {
		t.Fatalf("first run printed %q, want changed", out)
	}
	got, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(seed) {
		t.Fatalf("seeded file differs from files/haproxy/10-site.cfg:\n%s", got)
	}
	if st, _ := os.Stat(target); st.Mode().Perm() != 0o640 {
		t.Errorf("seeded file mode %o, want 0640", st.Mode().Perm())
	}
	site := "backend moodle from moodle-web\n\tserver web1 10.20.0.21:80\n"
	if err := os.WriteFile(target, []byte(site), 0o640); err != nil {
		t.Fatal(err)
	}
	if out := run(); out != "" {
		t.Fatalf("second run printed %q, want nothing", out)
	}
	if got, _ := os.ReadFile(target); string(got) != site {
		t.Fatalf("the seed script overwrote the site's file:\n%s", got)
	}
}
