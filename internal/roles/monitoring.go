package roles

import (
	"io/fs"
	"path"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// The monitoring role: Prometheus (2.42) with MOHD's alert rules and Alertmanager (0.25) routing to
// Mattermost, both from Debian.
//
// Grafana is not installed: it is not in Debian, and Grafana Labs' APT repository is unreachable from the
// machines that build MOHD's images (MOHD adds no third-party repository). The role ships Grafana dashboards
// as JSON files in /usr/share/mohd/grafana/dashboards for an existing Grafana instead, says so in the build
// output (a setup step) and in /usr/share/mohd/grafana/README, and checks that the dashboards are valid.
//
// Site settings come later from the provider, each in its own place:
//   - scrape targets: one file_sd file per job in /etc/prometheus/targets/ (node.yml, haproxy.yml, apache.yml,
//     mysqld.yml, redis.yml, nfs.yml), picked up by Prometheus without a reload;
//   - site alert rules: other files in /etc/prometheus/rules/;
//   - the Mattermost incoming-webhook URL (a secret): /etc/prometheus/alertmanager-mattermost-url, mode 0640
//     root:prometheus, read by Alertmanager at each notification (no reload). The image has no such file and
//     its configuration loads all the same; notifications fail, and say why in the journal, until it exists.
const (
	grafanaDashboards   = "/usr/share/mohd/grafana/dashboards"
	mattermostURLFile   = "/etc/prometheus/alertmanager-mattermost-url"
	promRulesTestFile   = "/usr/share/mohd/prometheus/mohd-rules.test.yml"
	grafanaNotInstalled = "Grafana is not installed on this platform (not packaged by Debian 12; its APT repository is unreachable from the build): " +
		"dashboards are shipped as JSON for an existing Grafana in " + grafanaDashboards
)

func init() {
	register(&Role{
		Name:    "monitoring",
		Summary: "Prometheus and Alertmanager (to Mattermost) with MOHD's alert rules; Grafana dashboards as JSON files (Grafana itself is not installed)",
		// jq reads the JSON of the checks (Prometheus' API, the dashboards): python3-minimal has no json module.
		Packages:    []string{"prometheus", "prometheus-alertmanager", "jq"},
		KeyPackages: []string{"prometheus", "prometheus-alertmanager"},
		Ports: []Port{
			{Port: 9090, What: "Prometheus"},
			{Port: 9093, What: "Alertmanager"},
		},
		Files:    monitoringFiles,
		Services: []string{"prometheus", "prometheus-alertmanager"},
		Setup: []Step{
			// Changes nothing: its description is what the Packer UI and the provider's log show.
			{Desc: grafanaNotInstalled, Script: `n=$(ls ` + grafanaDashboards + `/*.json | wc -l)
echo "grafana: not installed; $n dashboards in ` + grafanaDashboards + `" >&2`},
		},
		Checks: monitoringChecks,
	})
}

// monitoringFiles are copied as they are, not rendered: Prometheus' rule annotations, Alertmanager's
// notification templates and Grafana's legends use {{ }} themselves, and nothing in them depends on Params.
func monitoringFiles(Params) ([]File, error) {
	specs := []fileSpec{
		{Path: "/etc/prometheus/prometheus.yml", Template: "monitoring/prometheus.yml", Reload: []string{"prometheus"}},
		{Path: "/etc/prometheus/rules/mohd.yml", Template: "monitoring/rules/mohd.yml", Reload: []string{"prometheus"}},
		{Path: "/etc/default/prometheus", Template: "monitoring/prometheus.default", Restart: []string{"prometheus"}},
		{Path: "/etc/prometheus/targets/README", Template: "monitoring/targets-README"},
		{Path: "/etc/prometheus/alertmanager.yml", Template: "monitoring/alertmanager.yml", Reload: []string{"prometheus-alertmanager"}},
		{Path: "/etc/default/prometheus-alertmanager", Template: "monitoring/alertmanager.default", Restart: []string{"prometheus-alertmanager"}},
		{Path: "/etc/systemd/system/prometheus-alertmanager.service.d/50-mohd-hardening.conf", Template: "monitoring/alertmanager-hardening.conf",
			Restart: []string{"prometheus-alertmanager"}},
		{Path: promRulesTestFile, Template: "monitoring/mohd-rules.test.yml"},
		{Path: "/usr/share/mohd/grafana/README", Template: "monitoring/grafana-README"},
	}
	dashboards, err := fs.Glob(filesFS, "files/monitoring/dashboards/*.json")
	if err != nil {
		return nil, err
	}
	for _, d := range dashboards {
		specs = append(specs, fileSpec{Path: grafanaDashboards + "/" + path.Base(d), Template: strings.TrimPrefix(d, "files/")})
	}
	return copyVerbatim(specs...)
}

// copyVerbatim is renderAll for files that are not templates.
func copyVerbatim(specs ...fileSpec) ([]File, error) {
	out := make([]File, 0, len(specs))
	for _, s := range specs {
		b, err := filesFS.ReadFile("files/" + s.Template)
		if err != nil {
			return nil, err
		}
		mode := s.Mode
		if mode == 0 {
			mode = 0o644
		}
		out = append(out, File{
			File:    remote.File{Path: s.Path, Content: b, Mode: mode, Owner: "root", Group: "root", MkdirParents: true},
			Restart: s.Restart,
			Reload:  s.Reload,
		})
	}
	return out, nil
}

// monitoringWaitFor is a shell function for the checks: it retries a command for up to $1 seconds, since Prometheus
// and Alertmanager may have just been (re)started when the checks run, and the first scrape takes a scrape
// interval (15 s).
const monitoringWaitFor = `wait_for() {
	t=$1; shift
	while ! "$@" >/dev/null 2>&1; do
		t=$((t - 1))
		[ "$t" -gt 0 ] || return 1
		sleep 1
	done
}
`

var monitoringChecks = []Step{
	{Desc: "Prometheus' configuration and alert rules are valid", Script: `promtool check config /etc/prometheus/prometheus.yml >/dev/null
promtool check rules /etc/prometheus/rules/*.yml >/dev/null`},
	{Desc: "MOHD's alert rules pass their unit tests (promtool test rules)", Script: `promtool test rules ` + promRulesTestFile},
	{Desc: "Alertmanager's configuration is valid", Script: `amtool check-config /etc/prometheus/alertmanager.yml >/dev/null`},
	{Desc: "Prometheus and Alertmanager are ready", Script: monitoringWaitFor + `
wait_for 60 curl -fsS http://127.0.0.1:9090/-/ready || { echo "Prometheus is not ready on 127.0.0.1:9090" >&2; exit 1; }
wait_for 60 curl -fsS http://127.0.0.1:9093/-/ready || { echo "Alertmanager is not ready on 127.0.0.1:9093" >&2; exit 1; }`},
	{Desc: "Prometheus scrapes itself, runs its configuration and MOHD's rules, and sends to Alertmanager", Script: monitoringWaitFor + `
q() { curl -fsS --data-urlencode "query=$1" http://127.0.0.1:9090/api/v1/query; }
self_up() { q 'up{job="prometheus"}' | jq -e '.data.result[0].value[1] == "1"'; }
wait_for 45 self_up || { echo "up{job=\"prometheus\"} is not 1 after 45 s: Prometheus does not scrape itself" >&2; exit 1; }
q prometheus_config_last_reload_successful | jq -e '.data.result[0].value[1] == "1"' >/dev/null ||
	{ echo "Prometheus failed to load /etc/prometheus/prometheus.yml: see journalctl -u prometheus" >&2; exit 1; }
curl -fsS http://127.0.0.1:9090/api/v1/rules |
	jq -e '[.data.groups[] | select(.file == "/etc/prometheus/rules/mohd.yml") | .rules[] | select(.health != "err")] | length >= 20' >/dev/null ||
	{ echo "Prometheus did not load MOHD's rules from /etc/prometheus/rules/mohd.yml" >&2; exit 1; }
am() { curl -fsS http://127.0.0.1:9090/api/v1/alertmanagers | jq -e '.data.activeAlertmanagers[0].url | test(":9093/")'; }
wait_for 30 am || { echo "Prometheus has no active Alertmanager" >&2; exit 1; }`},
	{Desc: "Alertmanager runs MOHD's configuration, routed to Mattermost", Script: `curl -fsS http://127.0.0.1:9093/api/v2/status |
	jq -e '.config.original | test("api_url_file: ` + mattermostURLFile + `")' >/dev/null ||
	{ echo "Alertmanager does not run /etc/prometheus/alertmanager.yml: see journalctl -u prometheus-alertmanager" >&2; exit 1; }`},
	{Desc: "Prometheus' admin and lifecycle APIs are off, Alertmanager's gossip port is closed", Script: `code=$(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:9090/-/quit)
[ "$code" = 403 ] || { echo "POST /-/quit answered $code: the lifecycle API is on" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:9090/api/v1/admin/tsdb/snapshot)
case $code in 2*) echo "POST /api/v1/admin/tsdb/snapshot answered $code: the admin API is on" >&2; exit 1 ;; esac
[ -z "$(ss -Hltn 'sport = :9094')" ] || { echo "Alertmanager's cluster gossip listens on 9094" >&2; exit 1; }`},
	{Desc: "the Mattermost webhook URL file, when the site wrote it, is readable by Alertmanager only", Script: `f=` + mattermostURLFile + `
[ -e "$f" ] || exit 0
[ "$(stat -c %U:%G "$f")" = root:prometheus ] || { echo "$f is owned by $(stat -c %U:%G "$f"), not root:prometheus" >&2; exit 1; }
mode=0$(stat -c %a "$f")
[ $((mode & 7)) -eq 0 ] || { echo "$f is accessible to others (mode $(stat -c %a "$f")): it holds a secret" >&2; exit 1; }
[ $((mode & 040)) -ne 0 ] || { echo "$f is not readable by group prometheus (mode $(stat -c %a "$f")): Alertmanager cannot read it" >&2; exit 1; }`},
	{Desc: grafanaNotInstalled + "; they are valid", Script: `n=0
for f in ` + grafanaDashboards + `/*.json; do
	jq -e '(.uid | type == "string") and (.title | type == "string") and (.templating.list[0].type == "datasource")
		and ([.panels[] | select(.type != "row") | .targets[].expr] | length > 0)' "$f" >/dev/null ||
		{ echo "$f is not a valid MOHD dashboard" >&2; exit 1; }
	n=$((n + 1))
done
[ "$n" -ge 5 ] || { echo "only $n dashboards in ` + grafanaDashboards + `" >&2; exit 1; }`},
}
