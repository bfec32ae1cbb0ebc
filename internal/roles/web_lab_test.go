package roles_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/roles"
)

// TestApplyWeb applies the web role twice, then checks it from the host and from a peer on the cluster
// network: the health endpoint (without a database, with an unreachable one, with a real MariaDB on the
// peer), the access rules of the status pages, the headers, the firewall and the PHP-FPM metrics.
func TestApplyWeb(t *testing.T) {
	l, h := applyOnLabHost(t, "web")
	// The peer plays HAProxy (curl) and the database server (MariaDB, open to the cluster network); NET_ADMIN
	// lets it drop a port silently, as an unreachable database does.
	peer := labtest.Start(t, l, lab.HostSpec{Name: "peer", CapAdd: []string{"NET_ADMIN"}})[0]
	labtest.Exec(t, peer, `export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends curl mariadb-server python3 >/dev/null
printf '[mysqld]\nbind-address = 0.0.0.0\n' > /etc/mysql/mariadb.conf.d/99-lab.cnf
systemctl restart mariadb
mysql <<'SQL'
CREATE DATABASE moodle;
CREATE USER 'mohd_health'@'%' IDENTIFIED BY 'S3c;r#t=$x{y}';
GRANT SELECT ON moodle.* TO 'mohd_health'@'%';
SQL
nft add table inet lab_drop
nft add chain inet lab_drop input '{ type filter hook input priority -10; policy accept; }'
nft add rule inet lab_drop input tcp dport 3307 drop`)
	web := "http://" + h.Addr

	t.Run("health endpoint without a database", func(t *testing.T) {
		code, body := peerGet(t, peer, web+"/mohd-health")
		if code != 200 || body != "OK (no database configured)" {
			t.Fatalf("/mohd-health from the peer: %d %q", code, body)
		}
		// A check is no Moodle request: no cookie, no session.
		hdrs := labtest.Exec(t, peer, "curl -sS -D - -o /dev/null "+web+"/mohd-health")
		if strings.Contains(strings.ToLower(hdrs), "set-cookie") {
			t.Fatalf("the health endpoint sets a cookie:\n%s", hdrs)
		}
	})

	t.Run("health endpoint with a database", func(t *testing.T) {
		writeHealthIni := func(host string, port int, pass string) {
			labtest.Exec(t, h, fmt.Sprintf(`cat > /etc/mohd/health.ini <<'EOF'
dbhost = "%s"
dbport = %d
dbname = "moodle"
dbuser = "mohd_health"
dbpass = "%s"
EOF
chown root:www-data /etc/mohd/health.ini && chmod 0640 /etc/mohd/health.ini`, host, port, pass))
		}
		defer labtest.Exec(t, h, "rm -f /etc/mohd/health.ini")

		// A database port that drops every packet: the connect timeout (2 s) bounds the check.
		writeHealthIni(peer.Addr, 3307, "x")
		start := time.Now()
		code, body := peerGet(t, peer, web+"/mohd-health")
		took := time.Since(start)
		if code != 503 || !strings.HasPrefix(body, "FAIL database") {
			t.Fatalf("unreachable database: %d %q, want 503 FAIL database...", code, body)
		}
		if took < 1500*time.Millisecond || took > 6*time.Second {
			t.Fatalf("unreachable database: the check took %s; the connect timeout is 2 s", took)
		}
		// Nothing listening: refused at once.
		writeHealthIni(peer.Addr, 3308, "x")
		if code, body := peerGet(t, peer, web+"/mohd-health"); code != 503 || !strings.Contains(body, "refused") {
			t.Fatalf("refused database port: %d %q, want 503 ... refused", code, body)
		}
		t.Logf("unreachable database: %d %q in %s", code, body, took.Round(time.Millisecond))

		// MariaDB on the peer, wrong password, then the right one (';', '#', '=', '$' and braces are
		// taken literally from the ini file).
		writeHealthIni(peer.Addr, 3306, "wrong")
		if code, body := peerGet(t, peer, web+"/mohd-health"); code != 503 || !strings.Contains(body, "1045") {
			t.Fatalf("wrong password: %d %q, want 503 with MariaDB's access denied (1045)", code, body)
		}
		writeHealthIni(peer.Addr, 3306, `S3c;r#t=$x{y}`)
		if code, body := peerGet(t, peer, web+"/mohd-health"); code != 200 || body != "OK" {
			t.Fatalf("reachable database: %d %q, want 200 OK", code, body)
		}
		// The file must stay unreadable to others than root and www-data.
		if out := labtest.Exec(t, h, "stat -c '%a %U %G' /etc/mohd/health.ini"); strings.TrimSpace(out) != "640 root www-data" {
			t.Fatalf("health.ini: %s", out)
		}
	})

	t.Run("status pages", func(t *testing.T) {
		// PHP-FPM's status and ping: the cluster yes; a public client behind a trusted proxy (the peer
		// playing HAProxy, adding X-Forwarded-For) no; Apache's status: loopback only.
		if code, body := peerGet(t, peer, web+"/fpm-status?json"); code != 200 || !strings.Contains(body, `"pool":"moodle"`) {
			t.Fatalf("/fpm-status from the cluster: %d %q", code, body)
		}
		if code, body := peerGet(t, peer, web+"/fpm-ping"); code != 200 || body != "pong" {
			t.Fatalf("/fpm-ping from the cluster: %d %q", code, body)
		}
		for _, path := range []string{"/fpm-status", "/mohd-health"} {
			if code, _ := peerGet(t, peer, web+path, "-H", "X-Forwarded-For: 203.0.113.7"); code != 403 {
				t.Fatalf("%s for a public client behind the front end: %d, want 403", path, code)
			}
		}
		if code, _ := peerGet(t, peer, web+"/server-status"); code != 403 {
			t.Fatalf("/server-status from the peer: %d, want 403", code)
		}
		out := labtest.Exec(t, h, "curl -fsS 'http://127.0.0.1/server-status?auto'")
		if !strings.Contains(out, "ServerMPM: event") {
			t.Fatalf("server-status on loopback:\n%s", out)
		}
		// mod_remoteip logged the forwarded client, not the proxy.
		labtest.Exec(t, h, "grep -q '^203.0.113.7 ' /var/log/apache2/moodle-access.log")
		// An X-Forwarded-For from the host itself (loopback is not a trusted proxy) changes nothing.
		if out := labtest.Exec(t, h, "curl -s -o /dev/null -w '%{http_code}' -H 'X-Forwarded-For: 203.0.113.7' http://127.0.0.1/fpm-ping"); out != "200" {
			t.Fatalf("/fpm-ping on loopback with a forged X-Forwarded-For: %s", out)
		}
	})

	t.Run("headers and hidden files", func(t *testing.T) {
		hdrs := labtest.Exec(t, peer, "curl -sS -D - -o /dev/null "+web+"/mohd-health")
		for _, want := range []string{"Server: Apache\r\n", "X-Content-Type-Options: nosniff\r\n", "Referrer-Policy: strict-origin-when-cross-origin\r\n"} {
			if !strings.Contains(hdrs, want) {
				t.Errorf("response headers lack %q:\n%s", want, hdrs)
			}
		}
		if strings.Contains(hdrs, "X-Powered-By") {
			t.Errorf("PHP announces itself:\n%s", hdrs)
		}
		// A script in the (placeholder) release runs through PHP-FPM with path info; dotfiles and
		// Moodle's internal files are refused. The test files are removed afterwards.
		labtest.Exec(t, h, `d=/var/www/moodle/current
mkdir -p $d/.git && echo secret > $d/.git/config && echo '{}' > $d/composer.json
echo '<?php echo PHP_SAPI, " ", $_SERVER["PATH_INFO"] ?? "", " ", $_SERVER["REMOTE_ADDR"];' > $d/lab-info.php`)
		defer labtest.Exec(t, h, "cd /var/www/moodle/current && rm -rf .git composer.json lab-info.php")
		if code, body := peerGet(t, peer, web+"/lab-info.php/1/file.pdf"); code != 200 || body != "fpm-fcgi /1/file.pdf "+peer.Addr {
			t.Fatalf("a PHP script with path info: %d %q", code, body)
		}
		for _, path := range []string{"/.git/config", "/composer.json"} {
			if code, _ := peerGet(t, peer, web+path); code != 403 {
				t.Errorf("%s: %d, want 403", path, code)
			}
		}
		if code, _ := peerGet(t, peer, web+"/missing.php"); code != 404 {
			t.Errorf("a missing script: %d, want 404", code)
		}
	})

	t.Run("firewall", func(t *testing.T) {
		// The role's ports are open to the cluster; another port with a listener is not.
		labtest.Exec(t, peer, "timeout 3 bash -c 'echo > /dev/tcp/"+h.Addr+"/80'")
		if out := labtest.Exec(t, peer, "curl -fsS --max-time 5 http://"+h.Addr+":9117/metrics"); !strings.Contains(out, "apache_up 1") {
			t.Fatalf("Apache exporter from the peer: no apache_up 1")
		}
		labtest.Exec(t, h, "systemd-run --unit=lab-listener-9000 php8.2 -S 0.0.0.0:9000 -t /var/www/mohd-health")
		defer labtest.Exec(t, h, "systemctl stop lab-listener-9000")
		labtest.Exec(t, h, "for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:9000/ && exit 0; sleep 0.1; done; exit 1")
		if _, err := peer.Exec(context.Background(), "timeout 3 bash -c 'echo > /dev/tcp/"+h.Addr+"/9000'"); err == nil {
			t.Fatal("port 9000 (not a web port) is reachable from the peer")
		}
	})

	t.Run("PHP-FPM metrics", func(t *testing.T) {
		// The timer writes the file every 15 s; the node exporter serves it.
		const prom = "/var/lib/prometheus/node-exporter/php_fpm.prom"
		first := waitFor(t, h, 40*time.Second, "grep -q '^php_fpm_up{pool=\"moodle\"} 1$' "+prom+" && stat -c %Y "+prom)
		out := labtest.Exec(t, h, "curl -fsS http://127.0.0.1:9100/metrics")
		for _, m := range []string{"php_fpm_up", "php_fpm_active_processes", "php_fpm_idle_processes", "php_fpm_total_processes",
			"php_fpm_accepted_connections_total", "php_fpm_listen_queue", "php_fpm_max_children_reached_total",
			"php_fpm_slow_requests_total", "php_fpm_max_children"} {
			if !regexp.MustCompile(`(?m)^` + m + `\{pool="moodle"\} \d+$`).MatchString(out) {
				t.Errorf("the node exporter does not serve %s", m)
			}
		}
		// The next run of the timer rewrites it.
		waitFor(t, h, 30*time.Second, "[ \"$(stat -c %Y "+prom+")\" != "+strings.TrimSpace(first)+" ]")
		// PHP-FPM down: php_fpm_up 0 at the next run.
		labtest.Exec(t, h, "systemctl stop php8.2-fpm")
		defer labtest.Exec(t, h, "systemctl start php8.2-fpm")
		labtest.Exec(t, h, "systemctl start mohd-php-fpm-metrics.service")
		if out := labtest.Exec(t, h, "cat "+prom); !strings.Contains(out, "php_fpm_up{pool=\"moodle\"} 0\n") || strings.Contains(out, "php_fpm_active_processes") {
			t.Fatalf("metrics with PHP-FPM stopped:\n%s", out)
		}
	})
	t.Run("mod_php is purged and the event MPM comes back", func(t *testing.T) {
		// Someone installs mod_php and switches Apache to prefork, as old tutorials say; the checks see it,
		// and the next apply purges mod_php and restores the event MPM.
		// The web host cannot resolve the Debian mirror once its firewall is loaded (the ruleset's "flush
		// ruleset" also drops Docker's embedded-DNS rules in a lab container), so the peer fetches the
		// package and serves it over the cluster network.
		labtest.Exec(t, peer, `mkdir -p /srv/debs && cd /srv/debs && apt-get download -q libapache2-mod-php8.2 >/dev/null
systemd-run --unit=lab-debs python3 -m http.server 8000 --directory /srv/debs`)
		labtest.Exec(t, h, `set -e
cd /tmp # readable by apt's sandbox user
deb=
for i in $(seq 120); do
	deb=$(curl -sS http://`+peer.Addr+`:8000/ 2>/dev/null | grep -o 'libapache2-mod-php8.2_[^"]*\.deb' | head -n 1) && [ -n "$deb" ] && break
	sleep 0.5
done
curl -fsS -o libapache2-mod-php8.2.deb "http://`+peer.Addr+`:8000/$deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ./libapache2-mod-php8.2.deb >/dev/null
rm -f libapache2-mod-php8.2.deb
a2dismod -q mpm_event && a2enmod -q mpm_prefork php8.2 && systemctl restart apache2`)
		if out := labtest.Exec(t, h, "apachectl -M 2>/dev/null | grep -E 'mpm_|php'"); !strings.Contains(out, "mpm_prefork") || !strings.Contains(out, "php_module") {
			t.Fatalf("the test could not switch Apache to prefork and mod_php: %s", out)
		}
		r, err := roles.Get("web")
		if err != nil {
			t.Fatal(err)
		}
		rh := labtest.Remote(t, h)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := roles.Check(ctx, rh, r); err == nil || !strings.Contains(err.Error(), "event MPM") {
			t.Fatalf("the checks did not notice prefork and mod_php: %v", err)
		}
		rep, err := roles.Apply(ctx, rh, r, roles.Params{ClusterCIDR: l.Subnet.String(), PluginVersion: "test"}, nil)
		if err != nil {
			t.Fatalf("apply after mod_php: %v", err)
		}
		if !slices.Contains(rep.Purged, "libapache2-mod-php8.2") || !slices.Contains(rep.Steps, "Apache modules, configuration and site") {
			t.Fatalf("apply did not purge mod_php and re-enable the event MPM: %+v", rep)
		}
		if out := labtest.Exec(t, h, "apachectl -M 2>/dev/null | grep -E 'mpm_|php'"); strings.TrimSpace(out) != "mpm_event_module (shared)" {
			t.Fatalf("after apply: %s", out)
		}
		if code, body := peerGet(t, peer, web+"/mohd-health"); code != 200 || !strings.HasPrefix(body, "OK") {
			t.Fatalf("/mohd-health after apply: %d %q", code, body)
		}
	})
}

