package roles

import (
	"fmt"
	"strings"
)

// The web role's paths, shared by its templates, setup steps and checks.
const (
	webFPMSocket     = "/run/php/php8.2-fpm-moodle.sock"
	webFPMPoolDir    = "/etc/php/8.2/fpm/pool.d"
	webFPMSizeFile   = webFPMPoolDir + "/60-moodle-size.conf"
	webFPMSizeScript = "/usr/local/lib/mohd/php-fpm-size"
	webMetricsScript = "/usr/local/lib/mohd/php-fpm-metrics"
	webMetricsDir    = "/var/lib/prometheus/node-exporter"
	webPHPCheck      = "/usr/local/lib/mohd/php-check.php"
	webMoodleRoot    = "/var/www/moodle"
	webMoodleData    = "/var/www/moodledata"
	webLocalCache    = "/var/cache/moodle"
	webHealthDir     = "/var/www/mohd-health"
	webHealthIni     = "/etc/mohd/health.ini"
	webSiteDir       = "/etc/apache2/moodle.d"
)

// webPHPExtensions are the PHP extensions Moodle 4.5 requires, plus the ones this architecture uses
// (MariaDB, Redis), as PHP names them (php -m).
var webPHPExtensions = []string{
	"iconv", "mbstring", "curl", "openssl", "ctype", "zip", "zlib", "gd", "simplexml", "spl", "pcre", "dom",
	"xml", "xmlreader", "intl", "json", "hash", "fileinfo", "sodium", "mysqli", "redis", "soap", "Zend OPcache",
}

// Apache modules the site needs, and those that must be off: another MPM, or PHP inside Apache.
var (
	webApacheModsOn  = []string{"mpm_event", "proxy", "proxy_fcgi", "setenvif", "remoteip", "headers", "rewrite", "status"}
	webApacheModsOff = []string{"mpm_prefork", "mpm_worker"}
	// Debian's security.conf sets ServerTokens OS after ours; php8.2-fpm's points at the removed www pool;
	// no CGI is served.
	webApacheConfsOff = []string{"security", "php8.2-fpm", "serve-cgi-bin"}
)

// webData is what the web role's templates render.
type webData struct {
	Params
	FPMSocket, FPMPoolDir, FPMSizeFile, FPMSizeScript string
	MetricsScript, MetricsDir, MetricsFile            string
	MoodleRoot, HealthDir, HealthIni, SiteDir         string
	Extensions                                        []string
}

func webFiles(p Params) ([]File, error) {
	d := webData{
		Params:    p,
		FPMSocket: webFPMSocket, FPMPoolDir: webFPMPoolDir, FPMSizeFile: webFPMSizeFile, FPMSizeScript: webFPMSizeScript,
		MetricsScript: webMetricsScript, MetricsDir: webMetricsDir, MetricsFile: webMetricsDir + "/php_fpm.prom",
		MoodleRoot: webMoodleRoot, HealthDir: webHealthDir, HealthIni: webHealthIni, SiteDir: webSiteDir,
		Extensions: webPHPExtensions,
	}
	fpm := []string{"php8.2-fpm"}
	return renderAll(d,
		// Apache: server-wide settings, the Moodle site, and the site's include directory (the provider
		// writes ServerName and the like there). Setup enables them; Apache reloads gracefully on a change.
		fileSpec{Path: "/etc/apache2/conf-available/mohd.conf", Template: "web/apache-mohd.conf", Reload: []string{"apache2"}},
		fileSpec{Path: "/etc/apache2/sites-available/moodle.conf", Template: "web/apache-moodle-site.conf", Reload: []string{"apache2"}},
		fileSpec{Path: webSiteDir + "/00-placeholder.conf", Template: "web/apache-site-placeholder.conf"},

		// PHP: one ini for FPM and the CLI (the site's own settings go into 95-mohd-site.ini), the Moodle
		// pool, and its boot-time sizing.
		fileSpec{Path: "/etc/php/8.2/fpm/conf.d/90-mohd.ini", Template: "web/php-mohd.ini", Reload: fpm},
		fileSpec{Path: "/etc/php/8.2/cli/conf.d/90-mohd.ini", Template: "web/php-mohd.ini"},
		fileSpec{Path: webFPMPoolDir + "/00-mohd-global.conf", Template: "web/php-fpm-global.conf", Restart: fpm},
		fileSpec{Path: webFPMPoolDir + "/50-moodle.conf", Template: "web/php-fpm-moodle.conf", Reload: fpm},
		fileSpec{Path: webFPMSizeScript, Template: "web/php-fpm-size.sh", Mode: 0o755},
		fileSpec{Path: "/etc/systemd/system/mohd-php-fpm-size.service", Template: "web/mohd-php-fpm-size.service",
			Restart: []string{"mohd-php-fpm-size"}},
		fileSpec{Path: "/etc/systemd/system/php8.2-fpm.service.d/50-mohd.conf", Template: "web/php-fpm-dropin.conf", Restart: fpm},

		// PHP-FPM metrics through the node exporter's textfile collector.
		fileSpec{Path: webMetricsScript, Template: "web/php-fpm-metrics.sh", Mode: 0o755},
		// A changed unit needs a daemon-reload, which only a restart or reload triggers: restart the timer.
		fileSpec{Path: "/etc/systemd/system/mohd-php-fpm-metrics.service", Template: "web/mohd-php-fpm-metrics.service",
			Restart: []string{"mohd-php-fpm-metrics.timer"}},
		fileSpec{Path: "/etc/systemd/system/mohd-php-fpm-metrics.timer", Template: "web/mohd-php-fpm-metrics.timer",
			Restart: []string{"mohd-php-fpm-metrics.timer"}},

		// The health endpoint and the checks' PHP probe. Code is root's: www-data only reads it.
		fileSpec{Path: webHealthDir + "/health.php", Template: "web/health.php"},
		fileSpec{Path: webPHPCheck, Template: "web/php-check.php"},
	)
}

