#!/bin/sh
# Managed by MOHD (role web): PHP-FPM metrics for the node exporter's textfile collector (Debian has no
# PHP-FPM exporter). mohd-php-fpm-metrics.timer runs it every 15 s: it asks the Moodle pool for its status
# page (JSON) through the pool's socket (cgi-fcgi, libfcgi-bin) and writes {{.MetricsFile}}
# atomically. When the pool does not answer, php_fpm_up is 0 and the other metrics are absent.
set -u

out={{.MetricsFile}}
status=$(
	SCRIPT_NAME=/fpm-status SCRIPT_FILENAME=/fpm-status REQUEST_URI=/fpm-status QUERY_STRING=json \
		REQUEST_METHOD=GET timeout 5 cgi-fcgi -bind -connect {{.FPMSocket}} 2>/dev/null
) || status=

# The FastCGI answer is headers, a blank line, then the JSON document; PHP (without php.ini) turns it into
# metrics.
metrics=$(printf '%s\n' "$status" | sed '1,/^\r*$/d' | php8.2 -n -r '
$s = json_decode(stream_get_contents(STDIN), true);
if (!is_array($s) || !isset($s["pool"], $s["accepted conn"])) {
	exit(1);
}
$defs = [
	["php_fpm_start_time_seconds", "gauge", "start time", "When the pool started, in seconds since the epoch."],
	["php_fpm_accepted_connections_total", "counter", "accepted conn", "Requests the pool accepted."],
	["php_fpm_listen_queue", "gauge", "listen queue", "Requests waiting for a free worker."],
	["php_fpm_max_listen_queue", "gauge", "max listen queue", "Most requests that ever waited for a free worker."],
	["php_fpm_listen_queue_length", "gauge", "listen queue len", "Size of the socket queue of waiting requests."],
	["php_fpm_idle_processes", "gauge", "idle processes", "Idle workers."],
	["php_fpm_active_processes", "gauge", "active processes", "Workers serving a request."],
	["php_fpm_total_processes", "gauge", "total processes", "Idle and active workers."],
	["php_fpm_max_active_processes", "gauge", "max active processes", "Most workers ever active at once."],
	["php_fpm_max_children_reached_total", "counter", "max children reached", "Times the pool hit pm.max_children (requests then queue)."],
	["php_fpm_slow_requests_total", "counter", "slow requests", "Requests that ran longer than request_slowlog_timeout."],
];
foreach ($defs as [$name, $type, $key, $help]) {
	if (!isset($s[$key]) || !is_numeric($s[$key])) {
		continue;
	}
	printf("# HELP %s %s\n# TYPE %s %s\n%s{pool=\"moodle\"} %d\n", $name, $help, $name, $type, $name, $s[$key]);
}
') || metrics=

# The configured ceiling, from the file mohd-php-fpm-size wrote (for "how close to max_children are we").
max_children=$(sed -n 's/^pm\.max_children *= *\([0-9][0-9]*\)$/\1/p' {{.FPMSizeFile}} 2>/dev/null | tail -n 1)

tmp=$(mktemp "$out.XXXXXX") || exit 1
trap 'rm -f "$tmp"' EXIT
{
	echo "# HELP php_fpm_up Whether the Moodle PHP-FPM pool answered its status page."
	echo "# TYPE php_fpm_up gauge"
	if [ -n "$metrics" ]; then
		echo 'php_fpm_up{pool="moodle"} 1'
		printf '%s\n' "$metrics"
	else
		echo 'php_fpm_up{pool="moodle"} 0'
	fi
	if [ -n "$max_children" ]; then
		echo "# HELP php_fpm_max_children The pool's pm.max_children, as sized at boot."
		echo "# TYPE php_fpm_max_children gauge"
		echo "php_fpm_max_children{pool=\"moodle\"} $max_children"
	fi
} >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
