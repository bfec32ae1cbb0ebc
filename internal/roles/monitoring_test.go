package roles

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// verifiedMetrics are the metric names the rules and dashboards may use: each was seen in a live scrape of
// the Debian 12 exporter (node exporter 1.5.0, HAProxy 2.6.12's built-in exporter, prometheus-apache-exporter
// 0.12.0, prometheus-mysqld-exporter 0.14.0 on a MariaDB 10.11 primary with semi-sync and a replica,
// prometheus-redis-exporter 1.45, Prometheus 2.42, Alertmanager 0.25), except php_fpm_*, the names of the
// web role's textfile collector. A new name belongs here only once it was seen the same way.
var verifiedMetrics = strings.Fields(`
alertmanager_config_last_reload_successful alertmanager_notifications_failed_total
apache_accesses_total apache_connections apache_sent_kilobytes_total apache_up apache_workers
haproxy_backend_active_servers haproxy_backend_backup_servers haproxy_backend_connection_errors_total
haproxy_backend_current_queue haproxy_backend_response_errors_total haproxy_backend_response_time_average_seconds
haproxy_backend_status haproxy_frontend_bytes_in_total haproxy_frontend_bytes_out_total
haproxy_frontend_current_sessions haproxy_frontend_http_requests_total haproxy_frontend_http_responses_total
haproxy_process_current_connections haproxy_process_uptime_seconds haproxy_server_status
mysql_global_status_aborted_clients mysql_global_status_aborted_connects mysql_global_status_commands_total
mysql_global_status_innodb_buffer_pool_read_requests mysql_global_status_innodb_buffer_pool_reads
mysql_global_status_questions mysql_global_status_rpl_semi_sync_master_clients
mysql_global_status_rpl_semi_sync_master_status mysql_global_status_slow_queries
mysql_global_status_threads_connected mysql_global_status_threads_running mysql_global_status_uptime
mysql_global_variables_max_connections mysql_global_variables_read_only
mysql_global_variables_rpl_semi_sync_master_enabled mysql_slave_status_seconds_behind_master
mysql_slave_status_slave_io_running mysql_slave_status_slave_sql_running mysql_up
node_boot_time_seconds node_cpu_seconds_total node_disk_read_bytes_total node_disk_written_bytes_total
node_filesystem_avail_bytes node_filesystem_device_error node_filesystem_readonly node_filesystem_size_bytes
node_load1 node_memory_MemAvailable_bytes node_memory_MemTotal_bytes node_memory_SwapFree_bytes
node_memory_SwapTotal_bytes node_network_receive_bytes_total node_network_transmit_bytes_total
node_systemd_unit_state node_uname_info
php_fpm_up php_fpm_active_processes php_fpm_idle_processes php_fpm_total_processes
php_fpm_accepted_connections_total php_fpm_listen_queue php_fpm_max_children_reached_total
php_fpm_slow_requests_total
prometheus_config_last_reload_successful prometheus_rule_evaluation_failures_total
redis_commands_processed_total redis_connected_clients redis_db_keys redis_evicted_keys_total
redis_expired_keys_total redis_keyspace_hits_total redis_keyspace_misses_total redis_memory_max_bytes
redis_memory_used_bytes redis_memory_used_rss_bytes redis_net_input_bytes_total redis_net_output_bytes_total
redis_rejected_connections_total redis_up
`)

var (
	promMetricNameRE = regexp.MustCompile(`\b(?:haproxy|apache|php_fpm|mysql|redis|node|prometheus|alertmanager)_[A-Za-z0-9_]+\b`)
	promQuotedRE     = regexp.MustCompile(`"[^"]*"`)
)

// promMetricNames lists the exporter metrics a PromQL expression reads (label values are left out).
func promMetricNames(expr string) []string {
	return promMetricNameRE.FindAllString(promQuotedRE.ReplaceAllString(expr, `""`), -1)
}