// webDirsStep creates the Moodle tree. Deploying Moodle is not the role's business: "current" points at an
// empty placeholder release until a deployment switches it, and is never touched once it exists.
var webDirsStep = Step{Desc: "Moodle directories", Script: fmt.Sprintf(`changed=
ensure_dir() { # path owner group mode
	if [ ! -d "$1" ]; then
		mkdir -p "$1"; chown "$2:$3" "$1"; chmod "$4" "$1"; changed=1
	elif [ "$(stat -c '%%U:%%G %%a' "$1")" != "$2:$3 $4" ]; then
		chown "$2:$3" "$1"; chmod "$4" "$1"; changed=1
	fi
}
# Code: root's, read-only for Apache and PHP.
ensure_dir %[1]s root root 755
ensure_dir %[1]s/releases root root 755
ensure_dir %[1]s/releases/placeholder root root 755
if [ ! -e %[1]s/current ] && [ ! -L %[1]s/current ]; then
	ln -s releases/placeholder %[1]s/current; changed=1
fi
# moodledata's mount point (NFS, mounted by the provider). Not writable while nothing is mounted on it, so
# an unmounted share makes Moodle fail loudly instead of writing one node's files to its local disk.
ensure_dir %[2]s root root 755
# $CFG->localcachedir: local disk on each node, never on NFS.
ensure_dir %[3]s www-data www-data 750
[ -z "$changed" ] || echo changed`, webMoodleRoot, webMoodleData, webLocalCache)}

// webFPMPoolStep removes Debian's "www" pool: the Moodle pool is the only one.
var webFPMPoolStep = Step{Desc: "PHP-FPM: only the Moodle pool", Script: `if [ -e /etc/php/8.2/fpm/pool.d/www.conf ]; then
	rm -f /etc/php/8.2/fpm/pool.d/www.conf
	if systemctl is-active --quiet php8.2-fpm; then systemctl reload php8.2-fpm; fi
	echo changed
fi`}

// webApacheStep enables the modules, configuration and site, and disables what must be off. Each a2* runs
// only when the state differs; Apache restarts (an MPM change needs more than a graceful reload) only then.
var webApacheStep = Step{Desc: "Apache modules, configuration and site", Script: fmt.Sprintf(`changed=
cd /etc/apache2
for m in %[1]s $(ls mods-enabled | sed -n 's/^\(php[0-9.]*\)\.load$/\1/p'); do
	if [ -e "mods-enabled/$m.load" ]; then a2dismod -q -f "$m" >/dev/null; changed=1; fi
done
for m in %[2]s; do
	if [ ! -e "mods-enabled/$m.load" ]; then a2enmod -q "$m" >/dev/null; changed=1; fi
done
for c in %[3]s; do
	if [ -e "conf-enabled/$c.conf" ]; then a2disconf -q "$c" >/dev/null; changed=1; fi
done
if [ ! -e conf-enabled/mohd.conf ]; then a2enconf -q mohd >/dev/null; changed=1; fi
if [ -e sites-enabled/000-default.conf ]; then a2dissite -q 000-default >/dev/null; changed=1; fi
if [ ! -e sites-enabled/moodle.conf ]; then a2ensite -q moodle >/dev/null; changed=1; fi
if [ -n "$changed" ]; then
	apachectl configtest
	if systemctl is-active --quiet apache2; then systemctl restart apache2; fi
	echo changed
fi`, strings.Join(webApacheModsOff, " "), strings.Join(webApacheModsOn, " "), strings.Join(webApacheConfsOff, " "))}