// TestApplyWebFPMSizing applies the web role to a 1 GiB and a 3 GiB host: each pool is sized from its own
// memory (the container's cgroup limit, not the machine's MemTotal), and the sizing runs again at boot.
func TestApplyWebFPMSizing(t *testing.T) {
	l := labtest.New(t)
	hosts := labtest.Start(t, l, lab.HostSpec{Name: "web-1g", Memory: "1g"}, lab.HostSpec{Name: "web-3g", Memory: "3g"})
	r, err := roles.Get("web")
	if err != nil {
		t.Fatal(err)
	}
	p := roles.Params{ClusterCIDR: l.Subnet.String(), PluginVersion: "test"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(hosts))
	start := time.Now()
	for i, h := range hosts {
		rh := labtest.Remote(t, h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = roles.Apply(ctx, rh, r, p, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("apply on %s: %v", hosts[i].Name, err)
		}
	}
	t.Logf("applied to two hosts in parallel in %s", time.Since(start).Round(time.Second))

	// (memory - 512 MiB) / 80 MiB: 1 GiB -> 6, 3 GiB -> 32.
	want := map[string]int{"web-1g": 6, "web-3g": 32}
	for _, h := range hosts {
		if got := maxChildren(t, h); got != want[h.Name] {
			t.Errorf("%s: pm.max_children = %d, want %d", h.Name, got, want[h.Name])
		}
		// PHP-FPM reads it (a later [moodle] section overrides the pool file's fallback of 4).
		out := labtest.Exec(t, h, "php-fpm8.2 -tt 2>&1 | grep -c 'pm.max_children = "+strconv.Itoa(want[h.Name])+"$' || true")
		if strings.TrimSpace(out) != "1" {
			t.Errorf("%s: PHP-FPM's effective configuration does not have pm.max_children = %d", h.Name, want[h.Name])
		}
	}

	// At boot the size is computed again before PHP-FPM starts: remove it, reboot, and it is back.
	h := hosts[0]
	labtest.Exec(t, h, "rm /etc/php/8.2/fpm/pool.d/60-moodle-size.conf")
	if err := h.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, h, 60*time.Second, "systemctl is-active --quiet php8.2-fpm && test -f /etc/php/8.2/fpm/pool.d/60-moodle-size.conf")
	if got := maxChildren(t, h); got != want[h.Name] {
		t.Errorf("after a reboot: pm.max_children = %d, want %d", got, want[h.Name])
	}
	order := labtest.Exec(t, h, `echo $(systemctl show -p ExecMainExitTimestampMonotonic --value mohd-php-fpm-size) $(systemctl show -p ExecMainStartTimestampMonotonic --value php8.2-fpm)`)
	var sized, fpm int64
	if _, err := fmt.Sscan(order, &sized, &fpm); err != nil || sized == 0 || sized > fpm {
		t.Errorf("at boot the sizing (done at %d µs) must finish before PHP-FPM starts (%d µs)", sized, fpm)
	}
	waitFor(t, h, 30*time.Second, "curl -fsS http://127.0.0.1/mohd-health | grep -q OK")
}

