package roles_test

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/roles"
)

// haproxyHTTPGet fetches url from host h with curl (following redirects, any certificate) and returns the
// status code and body; a connection error is an error.
func haproxyHTTPGet(h *lab.Host, url string) (int, string, error) {
	code, _, body, err := haproxyCurl(h, url)
	return code, body, err
}

// haproxyCurl is haproxyHTTPGet that also returns the URL the redirects ended at.
func haproxyCurl(h *lab.Host, url string) (code int, final, body string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.Exec(ctx, "curl -sS -k -L --max-time 5 -w '\\n%{http_code} %{url_effective}' '"+url+"'")
	if err != nil {
		return 0, "", out, err
	}
	i := strings.LastIndexByte(out, '\n')
	if i < 0 {
		return 0, "", out, fmt.Errorf("unexpected curl output %q", out)
	}
	if _, err := fmt.Sscan(out[i+1:], &code, &final); err != nil {
		return 0, "", out, fmt.Errorf("unexpected curl output %q: %w", out, err)
	}
	return code, final, out[:i], nil
}

// haproxyInstallCurl installs curl (the base image has none) and busybox (its httpd stands in for a web
// server) on hosts, in parallel.
func haproxyInstallCurl(t *testing.T, hosts ...*lab.Host) {
	t.Helper()
	errs := make(chan error, len(hosts))
	for _, h := range hosts {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			out, err := h.Exec(ctx, "export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends curl busybox >/dev/null")
			if err != nil {
				err = fmt.Errorf("%s: %w: %s", h.Name, err, out)
			}
			errs <- err
		}()
	}
	for range hosts {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// haproxyTCPOpen reports whether h can open a TCP connection to addr:port within 3 s.
func haproxyTCPOpen(h *lab.Host, addr string, port int) bool {
	_, err := h.Exec(context.Background(), fmt.Sprintf("timeout 3 bash -c 'echo > /dev/tcp/%s/%d'", addr, port))
	return err == nil
}

// haproxyMasterProcs returns the master's reload count and the workers' PIDs from the master CLI.
func haproxyMasterProcs(t *testing.T, h *lab.Host) (reloads int, workers []string) {
	t.Helper()
	out := labtest.Exec(t, h, "echo 'show proc' | socat -t 5 stdio unix-connect:/run/haproxy-master.sock")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		switch f[1] {
		case "master":
			reloads, _ = strconv.Atoi(f[2])
		case "worker":
			workers = append(workers, f[0])
		}
	}
	if len(workers) == 0 {
		t.Fatalf("show proc lists no worker:\n%s", out)
	}
	return reloads, workers
}