// checkPromQL fails on an expression a reader can see is broken: unbalanced brackets or quotes, or a
// metric that no Debian exporter exports.
func checkPromQL(t *testing.T, where, expr string) {
	t.Helper()
	if strings.TrimSpace(expr) == "" {
		t.Errorf("%s: empty expression", where)
		return
	}
	if strings.Count(expr, `"`)%2 != 0 {
		t.Errorf("%s: unbalanced quotes in %q", where, expr)
	}
	s := promQuotedRE.ReplaceAllString(expr, `""`)
	for _, pair := range []string{"()", "{}", "[]"} {
		if strings.Count(s, pair[:1]) != strings.Count(s, pair[1:]) {
			t.Errorf("%s: unbalanced %s in %q", where, pair, expr)
		}
	}
	names := promMetricNames(expr)
	if len(names) == 0 && !regexp.MustCompile(`\bup\{`).MatchString(expr) {
		t.Errorf("%s: reads no exporter metric: %q", where, expr)
	}
	for _, n := range names {
		if !slices.Contains(verifiedMetrics, n) {
			t.Errorf("%s: metric %s is not one the Debian 12 exporters were seen to export", where, n)
		}
	}
}

func monitoringRole(t *testing.T) (*Role, map[string]File) {
	t.Helper()
	r, err := Get("monitoring")
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Files(Params{ClusterCIDR: "10.20.0.0/24", Hardening: "baseline"})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]File{}
	for _, f := range files {
		if _, dup := byPath[f.Path]; dup {
			t.Fatalf("%s is written twice", f.Path)
		}
		byPath[f.Path] = f
	}
	return r, byPath
}

func monitoringFileText(t *testing.T, files map[string]File, path string) string {
	t.Helper()
	f, ok := files[path]
	if !ok {
		t.Fatalf("the role does not write %s", path)
	}
	return string(f.Content)
}

func TestMonitoringRoleDefinition(t *testing.T) {
	r, _ := monitoringRole(t)
	for _, p := range []string{"prometheus", "prometheus-alertmanager", "jq"} {
		if !slices.Contains(r.Packages, p) {
			t.Errorf("package %s is not installed", p)
		}
	}
	for _, p := range r.allPackages(Params{}) {
		if strings.Contains(p, "grafana") {
			t.Errorf("package %s: Grafana is not in Debian and no third-party repository is added", p)
		}
	}
	if !slices.Equal(r.Services, []string{"prometheus", "prometheus-alertmanager"}) {
		t.Errorf("services: %v", r.Services)
	}
	public, cluster := r.ports()
	if len(public) != 1 || public[0] != "tcp . 22" {
		t.Errorf("public ports: %v (only SSH may be public)", public)
	}
	for _, p := range []string{"tcp . 9090", "tcp . 9093"} {
		if !slices.Contains(cluster, p) {
			t.Errorf("%s is not opened to the cluster network: %v", p, cluster)
		}
	}
	if slices.Contains(cluster, "tcp . 9094") {
		t.Error("Alertmanager's gossip port 9094 is opened")
	}
	if !strings.Contains(r.Summary, "Grafana") {
		t.Errorf("the summary does not say that Grafana is not installed: %q", r.Summary)
	}
	var said bool
	for _, s := range r.Setup {
		said = said || strings.Contains(s.Desc, "Grafana is not installed")
	}
	if !said {
		t.Error("no setup step tells the build output that Grafana is not installed")
	}
	var checks []string
	for _, c := range r.Checks {
		checks = append(checks, c.Script)
	}
	all := strings.Join(checks, "\n")
	for _, want := range []string{
		"promtool check config /etc/prometheus/prometheus.yml", "promtool check rules /etc/prometheus/rules/*.yml",
		"promtool test rules " + promRulesTestFile, "amtool check-config /etc/prometheus/alertmanager.yml",
		"http://127.0.0.1:9090/-/ready", "http://127.0.0.1:9093/-/ready", `up{job="prometheus"}`, "wait_for 45 self_up",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no check runs %s", want)
		}
	}
}