// peerGet requests url from the peer with curl and returns the status code and the body.
func peerGet(t *testing.T, peer *lab.Host, url string, curlArgs ...string) (int, string) {
	t.Helper()
	args := ""
	for _, a := range curlArgs {
		args += " '" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	out := labtest.Exec(t, peer, "curl -sS --max-time 15 -w '\\n%{http_code}'"+args+" '"+url+"'")
	out = strings.TrimRight(out, "\n")
	i := strings.LastIndexByte(out, '\n')
	code, err := strconv.Atoi(out[i+1:])
	if err != nil {
		t.Fatalf("curl %s: %q", url, out)
	}
	return code, strings.TrimSpace(out[:max(i, 0)])
}

// waitFor runs script on h until it succeeds, failing the test after timeout; it returns the last output.
func waitFor(t *testing.T, h *lab.Host, timeout time.Duration, script string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := h.Exec(context.Background(), script)
		if err == nil {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", h.Name, timeout, err)
		}
		time.Sleep(time.Second)
	}
}

func maxChildren(t *testing.T, h *lab.Host) int {
	t.Helper()
	out := labtest.Exec(t, h, `sed -n 's/^pm\.max_children = \([0-9]*\)$/\1/p' /etc/php/8.2/fpm/pool.d/60-moodle-size.conf`)
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("%s: no pm.max_children in 60-moodle-size.conf: %q", h.Name, out)
	}
	return n
}