func TestApplyHAProxy(t *testing.T) {
	l, h := applyOnLabHost(t, "haproxy")
	// The lab hands out addresses in order: haproxy1 .10, peer .11, outsider .12.
	hosts := labtest.Start(t, l, lab.HostSpec{Name: "peer"}, lab.HostSpec{Name: "outsider"})
	peer, outsider := hosts[0], hosts[1]
	haproxyInstallCurl(t, peer, outsider)

	// The runtime API, the master CLI and the metrics, on the host itself.
	if info := labtest.Exec(t, h, "echo 'show info' | socat -t 5 stdio unix-connect:/run/haproxy/admin.sock"); !regexp.MustCompile(`(?m)^Version: 2\.6\.`).MatchString(info) {
		t.Fatalf("runtime API show info:\n%s", info)
	}
	if stat := labtest.Exec(t, h, "stat -c '%a %U %G' /run/haproxy/admin.sock"); stat != "660 root haproxy" {
		t.Errorf("admin socket: %s, want 660 root haproxy", stat)
	}
	if cfg := labtest.Exec(t, h, "tr '\\0' ' ' < /proc/$(cat /run/haproxy.pid)/cmdline"); !strings.Contains(cfg, "-Ws -f /etc/haproxy/conf.d ") ||
		!strings.Contains(cfg, "-S /run/haproxy-master.sock") {
		t.Fatalf("master command line: %s", cfg)
	}
	if certs := labtest.Exec(t, h, "stat -c '%a %U' /etc/haproxy/certs && ls -A /etc/haproxy/certs | wc -l"); certs != "700 root\n0" {
		t.Errorf("certificate directory: %q, want 700 root and empty (the image has no certificate)", certs)
	}
	// Logs reach the journal through /dev/log in the chroot.
	labtest.Exec(t, h, "curl -s -o /dev/null http://127.0.0.1/mohd-log-probe")
	if _, err := h.Exec(context.Background(), "for i in $(seq 20); do journalctl -q --no-pager -t haproxy -g mohd-log-probe | grep -q . && exit 0; sleep 0.5; done; exit 1"); err != nil {
		t.Errorf("HAProxy's request log did not reach the journal: %v", err)
	}

	// The front end is public: 503 from HAProxy (no server yet), from the peer and from the outsider.
	for _, c := range []*lab.Host{peer, outsider} {
		code, body, err := haproxyHTTPGet(c, "http://"+h.Addr+"/")
		if err != nil || code != 503 || !strings.Contains(body, "No server is available") {
			t.Fatalf("%s → :80: %d %v\n%s", c.Name, code, err, body)
		}
	}
	// Metrics and statistics from the cluster.
	code, body, err := haproxyHTTPGet(peer, "http://"+h.Addr+":8405/metrics")
	if err != nil || code != 200 || !strings.Contains(body, "haproxy_process_") || !strings.Contains(body, `haproxy_backend_active_servers{proxy="moodle"} 0`) {
		t.Fatalf("peer → :8405/metrics: %d %v\n%.2000s", code, err, body)
	}
	if code, body, err := haproxyHTTPGet(peer, "http://"+h.Addr+":8405/stats"); err != nil || code != 200 || !strings.Contains(body, "moodle") {
		t.Fatalf("peer → :8405/stats: %d %v\n%.2000s", code, err, body)
	}
	// An unlisted port with a listener behind it is dropped by the firewall.
	labtest.Exec(t, h, "systemd-run --quiet --unit=mohd-probe-9999 socat TCP-LISTEN:9999,fork,reuseaddr SYSTEM:'echo probe' && "+
		"for i in $(seq 20); do ss -Hltn 'sport = :9999' | grep -q . && exit 0; sleep 0.2; done; exit 1")
	labtest.Exec(t, h, "timeout 3 bash -c 'echo > /dev/tcp/127.0.0.1/9999'")
	if haproxyTCPOpen(peer, h.Addr, 9999) {
		t.Fatal("port 9999 (not a role port) is reachable from the peer")
	}

	t.Run("seamless reload", func(t *testing.T) { haproxySeamlessReload(t, h, peer) })
	t.Run("keepalived", func(t *testing.T) { haproxyKeepalived(t, h, peer) })
	t.Run("site settings", func(t *testing.T) { haproxySiteSettings(t, l, h, peer, outsider) })
	t.Run("metrics are cluster-only", func(t *testing.T) { haproxyClusterOnly(t, h, peer, outsider) })
}

// haproxySeamlessReload streams sequential requests (a new connection each) from the peer while HAProxy is
// reloaded twice: every answer must be HAProxy's 503, never a refused or reset connection.
func haproxySeamlessReload(t *testing.T, h, peer *lab.Host) {
	// A new connection per request: each one must be accepted by whichever worker holds the listener.
	const stream = `for i in $(seq %d); do curl -s -o /dev/null --max-time 5 -w '%%{http_code}' http://%s/; echo " $?"; sleep 0.01; done`
	reloads0, workers0 := haproxyMasterProcs(t, h)
	const n = 200
	type result struct {
		out string
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	started := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := peer.Exec(ctx, fmt.Sprintf(stream, n, h.Addr))
		done <- result{out, err, time.Now()}
	}()
	time.Sleep(time.Second)
	for i := 0; i < 2; i++ {
		labtest.Exec(t, h, "systemctl reload haproxy")
		time.Sleep(time.Second)
	}
	reloaded := time.Now()
	res := <-done
	if res.err != nil {
		t.Fatalf("request stream: %v\n%s", res.err, res.out)
	}
	if !res.at.After(reloaded) {
		t.Fatal("the request stream ended before the second reload: the test proves nothing, make the stream longer")
	}
	answers := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(res.out), "\n") {
		answers[l]++ // "503 0": HTTP status, curl's exit status
	}
	t.Logf("%d sequential requests across two reloads, %s: %v", n, res.at.Sub(started).Round(100*time.Millisecond), answers)
	if answers["503 0"] != n || len(answers) != 1 {
		t.Fatalf("connections failed or wrong answers during the reloads (want %d × \"503 0\"): %v", n, answers)
	}
	reloads1, workers1 := haproxyMasterProcs(t, h)
	if reloads1 != reloads0+2 || strings.Join(workers1, ",") == strings.Join(workers0, ",") {
		t.Fatalf("the reloads did not happen: master reloads %d → %d, workers %v → %v", reloads0, reloads1, workers0, workers1)
	}
	if st := labtest.Exec(t, h, "systemctl is-active haproxy"); st != "active" {
		t.Fatalf("haproxy is %s after the reloads", st)
	}
}