func TestMonitoringFiles(t *testing.T) {
	_, files := monitoringRole(t)

	// Copied as they are: the embedded files, byte for byte (text/template would eat the {{ }} of
	// Prometheus, Alertmanager and Grafana).
	for p, f := range files {
		if f.Mode != 0o644 || f.Owner != "root" || f.Group != "root" {
			t.Errorf("%s: mode %o %s:%s, want 0644 root:root (no secret in these files)", p, f.Mode, f.Owner, f.Group)
		}
	}
	rules := monitoringFileText(t, files, "/etc/prometheus/rules/mohd.yml")
	src, err := filesFS.ReadFile("files/monitoring/rules/mohd.yml")
	if err != nil || !bytes.Equal(src, []byte(rules)) {
		t.Errorf("the rules file is not copied verbatim (err %v)", err)
	}
	if !strings.Contains(rules, "{{ $labels.instance }}") {
		t.Error("rule annotations lost their Prometheus templates")
	}

	prom := monitoringFileText(t, files, "/etc/prometheus/prometheus.yml")
	for _, want := range []string{
		"  scrape_interval: 15s\n", "rule_files:\n  - /etc/prometheus/rules/*.yml\n",
		"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['localhost:9093']\n",
		"  - job_name: prometheus\n    static_configs:\n      - targets: ['localhost:9090']\n",
		"  - job_name: alertmanager\n    static_configs:\n      - targets: ['localhost:9093']\n",
		"  - job_name: node\n    static_configs:\n      - targets: ['localhost:9100']\n",
	} {
		if !strings.Contains(prom, want) {
			t.Errorf("prometheus.yml lacks %q", want)
		}
	}
	for _, job := range []string{"node", "haproxy", "apache", "mysqld", "redis", "nfs"} {
		if !strings.Contains(prom, "- job_name: "+job+"\n") || !strings.Contains(prom, "- files: ['/etc/prometheus/targets/"+job+".yml']") {
			t.Errorf("job %s does not read its targets from /etc/prometheus/targets/%s.yml", job, job)
		}
	}
	if n := strings.Count(prom, "- job_name:"); n != 8 {
		t.Errorf("%d scrape jobs, want 8", n)
	}
	var promConfig []string
	for _, line := range strings.Split(prom, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			promConfig = append(promConfig, line)
		}
	}
	if regexp.MustCompile(`\b10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.`).MatchString(strings.Join(promConfig, "\n")) {
		t.Error("prometheus.yml names site addresses: targets belong in /etc/prometheus/targets/")
	}

	args := monitoringFileText(t, files, "/etc/default/prometheus")
	if !strings.Contains(args, `ARGS="--web.listen-address=:9090 --storage.tsdb.retention.time=30d"`) {
		t.Errorf("/etc/default/prometheus: %s", args)
	}
	for _, p := range []string{"/etc/default/prometheus", "/etc/default/prometheus-alertmanager"} {
		for _, line := range strings.Split(monitoringFileText(t, files, p), "\n") {
			if strings.HasPrefix(line, "ARGS=") && (strings.Contains(line, "enable-admin-api") || strings.Contains(line, "enable-lifecycle")) {
				t.Errorf("%s enables an admin API: %s", p, line)
			}
		}
	}
	if !strings.Contains(monitoringFileText(t, files, "/etc/default/prometheus-alertmanager"), `ARGS="--web.listen-address=:9093 --cluster.listen-address="`) {
		t.Error("Alertmanager's gossip is not switched off")
	}

	am := monitoringFileText(t, files, "/etc/prometheus/alertmanager.yml")
	for _, want := range []string{"  receiver: mattermost\n", "  - name: mattermost\n    slack_configs:\n      - api_url_file: " + mattermostURLFile + "\n",
		"send_resolved: true", "group_by: [alertname, job, instance]"} {
		if !strings.Contains(am, want) {
			t.Errorf("alertmanager.yml lacks %q", want)
		}
	}
	for _, line := range strings.Split(am, "\n") {
		l := strings.TrimSpace(line)
		if !strings.HasPrefix(l, "#") && (strings.Contains(l, "api_url:") || strings.Contains(l, "http://") || strings.Contains(l, "https://")) {
			t.Errorf("alertmanager.yml carries a URL (the webhook is a secret, read from %s): %s", mattermostURLFile, l)
		}
	}
	if _, ok := files[mattermostURLFile]; ok {
		t.Errorf("the image must not ship %s: the provider writes the secret", mattermostURLFile)
	}

	hardening := monitoringFileText(t, files, "/etc/systemd/system/prometheus-alertmanager.service.d/50-mohd-hardening.conf")
	for _, want := range []string{"[Service]\n", "ProtectSystem=strict\n", "ReadWritePaths=/var/lib/prometheus/alertmanager\n", "NoNewPrivileges=true\n"} {
		if !strings.Contains(hardening, want) {
			t.Errorf("the Alertmanager drop-in lacks %q", want)
		}
	}

	// What a changed file does to the services.
	for p, want := range map[string]string{
		"/etc/prometheus/prometheus.yml":                                               "reload prometheus",
		"/etc/prometheus/rules/mohd.yml":                                               "reload prometheus",
		"/etc/default/prometheus":                                                      "restart prometheus",
		"/etc/prometheus/alertmanager.yml":                                             "reload prometheus-alertmanager",
		"/etc/default/prometheus-alertmanager":                                         "restart prometheus-alertmanager",
		"/etc/systemd/system/prometheus-alertmanager.service.d/50-mohd-hardening.conf": "restart prometheus-alertmanager",
		"/etc/prometheus/targets/README":                                               "",
		"/usr/share/mohd/grafana/README":                                               "",
		promRulesTestFile:                                                              "",
	} {
		f := files[p]
		var got []string
		for _, s := range f.Restart {
			got = append(got, "restart "+s)
		}
		for _, s := range f.Reload {
			got = append(got, "reload "+s)
		}
		if strings.Join(got, ", ") != want {
			t.Errorf("%s: a change does %q, want %q", p, strings.Join(got, ", "), want)
		}
	}

	readme := monitoringFileText(t, files, "/usr/share/mohd/grafana/README")
	for _, want := range []string{"Grafana is NOT installed", "not packaged by Debian", "not reachable", grafanaDashboards} {
		if !strings.Contains(readme, want) {
			t.Errorf("the Grafana README does not say %q", want)
		}
	}
}

