package roles

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// webRendered renders the web role's own files for p, by path.
func webRendered(t *testing.T, p Params) map[string]string {
	t.Helper()
	files, err := webFiles(p)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		c := string(f.Content)
		if strings.Contains(c, "<no value>") || strings.Contains(c, "{{") {
			t.Errorf("%s: template left unrendered:\n%s", f.Path, c)
		}
		out[f.Path] = c
	}
	return out
}

func mustContain(t *testing.T, name, content string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(content, w) {
			t.Errorf("%s lacks %q", name, w)
		}
	}
}

func TestWebRoleDefinition(t *testing.T) {
	r, err := Get("web")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"apache2", "php8.2-fpm", "php8.2-cli", "php8.2-mysql", "php8.2-curl", "php8.2-gd",
		"php8.2-intl", "php8.2-mbstring", "php8.2-soap", "php8.2-xml", "php8.2-zip", "php8.2-opcache", "php8.2-redis",
		"libfcgi-bin", "prometheus-apache-exporter", "nfs-common", "git", "unzip"} {
		if !slices.Contains(r.Packages, pkg) {
			t.Errorf("package %s is missing", pkg)
		}
	}
	for _, pkg := range []string{"libapache2-mod-php8.2", "libapache2-mod-php"} {
		if !slices.Contains(r.Forbidden, pkg) {
			t.Errorf("%s is not forbidden", pkg)
		}
		if slices.Contains(r.Packages, pkg) {
			t.Errorf("%s is both wanted and forbidden", pkg)
		}
	}
	public, cluster := r.ports()
	if want := []string{"tcp . 22"}; !slices.Equal(public, want) {
		t.Errorf("public ports %v, want only SSH %v: the front ends reach port 80 over the cluster network", public, want)
	}
	if want := []string{"tcp . 80", "tcp . 9100", "tcp . 9117"}; !slices.Equal(cluster, want) {
		t.Errorf("cluster ports %v, want %v", cluster, want)
	}
	// The pool is sized before PHP-FPM is (re)started by Apply.
	if i, j := slices.Index(r.Services, "mohd-php-fpm-size"), slices.Index(r.Services, "php8.2-fpm"); i < 0 || j < 0 || i > j {
		t.Errorf("services %v: mohd-php-fpm-size must come before php8.2-fpm", r.Services)
	}
	for _, s := range []string{"apache2", "prometheus-apache-exporter", "mohd-php-fpm-metrics.timer"} {
		if !slices.Contains(r.Services, s) {
			t.Errorf("service %s is missing", s)
		}
	}
	// Every requirement of Moodle 4.5 (reference/moodle.md) is checked.
	for _, e := range strings.Fields("iconv mbstring curl openssl ctype zip zlib gd simplexml spl pcre dom xml xmlreader intl json hash fileinfo sodium mysqli redis soap") {
		if !slices.Contains(webPHPExtensions, e) {
			t.Errorf("extension %s is not checked", e)
		}
	}
}

func TestWebApacheSite(t *testing.T) {
	files := webRendered(t, Params{ClusterCIDR: "10.20.0.0/24", Hardening: "baseline"})
	site := files["/etc/apache2/sites-available/moodle.conf"]
	mustContain(t, "moodle.conf", site,
		"<VirtualHost *:80>",
		"DocumentRoot /var/www/moodle/current\n",
		"AcceptPathInfo On\n",
		`SetHandler "proxy:unix:/run/php/php8.2-fpm-moodle.sock|fcgi://localhost"`,
		"ProxyTimeout 300\n",
		"RemoteIPHeader X-Forwarded-For\n",
		"RemoteIPTrustedProxy 10.20.0.0/24\n",
		`RewriteRule "(^|/)\.(?!well-known/)" - [F]`,
		"Alias /mohd-health /var/www/mohd-health/health.php\n",
		"IncludeOptional /etc/apache2/moodle.d/*.conf\n",
	)
	// PHP files go to PHP-FPM only inside <FilesMatch \.php$>.
	if !regexp.MustCompile(`<FilesMatch "\\\.php\$">\s*<If "-f %\{REQUEST_FILENAME\}">\s*SetHandler "proxy:unix:`).MatchString(site) {
		t.Errorf("moodle.conf: PHP is not handed to PHP-FPM in a FilesMatch \\.php$ block:\n%s", site)
	}
	// Trust in X-Forwarded-For: exactly the cluster network, nothing else.
	if n := strings.Count(site, "RemoteIPTrustedProxy"); n != 1 {
		t.Errorf("moodle.conf has %d RemoteIPTrustedProxy lines, want 1", n)
	}
	for _, bad := range []string{"RemoteIPInternalProxy", "RemoteIPTrustedProxyList"} {
		if strings.Contains(site, bad) {
			t.Errorf("moodle.conf contains %q", bad)
		}
	}
	// The health endpoint and PHP-FPM's status pages: loopback and the cluster only.
	for _, block := range []string{"<Directory /var/www/mohd-health>", `<LocationMatch "^/fpm-(status|ping)$">`} {
		i := strings.Index(site, block)
		if i < 0 {
			t.Fatalf("moodle.conf lacks %s", block)
		}
		body, _, _ := strings.Cut(site[i:], "</")
		mustContain(t, block, body, "Require local\n", "Require ip 10.20.0.0/24\n")
		if strings.Contains(body, "Require all granted") {
			t.Errorf("%s is open to everyone", block)
		}
	}

	conf := files["/etc/apache2/conf-available/mohd.conf"]
	mustContain(t, "mohd.conf", conf,
		"ServerTokens Prod\n", "ServerSignature Off\n", "TraceEnable Off\n", "Timeout 300\n",
		`Header always set X-Content-Type-Options "nosniff"`,
		`Header always set Referrer-Policy "strict-origin-when-cross-origin"`,
		"MaxRequestWorkers 400\n",
	)

	// An IPv6 cluster network renders as is.
	v6 := webRendered(t, Params{ClusterCIDR: "fd00:20::/64", Hardening: "baseline"})["/etc/apache2/sites-available/moodle.conf"]
	mustContain(t, "moodle.conf (IPv6)", v6, "RemoteIPTrustedProxy fd00:20::/64\n", "Require ip fd00:20::/64\n")
}