// haproxyKeepalived: installed, enabled, skipped while unconfigured; once the site writes a configuration it
// runs, holds the virtual address, and HAProxy answers on it (bind :80 covers an address added later).
func haproxyKeepalived(t *testing.T, h, peer *lab.Host) {
	if out := labtest.Exec(t, h, "systemctl is-enabled keepalived; systemctl is-active keepalived || true; systemctl show -p ConditionResult --value keepalived"); out != "enabled\ninactive\nno" {
		t.Fatalf("keepalived unconfigured: enabled/active/condition = %q, want enabled, inactive, no", strings.Fields(out))
	}
	// A minimal single-node configuration, as the provider would write one (lab hosts have NET_ADMIN).
	_, subnet, _ := net.ParseCIDR(h.Addr + "/24")
	vip := subnet.IP.To4()
	vip[3] = 200
	conf := fmt.Sprintf("vrrp_instance VI_MOHD {\n\tstate BACKUP\n\tinterface eth0\n\tvirtual_router_id 61\n\tpriority 150\n\tadvert_int 1\n\tvirtual_ipaddress {\n\t\t%s/24 dev eth0\n\t}\n}\n", vip)
	labtest.Exec(t, h, "cat > /etc/keepalived/keepalived.conf <<'EOF'\n"+conf+"EOF\nsystemctl start keepalived")
	if _, err := h.Exec(context.Background(), fmt.Sprintf("for i in $(seq 40); do ip -4 addr show dev eth0 | grep -q ' %s/' && exit 0; sleep 0.25; done; exit 1", vip)); err != nil {
		st, _ := h.Exec(context.Background(), "systemctl status keepalived --no-pager -n 20")
		t.Fatalf("keepalived did not take the virtual address %s:\n%s", vip, st)
	}
	code, body, err := haproxyHTTPGet(peer, "http://"+vip.String()+"/")
	if err != nil || code != 503 {
		t.Fatalf("peer → virtual address :80: %d %v\n%s", code, err, body)
	}
	// The role's checks accept a configured, running keepalived.
	if err := roles.Check(context.Background(), labtest.Remote(t, h), haproxyRole(t)); err != nil {
		t.Fatal(err)
	}
	labtest.Exec(t, h, "systemctl stop keepalived && rm /etc/keepalived/keepalived.conf")
}