// promAlertRule is one rule of rules/mohd.yml as the test reads it (the file's own layout, not general YAML:
// the module has no YAML library; promtool checks the file on the hosts).
type promAlertRule struct {
	Name, Expr, For, Severity, Summary, Description string
}

func parseAlertRules(t *testing.T, text string) []promAlertRule {
	t.Helper()
	var rules []promAlertRule
	var cur *promAlertRule
	inExpr := false
	for _, line := range strings.Split(text, "\n") {
		trim := strings.TrimSpace(line)
		if inExpr {
			if strings.HasPrefix(line, "          ") && trim != "" {
				cur.Expr += trim + "\n"
				continue
			}
			inExpr = false
		}
		if strings.HasPrefix(trim, "#") || trim == "" {
			continue
		}
		if name, ok := strings.CutPrefix(trim, "- alert: "); ok {
			rules = append(rules, promAlertRule{Name: name})
			cur = &rules[len(rules)-1]
			continue
		}
		if cur == nil {
			continue
		}
		key, value, _ := strings.Cut(trim, ":")
		value = strings.TrimSpace(value)
		switch key {
		case "expr":
			if value == "|" {
				inExpr = true
			} else {
				cur.Expr = value
			}
		case "for":
			cur.For = value
		case "severity":
			cur.Severity = value
		case "summary":
			cur.Summary = value
		case "description":
			cur.Description = value
		}
	}
	return rules
}

