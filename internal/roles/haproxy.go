package roles

import (
	"strings"
)

// haproxyConfDir is the directory HAProxy reads, every *.cfg in lexical order: MOHD's files and the site's.
const haproxyConfDir = "/etc/haproxy/conf.d"

// haproxySiteFile is the site's file (servers of backend moodle, TLS switch): the image gets a copy with no
// server, created only when missing, so the role never overwrites what the provider wrote.
const haproxySiteFile = haproxyConfDir + "/10-site.cfg"

func init() {
	register(&Role{
		Name:    "haproxy",
		Summary: "HAProxy front end for Moodle (master-worker, seamless reloads, Prometheus metrics), keepalived ready",
		// socat talks to HAProxy's runtime API (admin socket) and master CLI: checks, and the provider later.
		Packages:    []string{"haproxy", "keepalived", "socat"},
		KeyPackages: []string{"haproxy", "keepalived"},
		Ports: []Port{
			{Port: 80, What: "HTTP (Moodle)", Public: true},
			{Port: 443, What: "HTTPS (Moodle, once the site has a certificate)", Public: true},
			{Port: 8405, What: "HAProxy Prometheus metrics and statistics page"},
		},
		Files: func(p Params) ([]File, error) {
			cfg := func(name string) fileSpec {
				return fileSpec{Path: haproxyConfDir + "/" + name, Template: "haproxy/" + name, Mode: 0o640,
					Reload: []string{"haproxy"}}
			}
			return renderAll(p,
				cfg("00-mohd-global.cfg"),
				cfg("20-mohd-moodle.cfg"),
				cfg("30-mohd-metrics.cfg"),
				// CONFIG is read when the master starts: a change needs a restart, not a reload.
				fileSpec{Path: "/etc/systemd/system/haproxy.service.d/50-mohd.conf", Template: "haproxy/haproxy.service.conf",
					Restart: []string{"haproxy"}},
				fileSpec{Path: "/etc/systemd/system/keepalived.service.d/50-mohd.conf", Template: "haproxy/keepalived.service.conf",
					Restart: []string{"keepalived"}},
			)
		},
		Setup: []Step{
			{Desc: "certificate directory /etc/haproxy/certs (root, 0700)", Script: `d=/etc/haproxy/certs
if [ ! -d "$d" ]; then
	install -d -m 0700 -o root -g root "$d"
	echo changed
elif [ "$(stat -c '%a %u:%g' "$d")" != "700 0:0" ]; then
	chown root:root "$d"
	chmod 0700 "$d"
	echo changed
fi`},
			{Desc: "the site's file " + haproxySiteFile + " (created only when missing)", Script: haproxySiteSeedScript()},
		},
		// keepalived is enabled but starts only once the site has written its configuration (its unit's
		// ConditionFileNotEmpty): the common services check accepts a unit whose condition does not hold.
		Services: []string{"haproxy", "keepalived"},
		Checks: []Step{
			{Desc: "the HAProxy configuration is valid", Script: `haproxy -c -q -f ` + haproxyConfDir},
			{Desc: "HAProxy runs in master-worker mode with the configuration directory", Script: `pid=$(cat /run/haproxy.pid)
cmd=$(tr '\0' ' ' < /proc/"$pid"/cmdline)
case "$cmd" in *" -f ` + haproxyConfDir + ` "*) ;; *) echo "the master does not read ` + haproxyConfDir + `: $cmd" >&2; exit 1 ;; esac
procs=$(echo 'show proc' | socat -t 5 stdio unix-connect:/run/haproxy-master.sock)
echo "$procs" | grep -Eq '^[0-9]+[[:space:]]+worker[[:space:]]' || { echo "the master CLI lists no worker: $procs" >&2; exit 1; }`},
			{Desc: "the runtime API answers on /run/haproxy/admin.sock", Script: `info=$(echo 'show info' | socat -t 5 stdio unix-connect:/run/haproxy/admin.sock)
echo "$info" | grep -q '^Name: HAProxy$' || { echo "show info: $info" >&2; exit 1; }`},
			{Desc: "HAProxy serves Prometheus metrics on :8405", Script: `curl -fsS --max-time 10 http://127.0.0.1:8405/metrics | grep -q '^haproxy_process_'`},
			// 503 until the site adds web servers; any HTTP answer shows the front end is up.
			{Desc: "the Moodle front end answers on :80", Script: `code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1/ || true)
case "$code" in [1-5][0-9][0-9]) ;; *) echo "no HTTP answer on :80 (curl: $code)" >&2; exit 1 ;; esac`},
			{Desc: "the certificate directory is private", Script: `test "$(stat -c '%a %u' /etc/haproxy/certs)" = "700 0"`},
			{Desc: "keepalived is enabled and waits for the site's configuration", Script: `systemctl is-enabled --quiet keepalived || { echo "keepalived is not enabled" >&2; exit 1; }
if [ -s /etc/keepalived/keepalived.conf ]; then
	systemctl is-active --quiet keepalived || { echo "keepalived is configured but $(systemctl is-active keepalived)" >&2; exit 1; }
else
	! systemctl is-active --quiet keepalived || { echo "keepalived runs without a configuration" >&2; exit 1; }
	test "$(systemctl show -p ConditionResult --value keepalived)" = no || { echo "keepalived's start condition did not skip it" >&2; exit 1; }
fi`},
		},
	})
}

// haproxySiteSeedScript writes the image's copy of the site's file when the host has none.
func haproxySiteSeedScript() string {
	seed, err := filesFS.ReadFile("files/haproxy/10-site.cfg")
	if err != nil {
		panic("roles: haproxy: " + err.Error()) // embedded: cannot happen
	}
	const eof = "MOHD_SITE_CFG_EOF"
	if strings.Contains(string(seed), eof) {
		panic("roles: haproxy: 10-site.cfg contains " + eof)
	}
	return `f=` + haproxySiteFile + `
[ -e "$f" ] && exit 0
umask 027
cat > "$f.tmp" <<'` + eof + `'
` + strings.TrimRight(string(seed), "\n") + `
` + eof + `
mv "$f.tmp" "$f"
# Missing on a running front end (removed by hand): load it now. On the first apply HAProxy still runs
# Debian's configuration and is restarted later anyway.
pid=$(cat /run/haproxy.pid 2>/dev/null || true)
if [ -n "$pid" ] && systemctl is-active --quiet haproxy && tr '\0' ' ' < /proc/"$pid"/cmdline | grep -q -- '-f ` + haproxyConfDir + ` '; then
	systemctl reload haproxy
fi
echo changed`
}