// haproxyClusterOnly applies the role again with a cluster network that holds the host and the peer but
// not the outsider: the change converges (firewall restarted, HAProxy reloaded) and the outsider keeps the
// public front end but loses the metrics port.
func haproxyClusterOnly(t *testing.T, h, peer, outsider *lab.Host) {
	_, cidr, err := net.ParseCIDR(h.Addr + "/30")
	if err != nil {
		t.Fatal(err)
	}
	if !cidr.Contains(net.ParseIP(peer.Addr)) || cidr.Contains(net.ParseIP(outsider.Addr)) {
		t.Fatalf("lab addresses %s, %s, %s do not fit the test's plan (%s holds the first two only)", h.Addr, peer.Addr, outsider.Addr, cidr)
	}
	p := roles.Params{ClusterCIDR: cidr.String(), PluginVersion: "test"}
	rh := labtest.Remote(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, err := roles.Apply(ctx, rh, haproxyRole(t), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(rep.Files, " "), "30-mohd-metrics.cfg") || !strings.Contains(strings.Join(rep.Restarted, " "), "haproxy") {
		t.Fatalf("a new cluster network did not rewrite the metrics ACL and reload HAProxy: %+v", rep)
	}
	if rep, err := roles.Apply(ctx, rh, haproxyRole(t), p, nil); err != nil || rep.Changed() {
		t.Fatalf("second apply with %s: %+v %v", cidr, rep, err)
	}
	if code, _, err := haproxyHTTPGet(outsider, "http://"+h.Addr+"/"); err != nil || code != 503 {
		t.Fatalf("outsider → :80 (public): %d %v", code, err)
	}
	if haproxyTCPOpen(outsider, h.Addr, 8405) {
		t.Fatal("the metrics port 8405 is reachable from outside the cluster network")
	}
	if code, _, err := haproxyHTTPGet(peer, "http://"+h.Addr+":8405/metrics"); err != nil || code != 200 {
		t.Fatalf("peer → :8405 inside %s: %d %v", cidr, code, err)
	}
}

func haproxyRole(t *testing.T) *roles.Role {
	t.Helper()
	r, err := roles.Get("haproxy")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// haproxySiteSettings plays the provider: a web server and TLS in the site's file, loaded by a reload; the
// role applied again leaves them alone; removing them (and the file) brings the image's state back.
func haproxySiteSettings(t *testing.T, l *lab.Lab, h, web, client *lab.Host) {
	// A stand-in web server on the peer: /mohd-health answers 200 while the file exists.
	labtest.Exec(t, web, "mkdir -p /srv/www && echo ok > /srv/www/mohd-health && echo hello-from-web > /srv/www/index.html && "+
		"systemd-run --quiet --unit=mohd-web busybox httpd -f -p 8080 -h /srv/www")
	// A self-signed certificate, as the provider would install the site's.
	labtest.Exec(t, h, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=moodle.test "+
		"-keyout /tmp/k.pem -out /tmp/c.pem 2>/dev/null && cat /tmp/c.pem /tmp/k.pem > /etc/haproxy/certs/site.pem && "+
		"chmod 600 /etc/haproxy/certs/site.pem && rm /tmp/k.pem /tmp/c.pem")
	site := fmt.Sprintf("global\n\tsetenv MOHD_TLS 1\n\nbackend moodle from moodle-web\n\tserver web1 %s:8080\n", web.Addr)
	labtest.Exec(t, h, "cat > /etc/haproxy/conf.d/10-site.cfg <<'EOF'\n"+site+"EOF\nsystemctl reload haproxy")

	waitFor := func(what string, ok func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			good, state := ok()
			if good {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s", what, state)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	get := func(url string) string {
		code, final, body, err := haproxyCurl(client, url)
		if err != nil {
			return err.Error() + ": " + body
		}
		return fmt.Sprintf("%d %s %s", code, strings.TrimSpace(body), final)
	}
	// http is redirected to https, which reaches the web server through the health-checked backend.
	waitFor("https through HAProxy to the web server", func() (bool, string) {
		out := get("http://" + h.Addr + "/")
		return out == "200 hello-from-web https://"+h.Addr+"/", out
	})
	// TLS 1.1 is refused.
	if out, err := h.Exec(context.Background(), "openssl s_client -connect 127.0.0.1:443 -tls1_1 </dev/null 2>&1"); err == nil {
		t.Fatalf("TLS 1.1 handshake succeeded:\n%s", out)
	}
	labtest.Exec(t, h, "openssl s_client -connect 127.0.0.1:443 -tls1_2 </dev/null >/dev/null 2>&1")
	// The health check takes a failing web server out: 503.
	labtest.Exec(t, web, "rm /srv/www/mohd-health")
	waitFor("503 once the web server fails its health check", func() (bool, string) {
		out := get("https://" + h.Addr + "/")
		return strings.HasPrefix(out, "503 "), out
	})

	// Applying the role again changes nothing and keeps the site's file.
	rh := labtest.Remote(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := roles.Params{ClusterCIDR: l.Subnet.String(), PluginVersion: "test"}
	if rep, err := roles.Apply(ctx, rh, haproxyRole(t), p, nil); err != nil || rep.Changed() {
		t.Fatalf("apply over the site's settings: %+v %v", rep, err)
	}
	if got := labtest.Exec(t, h, "cat /etc/haproxy/conf.d/10-site.cfg"); got+"\n" != site {
		t.Fatalf("the role rewrote the site's file:\n%s", got)
	}

	// Without the site's file the role creates the image's copy again and loads it: no TLS, no server, 503.
	labtest.Exec(t, h, "rm /etc/haproxy/conf.d/10-site.cfg /etc/haproxy/certs/site.pem")
	rep, err := roles.Apply(ctx, rh, haproxyRole(t), p, nil)
	if err != nil || len(rep.Steps) != 1 || !strings.Contains(rep.Steps[0], "10-site.cfg") {
		t.Fatalf("apply without the site's file: %+v %v", rep, err)
	}
	waitFor("image state again", func() (bool, string) {
		out := get("http://" + h.Addr + "/")
		return strings.HasPrefix(out, "503 ") && !haproxyTCPOpen(client, h.Addr, 443), out
	})
}