func TestMonitoringAlertRules(t *testing.T) {
	src, err := filesFS.ReadFile("files/monitoring/rules/mohd.yml")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(src, []byte("\t")) {
		t.Error("rules/mohd.yml contains a tab: YAML indents with spaces")
	}
	rules := parseAlertRules(t, string(src))
	if n := bytes.Count(src, []byte("- alert: ")); len(rules) != n || n < 20 {
		t.Fatalf("read %d rules of %d", len(rules), n)
	}
	byName := map[string]promAlertRule{}
	for _, r := range rules {
		if _, dup := byName[r.Name]; dup {
			t.Errorf("alert %s is defined twice", r.Name)
		}
		byName[r.Name] = r
		checkPromQL(t, "alert "+r.Name, r.Expr)
		if r.Severity != "critical" && r.Severity != "warning" {
			t.Errorf("alert %s: severity %q, want critical or warning", r.Name, r.Severity)
		}
		if r.Summary == "" || r.Description == "" {
			t.Errorf("alert %s lacks a summary or a description", r.Name)
		}
	}
	// The alerts, and what each must look at.
	for name, want := range map[string][]string{
		"InstanceDown":              {"up{", "== 0"},
		"HAProxyBackendDown":        {"haproxy_backend_active_servers", "== 0"},
		"HAProxyServerDown":         {`haproxy_server_status{state="DOWN"}`},
		"HighHTTP5xxRate":           {`haproxy_frontend_http_responses_total{code="5xx"}`, "haproxy_frontend_http_requests_total"},
		"PHPFPMMaxChildrenReached":  {"increase(php_fpm_max_children_reached_total", "> 0"},
		"PHPFPMListenQueue":         {"php_fpm_listen_queue"},
		"MariaDBDown":               {"mysql_up == 0"},
		"MariaDBReplicationStopped": {"mysql_slave_status_slave_io_running == 0", "mysql_slave_status_slave_sql_running == 0"},
		"MariaDBReplicationLag":     {"mysql_slave_status_seconds_behind_master > 30"},
		"MariaDBSemiSyncOff":        {"mysql_global_status_rpl_semi_sync_master_status == 0", "unless on (job, instance) mysql_slave_status_slave_io_running"},
		"RedisDown":                 {"redis_up == 0"},
		"RedisMemoryHigh":           {"redis_memory_used_bytes / redis_memory_max_bytes"},
		"NodeDiskFillingUp":         {"predict_linear(node_filesystem_avail_bytes"},
		"DiskSpaceLow":              {"node_filesystem_avail_bytes", "node_filesystem_size_bytes"},
		"NodeMemoryLow":             {"node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes"},
		"MoodledataNFSDown":         {`up{job="nfs"} == 0`},
	} {
		r, ok := byName[name]
		if !ok {
			t.Errorf("alert %s is missing", name)
			continue
		}
		for _, w := range want {
			if !strings.Contains(r.Expr, w) {
				t.Errorf("alert %s: expression %q lacks %q", name, r.Expr, w)
			}
		}
	}
	for name, want := range map[string]string{"InstanceDown": "1m", "MariaDBReplicationLag": "2m", "MoodledataNFSDown": "1m"} {
		if got := byName[name].For; got != want {
			t.Errorf("alert %s: for %q, want %q", name, got, want)
		}
	}

	// promtool's unit tests (run by the role's checks) cover the alerts whose logic is more than a threshold.
	tests, err := filesFS.ReadFile("files/monitoring/mohd-rules.test.yml")
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, m := range regexp.MustCompile(`alertname: (\w+)`).FindAllStringSubmatch(string(tests), -1) {
		if _, ok := byName[m[1]]; !ok {
			t.Errorf("mohd-rules.test.yml tests alert %s, which the rules do not define", m[1])
		}
		tested[m[1]] = true
	}
	for _, name := range []string{"InstanceDown", "MoodledataNFSDown", "HAProxyBackendDown", "HAProxyServerDown", "HighHTTP5xxRate",
		"PHPFPMMaxChildrenReached", "PHPFPMListenQueue", "MariaDBReplicationStopped", "MariaDBReplicationLag", "MariaDBSemiSyncOff",
		"RedisDown", "RedisMemoryHigh", "NodeDiskFillingUp", "DiskSpaceLow", "NodeMemoryLow"} {
		if !tested[name] {
			t.Errorf("alert %s has no promtool unit test in mohd-rules.test.yml", name)
		}
	}
	if !strings.Contains(string(tests), "rule_files:\n  - /etc/prometheus/rules/mohd.yml\n") {
		t.Error("mohd-rules.test.yml does not test the installed rules file")
	}
}