// webChecks prove the role: configuration valid, the right MPM, every extension and OPcache setting in the
// CLI and in the running PHP-FPM, the site, the health endpoint and the exporters answering.
func webChecks() []Step {
	cgi := fmt.Sprintf("SCRIPT_NAME=/check SCRIPT_FILENAME=%s REQUEST_METHOD=GET cgi-fcgi -bind -connect %s", webPHPCheck, webFPMSocket)
	return []Step{
		{Desc: "Apache's configuration is valid", Script: "apachectl -t"},
		{Desc: "Apache runs the event MPM and no PHP module", Script: `mods=$(apachectl -M 2>/dev/null)
echo "$mods" | grep -q '^ *mpm_event_module' || { echo "mpm_event is not loaded" >&2; exit 1; }
bad=$(echo "$mods" | grep -E '^ *(mpm_prefork|mpm_worker|php[0-9._]*)_module' || true)
[ -z "$bad" ] || { echo "loaded but forbidden: $bad" >&2; exit 1; }`},
		{Desc: "PHP-FPM's configuration is valid and reloads let requests finish", Script: `php-fpm8.2 -t
php-fpm8.2 -tt 2>&1 | grep -q 'process_control_timeout = 30s' || { echo "process_control_timeout is not 30s: a reload would cut requests" >&2; exit 1; }`},
		{Desc: "the CLI and PHP-FPM have every extension Moodle needs", Script: fmt.Sprintf(`fail=
for sapi in php8.2 php-fpm8.2; do
	mods=$($sapi -m)
	for e in %s; do
		echo "$mods" | grep -qix "$e" || { echo "$sapi: extension $e is missing" >&2; fail=1; }
	done
done
[ -z "$fail" ]`, quoteAll(webPHPExtensions))},
		{Desc: "the CLI has Moodle's OPcache settings", Script: fmt.Sprintf(`info=$(php8.2 -i)
for kv in opcache.memory_consumption=128 opcache.max_accelerated_files=20000 opcache.revalidate_freq=60 \
	opcache.use_cwd=On opcache.validate_timestamps=On opcache.save_comments=On opcache.enable_file_override=Off \
	expose_php=Off; do
	echo "$info" | grep -qx "${kv%%=*} => ${kv#*=} => ${kv#*=}" || { echo "CLI: ${kv%%=*} is not ${kv#*=}" >&2; exit 1; }
done
out=$(php8.2 %s)
[ "$out" = OK ] || { echo "CLI: $out" >&2; exit 1; }`, webPHPCheck)},
		{Desc: "the running PHP-FPM pool has Moodle's extensions and OPcache settings", Script: fmt.Sprintf(`out=$(%s | sed '1,/^\r*$/d')
[ "$out" = OK ] || { echo "PHP-FPM: $out" >&2; exit 1; }`, cgi)},
		{Desc: "the Moodle pool is sized for this machine", Script: fmt.Sprintf(`n=$(sed -n 's/^pm\.max_children = \([0-9]*\)$/\1/p' %s)
[ -n "$n" ] && [ "$n" -ge 4 ] && [ "$n" -le 200 ] || { echo "no pm.max_children in %[1]s" >&2; exit 1; }
out=$(SCRIPT_NAME=/fpm-status SCRIPT_FILENAME=/fpm-status QUERY_STRING=json REQUEST_METHOD=GET cgi-fcgi -bind -connect %s)
echo "$out" | grep -q '"process manager":"dynamic"' || { echo "PHP-FPM status: $out" >&2; exit 1; }`, webFPMSizeFile, webFPMSocket)},
		{Desc: "Apache listens on port 80", Script: `ss -Hltn 'sport = :80' | grep -q LISTEN`},
		{Desc: "the health endpoint answers through PHP-FPM", Script: `out=$(curl -fsS --max-time 10 -H 'Host: moodle.invalid' http://127.0.0.1/mohd-health)
case $out in OK*) ;; *) echo "/mohd-health answered: $out" >&2; exit 1 ;; esac`},
		{Desc: "the Apache exporter serves metrics", Script: `curl -fsS --max-time 10 http://127.0.0.1:9117/metrics | grep -q '^apache_up 1'`},
	}
}

func init() {
	register(&Role{
		Name:    "web",
		Summary: "Apache (event MPM) and PHP-FPM serving Moodle, with its health endpoint and metrics",
		Packages: []string{
			"apache2", "php8.2-fpm", "php8.2-cli", "php8.2-mysql", "php8.2-curl", "php8.2-gd", "php8.2-intl",
			"php8.2-mbstring", "php8.2-soap", "php8.2-xml", "php8.2-zip", "php8.2-opcache", "php8.2-redis",
			"libfcgi-bin", "prometheus-apache-exporter", "nfs-common", "libnfs-utils", "git", "unzip",
		},
		// PHP inside Apache would bring the prefork MPM back.
		Forbidden:   []string{"libapache2-mod-php8.2", "libapache2-mod-php"},
		KeyPackages: []string{"apache2", "php8.2-fpm", "php8.2-redis", "prometheus-apache-exporter"},
		Ports: []Port{
			// The front ends reach the web nodes over the cluster network; no one else does.
			{Port: 80, What: "Moodle over HTTP (from the HAProxy front ends)"},
			{Port: 9117, What: "Apache exporter"},
		},
		Files: webFiles,
		Setup: []Step{webDirsStep, webFPMPoolStep, webApacheStep},
		// The sizing runs before PHP-FPM (re)starts, so a first apply starts the pool at its size.
		Services: []string{"mohd-php-fpm-size", "php8.2-fpm", "apache2", "prometheus-apache-exporter", "mohd-php-fpm-metrics.timer"},
		Checks:   webChecks(),
	})
}