func TestWebPHPConfig(t *testing.T) {
	files := webRendered(t, Params{ClusterCIDR: "10.20.0.0/24", Hardening: "baseline"})
	fpmIni, cliIni := files["/etc/php/8.2/fpm/conf.d/90-mohd.ini"], files["/etc/php/8.2/cli/conf.d/90-mohd.ini"]
	if fpmIni == "" || fpmIni != cliIni {
		t.Fatalf("the FPM and CLI ini files differ or are missing")
	}
	ini := map[string]string{}
	for _, line := range strings.Split(fpmIni, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, ";") {
			ini[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	for k, want := range map[string]string{"expose_php": "Off", "opcache.enable": "1", "opcache.revalidate_freq": "60",
		"opcache.use_cwd": "1", "opcache.validate_timestamps": "1", "opcache.save_comments": "1",
		"opcache.enable_file_override": "0"} {
		if ini[k] != want {
			t.Errorf("90-mohd.ini: %s = %q, want %q", k, ini[k], want)
		}
	}
	for k, min := range map[string]int{"opcache.memory_consumption": 128, "opcache.max_accelerated_files": 10000, "max_input_vars": 5000} {
		if n, err := strconv.Atoi(ini[k]); err != nil || n < min {
			t.Errorf("90-mohd.ini: %s = %q, want at least %d", k, ini[k], min)
		}
	}

	pool := files["/etc/php/8.2/fpm/pool.d/50-moodle.conf"]
	mustContain(t, "50-moodle.conf", pool,
		"[moodle]\n", "listen = /run/php/php8.2-fpm-moodle.sock\n", "listen.mode = 0660\n", "pm = dynamic\n",
		"pm.status_path = /fpm-status\n", "ping.path = /fpm-ping\n", "request_terminate_timeout = 300\n",
	)
	// The boot-time size file sorts after the pool file, so its [moodle] section wins.
	if filepath.Base(webFPMSizeFile) <= "50-moodle.conf" {
		t.Errorf("%s must sort after 50-moodle.conf", webFPMSizeFile)
	}

	unit := files["/etc/systemd/system/mohd-php-fpm-size.service"]
	mustContain(t, "mohd-php-fpm-size.service", unit, "Before=php8.2-fpm.service\n", "Type=oneshot\n",
		"WantedBy=multi-user.target\n", "ExecStart=/usr/local/lib/mohd/php-fpm-size\n", "ReadWritePaths=/etc/php/8.2/fpm/pool.d\n")
	mustContain(t, "mohd-php-fpm-metrics.timer", files["/etc/systemd/system/mohd-php-fpm-metrics.timer"], "OnUnitActiveSec=15s\n")

	check := files[webPHPCheck]
	for _, e := range webPHPExtensions {
		mustContain(t, "php-check.php", check, "'"+e+"'")
	}
}

func TestWebHealthScript(t *testing.T) {
	health := webRendered(t, Params{ClusterCIDR: "10.20.0.0/24", Hardening: "baseline"})["/var/www/mohd-health/health.php"]
	mustContain(t, "health.php", health,
		"const MOHD_HEALTH_INI = '/etc/mohd/health.ini';",
		"'OK (no database configured)'",
		"MYSQLI_OPT_CONNECT_TIMEOUT, 2",
		"SELECT 1",
		"mohd_health_reply(503,",
	)
	// It must never load Moodle (a session per check) nor start a PHP session.
	code := regexp.MustCompile(`(?m)^\s*//.*$`).ReplaceAllString(health, "")
	for _, bad := range []string{"require", "include", "config.php", "session_start", "setcookie"} {
		if strings.Contains(code, bad) {
			t.Errorf("health.php code contains %q", bad)
		}
	}
}

// TestWebFPMSizeFormula runs the rendered sizing script with given memory sizes.
func TestWebFPMSizeFormula(t *testing.T) {
	script := filepath.Join(t.TempDir(), "php-fpm-size")
	if err := os.WriteFile(script, []byte(webRendered(t, Params{ClusterCIDR: "10.0.0.0/8", Hardening: "baseline"})[webFPMSizeScript]), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(env []string, args ...string) (string, error) {
		cmd := exec.Command("sh", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	const mib = 1 << 20
	for _, c := range []struct {
		memory int64
		env    []string
		want   int
	}{
		{256 * mib, nil, 4},         // less than the reserve: the floor
		{1024 * mib, nil, 6},        // (1024-512)/80
		{2048 * mib, nil, 19},       // (2048-512)/80
		{3072 * mib, nil, 32},       // (3072-512)/80
		{8192 * mib, nil, 96},       // (8192-512)/80
		{64 * 1024 * mib, nil, 200}, // the ceiling
		{4096 * mib, []string{"CHILD_MB=128", "RESERVE_MB=1024"}, 24},
		{4096 * mib, []string{"MAX_CHILDREN=10"}, 10},
	} {
		t.Run(fmt.Sprintf("%dMiB%v", c.memory/mib, c.env), func(t *testing.T) {
			out, err := run(c.env, "--memory", strconv.FormatInt(c.memory, 10), "--stdout")
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			v := map[string]int{}
			for _, m := range regexp.MustCompile(`(?m)^pm\.(\w+) = (\d+)$`).FindAllStringSubmatch(out, -1) {
				v[m[1]], _ = strconv.Atoi(m[2])
			}
			if v["max_children"] != c.want {
				t.Fatalf("max_children = %d, want %d:\n%s", v["max_children"], c.want, out)
			}
			// What PHP-FPM demands, or it refuses to start.
			if n, lo, hi, st := v["max_children"], v["min_spare_servers"], v["max_spare_servers"], v["start_servers"]; lo < 1 || lo > hi || hi > n || st < lo || st > hi {
				t.Fatalf("spare servers out of order (min %d, start %d, max %d, children %d):\n%s", lo, st, hi, n, out)
			}
			if !strings.HasPrefix(out, "; Written by mohd-php-fpm-size") || !strings.Contains(out, "\n[moodle]\n") {
				t.Fatalf("not a pool include:\n%s", out)
			}
		})
	}
	if out, err := run([]string{"CHILD_MB=abc"}, "--memory", "1", "--stdout"); err == nil {
		t.Fatalf("a bad CHILD_MB was accepted: %s", out)
	}
}

// TestWebScriptsParse checks the shell syntax of the rendered scripts, the setup steps and the checks.
func TestWebScriptsParse(t *testing.T) {
	files := webRendered(t, Params{ClusterCIDR: "10.20.0.0/24", Hardening: "baseline"})
	scripts := map[string]string{
		webFPMSizeScript: files[webFPMSizeScript],
		webMetricsScript: files[webMetricsScript],
	}
	r, err := Get("web")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(slices.Clone(r.Setup), r.Checks...) {
		scripts[s.Desc] = s.Script
	}
	for name, s := range scripts {
		cmd := exec.Command("sh", "-n")
		cmd.Stdin = strings.NewReader(s)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
	// The metrics land in the node exporter's textfile directory; the temporary file does not end in
	// .prom, so the collector never reads a half-written file.
	mustContain(t, "php-fpm-metrics", scripts[webMetricsScript],
		"out=/var/lib/prometheus/node-exporter/php_fpm.prom\n", `tmp=$(mktemp "$out.XXXXXX")`, `mv -f "$tmp" "$out"`,
		"QUERY_STRING=json", "cgi-fcgi -bind -connect /run/php/php8.2-fpm-moodle.sock")
	// Setup: modules on and off as the architecture says.
	apache := r.Setup[len(r.Setup)-1].Script
	mustContain(t, "Apache setup", apache, "mpm_prefork mpm_worker", "mpm_event proxy proxy_fcgi setenvif remoteip headers rewrite status",
		"a2ensite -q moodle", "a2dissite -q 000-default")
}