// grafanaDashboard is the part of Grafana's dashboard model the test looks at.
type grafanaDashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string                `json:"name"`
			Type       string                `json:"type"`
			Query      json.RawMessage       `json:"query"`
			Definition string                `json:"definition"`
			Datasource *grafanaDatasourceRef `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int                   `json:"id"`
		Type       string                `json:"type"`
		Title      string                `json:"title"`
		Datasource *grafanaDatasourceRef `json:"datasource"`
		GridPos    struct{ X, Y, W, H int }
		Targets    []struct {
			Expr       string                `json:"expr"`
			RefID      string                `json:"refId"`
			Datasource *grafanaDatasourceRef `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

type grafanaDatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func TestMonitoringDashboards(t *testing.T) {
	_, files := monitoringRole(t)
	uids := map[string]string{}
	var used []string
	var paths []string
	for p := range files {
		if strings.HasPrefix(p, grafanaDashboards+"/") {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	want := []string{"mohd-haproxy.json", "mohd-mariadb.json", "mohd-node.json", "mohd-redis.json", "mohd-web.json"}
	var got []string
	for _, p := range paths {
		got = append(got, strings.TrimPrefix(p, grafanaDashboards+"/"))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("dashboards %v, want %v", got, want)
	}
	promDS := grafanaDatasourceRef{Type: "prometheus", UID: "${datasource}"}
	for _, p := range paths {
		name := strings.TrimPrefix(p, grafanaDashboards+"/")
		dec := json.NewDecoder(bytes.NewReader(files[p].Content))
		var d grafanaDashboard
		if err := dec.Decode(&d); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d.UID == "" || len(d.UID) > 40 || d.Title == "" || d.SchemaVersion < 36 {
			t.Errorf("%s: uid %q, title %q, schemaVersion %d", name, d.UID, d.Title, d.SchemaVersion)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share uid %s", name, other, d.UID)
		}
		uids[d.UID] = name
		if name != d.UID+".json" {
			t.Errorf("%s: file name does not match uid %s", name, d.UID)
		}
		// A data source variable, so the dashboard imports into any Grafana whatever its data source is named.
		vars := d.Templating.List
		if len(vars) == 0 || vars[0].Type != "datasource" || vars[0].Name != "datasource" || string(vars[0].Query) != `"prometheus"` {
			t.Errorf("%s: the first variable is not a Prometheus data source variable", name)
		}
		for _, v := range vars[1:] {
			if v.Type != "query" || v.Datasource == nil || *v.Datasource != promDS {
				t.Errorf("%s: variable %s is not a query of ${datasource}", name, v.Name)
				continue
			}
			checkPromQL(t, name+" variable "+v.Name, strings.TrimSuffix(strings.TrimPrefix(v.Definition, "label_values("), ")"))
			used = append(used, promMetricNames(v.Definition)...)
		}
		ids := map[int]bool{}
		var boxes [][4]int
		graphs := 0
		for _, panel := range d.Panels {
			where := fmt.Sprintf("%s panel %q", name, panel.Title)
			if ids[panel.ID] {
				t.Errorf("%s: id %d is not unique", where, panel.ID)
			}
			ids[panel.ID] = true
			g := panel.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("%s: gridPos %+v is outside the 24-column grid", where, g)
			}
			for _, b := range boxes {
				if g.X < b[0]+b[2] && b[0] < g.X+g.W && g.Y < b[1]+b[3] && b[1] < g.Y+g.H {
					t.Errorf("%s: overlaps another panel at %v", where, b)
				}
			}
			boxes = append(boxes, [4]int{g.X, g.Y, g.W, g.H})
			if panel.Type == "row" {
				continue
			}
			graphs++
			if panel.Type != "timeseries" && panel.Type != "stat" {
				t.Errorf("%s: type %q", where, panel.Type)
			}
			if panel.Title == "" || panel.Datasource == nil || *panel.Datasource != promDS || len(panel.Targets) == 0 {
				t.Errorf("%s: needs a title, the ${datasource} data source and a query", where)
			}
			refs := map[string]bool{}
			for _, tg := range panel.Targets {
				if tg.RefID == "" || refs[tg.RefID] || tg.Datasource == nil || *tg.Datasource != promDS {
					t.Errorf("%s: query %q has a missing or repeated refId, or another data source", where, tg.Expr)
				}
				refs[tg.RefID] = true
				checkPromQL(t, where, tg.Expr)
				used = append(used, promMetricNames(tg.Expr)...)
			}
		}
		if graphs < 5 {
			t.Errorf("%s has %d panels, want a handful (5 or more)", name, graphs)
		}
	}
	// What the issue asks each dashboard to show.
	for _, m := range []string{
		"haproxy_frontend_http_requests_total", "haproxy_frontend_http_responses_total", "haproxy_server_status", "haproxy_backend_active_servers",
		"apache_accesses_total", "apache_workers",
		"php_fpm_up", "php_fpm_active_processes", "php_fpm_idle_processes", "php_fpm_total_processes", "php_fpm_accepted_connections_total",
		"php_fpm_listen_queue", "php_fpm_max_children_reached_total", "php_fpm_slow_requests_total",
		"mysql_up", "mysql_slave_status_seconds_behind_master", "mysql_slave_status_slave_io_running", "mysql_slave_status_slave_sql_running",
		"mysql_global_status_rpl_semi_sync_master_status",
		"redis_up", "redis_memory_used_bytes", "redis_connected_clients",
		"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes",
	} {
		if !slices.Contains(used, m) {
			t.Errorf("no dashboard shows %s", m)
		}
	}
}

// TestMonitoringPromtool runs Debian's promtool and amtool on the files when the machine has them (Debian's
// prometheus and prometheus-alertmanager packages); the role's checks run them on every host regardless.
func TestMonitoringPromtool(t *testing.T) {
	_, files := monitoringRole(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rules := write("mohd.yml", monitoringFileText(t, files, "/etc/prometheus/rules/mohd.yml"))
	tests := write("mohd-rules.test.yml", strings.Replace(monitoringFileText(t, files, promRulesTestFile),
		"rule_files:\n  - /etc/prometheus/rules/mohd.yml\n", "rule_files:\n  - "+rules+"\n", 1))
	am := write("alertmanager.yml", monitoringFileText(t, files, "/etc/prometheus/alertmanager.yml"))
	run := func(tool string, args ...string) {
		t.Helper()
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("SKIPPED %s %s: %s is not installed here (Debian package %s); the role's checks run it on every host",
				tool, args[0], tool, map[string]string{"promtool": "prometheus", "amtool": "prometheus-alertmanager"}[tool])
			return
		}
		out, err := exec.Command(tool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
		}
	}
	run("promtool", "check", "rules", rules)
	run("promtool", "test", "rules", tests)
	run("amtool", "check-config", am)
}
