package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func dbRendered(t *testing.T) map[string]File {
	t.Helper()
	r, err := Get("db")
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.render(Params{ClusterCIDR: "10.20.0.0/24", Hardening: "baseline", PluginVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]File{}
	for _, f := range files {
		if _, dup := out[f.Path]; dup {
			t.Fatalf("%s rendered twice", f.Path)
		}
		out[f.Path] = f
	}
	return out
}

func dbFile(t *testing.T, files map[string]File, path string) string {
	t.Helper()
	f, ok := files[path]
	if !ok {
		t.Fatalf("the db role renders no %s", path)
	}
	return string(f.Content)
}

// dbCnfValues reads "key = value" lines of a MariaDB option file's [mysqld] group (last value wins).
func dbCnfValues(t *testing.T, content string) map[string]string {
	t.Helper()
	vals := map[string]string{}
	group := ""
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			group = strings.Trim(line, "[]")
		case group == "mysqld":
			k, v, _ := strings.Cut(line, "=")
			vals[strings.TrimSpace(k)] = strings.TrimSpace(v)
		default:
			t.Fatalf("option %q outside [mysqld]", line)
		}
	}
	return vals
}

func TestDBRoleDefinition(t *testing.T) {
	r, err := Get("db")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"mariadb-server", "mariadb-client", "mariadb-backup", "prometheus-mysqld-exporter"} {
		if !slices.Contains(r.Packages, p) {
			t.Errorf("package %s is not installed", p)
		}
	}
	public, cluster := r.ports()
	if !slices.Equal(public, []string{"tcp . 22"}) {
		t.Errorf("public ports %v: only SSH may be public on a database", public)
	}
	for _, want := range []string{"tcp . 3306", "tcp . 9104"} {
		if !slices.Contains(cluster, want) {
			t.Errorf("cluster ports %v lack %s", cluster, want)
		}
	}
	// The tune unit must be enabled and started before MariaDB, and MariaDB before its exporter.
	if !slices.Equal(r.Services, []string{"mohd-mariadb-tune", "mariadb", "prometheus-mysqld-exporter"}) {
		t.Errorf("services %v", r.Services)
	}
	if len(r.InContainer) != 0 {
		t.Errorf("the db role needs no container drop-in, has %v", r.InContainer)
	}
	fw := dbFile(t, dbRendered(t), "/etc/nftables.conf")
	if !strings.Contains(fw, "tcp . 3306") || !strings.Contains(fw, "ip saddr 10.20.0.0/24 meta l4proto . th dport @cluster_ports accept") {
		t.Errorf("the firewall does not admit 3306 from the cluster:\n%s", fw)
	}
}

func TestDBServerConfig(t *testing.T) {
	files := dbRendered(t)
	cnf := files["/etc/mysql/mariadb.conf.d/55-mohd-server.cnf"]
	if cnf.Mode != 0o644 || cnf.Owner != "root" {
		t.Errorf("55-mohd-server.cnf mode %v owner %s", cnf.Mode, cnf.Owner)
	}
	vals := dbCnfValues(t, string(cnf.Content))
	want := map[string]string{
		"datadir":                        "/var/lib/mysql",
		"bind-address":                   "127.0.0.1",
		"skip-name-resolve":              "",
		"local_infile":                   "0",
		"character-set-server":           "utf8mb4",
		"collation-server":               "utf8mb4_unicode_ci",
		"innodb_file_per_table":          "1",
		"max_allowed_packet":             "64M",
		"innodb_flush_log_at_trx_commit": "1",
		"sync_binlog":                    "1",
		"log_bin":                        "/var/lib/mysql/mariadb-bin",
		"relay_log":                      "/var/lib/mysql/relay-bin",
		"binlog_format":                  "ROW",
		"expire_logs_days":               "7",
		"binlog_expire_logs_seconds":     "604800",
		"gtid_strict_mode":               "ON",
		"log_slave_updates":              "ON",
		"rpl_semi_sync_master_enabled":   "OFF",
		"rpl_semi_sync_slave_enabled":    "OFF",
		"ignore_db_dirs":                 "lost+found",
	}
	for k, v := range want {
		got, ok := vals[k]
		if !ok || got != v {
			t.Errorf("%s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
	// What differs per host or per site is never baked into the shared file.
	for _, k := range append(slices.Clone(dbTuned), "server-id", "read_only", "report_host") {
		if _, ok := vals[k]; ok {
			t.Errorf("55-mohd-server.cnf sets %s, which belongs to the host (60-mohd-host.cnf) or the site (70-mohd-site.cnf)", k)
		}
	}
	// The include convention is spelled out where the provider's author will look.
	for _, s := range []string{"60-mohd-host.cnf", "70-mohd-site.cnf", "mohd-mariadb-tune"} {
		if !strings.Contains(string(cnf.Content), s) {
			t.Errorf("55-mohd-server.cnf does not explain %s", s)
		}
	}
	// No secret in any file of the role.
	for path, f := range files {
		c := strings.ToLower(string(f.Content))
		if strings.Contains(c, "identified by") || regexp.MustCompile(`(?m)^\s*password\s*=`).MatchString(c) {
			t.Errorf("%s carries a password", path)
		}
	}
}

func TestDBUnitsAndScripts(t *testing.T) {
	files := dbRendered(t)
	for _, p := range []string{dbTune, dbPrestart} {
		if files[p].Mode != 0o755 {
			t.Errorf("%s mode %v", p, files[p].Mode)
		}
	}
	unit := dbFile(t, files, "/etc/systemd/system/mohd-mariadb-tune.service")
	for _, s := range []string{"Before=mariadb.service", "WantedBy=multi-user.target", "Type=oneshot", "RemainAfterExit=yes",
		"ExecStart=" + dbTune, "ReadWritePaths=/etc/mysql/mariadb.conf.d"} {
		if !strings.Contains(unit, s+"\n") {
			t.Errorf("mohd-mariadb-tune.service lacks %q", s)
		}
	}
	if !slices.Equal(files["/etc/systemd/system/mohd-mariadb-tune.service"].Restart, []string{"mohd-mariadb-tune"}) {
		t.Error("a changed tune unit must be restarted (which reloads systemd)")
	}
	dropIn := dbFile(t, files, dbDropIn)
	if !strings.Contains(dropIn, "ExecStartPre=+"+dbPrestart+"\n") || !strings.Contains(dropIn, "After=mohd-mariadb-tune.service\n") {
		t.Errorf("mariadb drop-in:\n%s", dropIn)
	}
	// MariaDB is restarted by the options step only, never by the engine on top of it (two restarts).
	for path, f := range files {
		if slices.Contains(f.Restart, "mariadb") || slices.Contains(f.Reload, "mariadb") {
			t.Errorf("%s restarts mariadb through the engine", path)
		}
	}
	prestart := dbFile(t, files, dbPrestart)
	for _, s := range []string{DBConfigHash + " >" + DBConfigStamp, "--extra-file=" + dbAccountsSQL, "--disable-log-bin",
		"--skip-test-db", "--auth-root-authentication-method=socket", dbDatadirRecord, "findmnt"} {
		if !strings.Contains(prestart, s) {
			t.Errorf("mohd-mariadb-prestart lacks %q", s)
		}
	}
	// The options step compares with the very hash the prestart script records.
	if !strings.Contains(dbSetup[1].Script, "want=$("+DBConfigHash+")") || !strings.Contains(dbSetup[1].Script, DBConfigStamp) {
		t.Errorf("the options step does not use the prestart's hash:\n%s", dbSetup[1].Script)
	}

	sql := dbFile(t, files, dbAccountsSQL)
	lines := strings.Split(strings.TrimSpace(sql), "\n")
	var stmts []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "--") {
			stmts = append(stmts, l)
		}
	}
	if len(stmts) < 3 || stmts[0] != "SET SESSION sql_log_bin = 0;" || stmts[1] != "FLUSH PRIVILEGES;" {
		t.Fatalf("the accounts SQL must first stop binlogging and load the grant tables:\n%s", sql)
	}
	for _, s := range dbAccountStatements {
		if !slices.Contains(stmts, s+";") {
			t.Errorf("the accounts SQL lacks %q", s)
		}
	}
	for _, s := range []string{
		"ALTER USER `root`@`localhost` IDENTIFIED VIA unix_socket;",
		"CREATE USER IF NOT EXISTS `prometheus`@`localhost` IDENTIFIED VIA unix_socket;",
		"GRANT PROCESS, BINLOG MONITOR, REPLICA MONITOR ON *.* TO `prometheus`@`localhost`;",
		"DELETE FROM mysql.db WHERE Db IN ('test', 'test\\\\_%');",
	} {
		if !slices.Contains(stmts, s) {
			t.Errorf("the accounts SQL lacks %q", s)
		}
	}

	exp := dbFile(t, files, "/etc/default/prometheus-mysqld-exporter")
	if !strings.Contains(exp, "\nDATA_SOURCE_NAME=\"prometheus@unix(/run/mysqld/mysqld.sock)/\"\n") {
		t.Errorf("the exporter does not log in through the socket:\n%s", exp)
	}
	args := regexp.MustCompile(`(?m)^ARGS="([^"]*)"$`).FindStringSubmatch(exp)
	if args == nil {
		t.Fatalf("no ARGS in the exporter's defaults:\n%s", exp)
	}
	for _, f := range []string{"--collect.slave_status", "--collect.binlog_size", "--collect.info_schema.processlist",
		"--collect.engine_innodb_status", "--web.listen-address=:9104"} {
		if !slices.Contains(strings.Fields(args[1]), f) {
			t.Errorf("exporter ARGS lack %s", f)
		}
	}
	if !slices.Equal(files["/etc/default/prometheus-mysqld-exporter"].Restart, []string{"prometheus-mysqld-exporter"}) {
		t.Error("a changed exporter configuration must restart the exporter")
	}
}

// Every shell script of the role parses (sh -n): steps, checks, and the two scripts it installs.
func TestDBScriptsParse(t *testing.T) {
	files := dbRendered(t)
	scripts := map[string]string{dbTune: dbFile(t, files, dbTune), dbPrestart: dbFile(t, files, dbPrestart)}
	for _, s := range dbSetup {
		scripts["step: "+s.Desc] = s.Script
	}
	for _, s := range dbChecks {
		scripts["check: "+s.Desc] = s.Script
	}
	for name, script := range scripts {
		cmd := exec.Command("sh", "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}

// dbRunTune runs the rendered mohd-mariadb-tune --print with the host's facts given.
func dbRunTune(t *testing.T, env ...string) map[string]string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mohd-mariadb-tune")
	if err := os.WriteFile(path, []byte(dbFile(t, dbRendered(t), dbTune)), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", path, "--print")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mohd-mariadb-tune --print %v: %v\n%s", env, err, out)
	}
	vals := dbCnfValues(t, string(out))
	for _, k := range dbTuned {
		if _, ok := vals[k]; !ok {
			t.Fatalf("mohd-mariadb-tune sets no %s:\n%s", k, out)
		}
	}
	if len(vals) != len(dbTuned) {
		t.Fatalf("mohd-mariadb-tune sets %d values, the checks compare %d:\n%s", len(vals), len(dbTuned), out)
	}
	return vals
}

func TestDBTuneSizes(t *testing.T) {
	const MiB, GiB = 1 << 20, 1 << 30
	cases := []struct {
		ram                   int64
		pool, log, conns, tmp int64
		why                   string
	}{
		{512 * MiB, 256 * MiB, 64 * MiB, 100, 16 * MiB, "60% = 307 MiB, down to 64 MiB steps"},
		{200 * MiB, 128 * MiB, 48 * MiB, 100, 16 * MiB, "the pool's floor is 128 MiB, the redo log's 48 MiB"},
		{1 * GiB, 576 * MiB, 144 * MiB, 100, 16 * MiB, "the lab's 1g host"},
		{3 * GiB, 1792 * MiB, 448 * MiB, 256, 48 * MiB, "the lab's 3g host"},
		{8 * GiB, 4864 * MiB, 1216 * MiB, 682, 128 * MiB, "8 GiB is still 60%"},
		{16 * GiB, 11456 * MiB, 2 * GiB, 1000, 256 * MiB, "70% above 8 GiB; redo log and connections at their ceilings"},
		{128 * GiB, 91712 * MiB, 2 * GiB, 1000, 256 * MiB, "a big host"},
	}
	for _, c := range cases {
		v := dbRunTune(t, "MOHD_TUNE_RAM_BYTES="+strconv.FormatInt(c.ram, 10), "MOHD_TUNE_IPV4=10.20.0.11")
		want := map[string]int64{"innodb_buffer_pool_size": c.pool, "innodb_log_file_size": c.log, "max_connections": c.conns,
			"tmp_table_size": c.tmp, "max_heap_table_size": c.tmp}
		for k, w := range want {
			if v[k] != strconv.FormatInt(w, 10) {
				t.Errorf("RAM %d MiB (%s): %s = %s, want %d", c.ram/MiB, c.why, k, v[k], w)
			}
		}
	}
	// Whatever the RAM, the pool is a whole number of 64 MiB (InnoDB's automatic chunk, 1/64 of the pool,
	// divides it: the server runs with exactly the computed value) and never more than 70% of RAM.
	for ram := int64(128 * MiB); ram <= 512*GiB; ram = ram*5/4 + 7*MiB {
		v := dbRunTune(t, "MOHD_TUNE_RAM_BYTES="+strconv.FormatInt(ram, 10), "MOHD_TUNE_IPV4=10.20.0.11")
		pool, _ := strconv.ParseInt(v["innodb_buffer_pool_size"], 10, 64)
		if pool%(64*MiB) != 0 || pool < 128*MiB || (ram > 256*MiB && pool > ram*70/100) {
			t.Errorf("RAM %d: pool %d", ram, pool)
		}
	}
}

func TestDBTuneServerID(t *testing.T) {
	ram := "MOHD_TUNE_RAM_BYTES=1073741824"
	for addr, want := range map[string]string{
		"10.20.0.11":      "169082891", // 10<<24 + 20<<16 + 0<<8 + 11
		"10.20.0.12":      "169082892",
		"192.168.1.1":     "3232235777",
		"255.255.255.255": "4294967295",
	} {
		if got := dbRunTune(t, ram, "MOHD_TUNE_IPV4="+addr)["server_id"]; got != want {
			t.Errorf("%s: server_id %s, want %s", addr, got, want)
		}
	}
	// Without an IPv4 address: the machine-id, unique per clone.
	a := dbRunTune(t, ram, "MOHD_TUNE_IPV4=none", "MOHD_TUNE_MACHINE_ID=0a1b2c3d4e5f60718293a4b5c6d7e8f9")["server_id"]
	b := dbRunTune(t, ram, "MOHD_TUNE_IPV4=none", "MOHD_TUNE_MACHINE_ID=ffeeddccbbaa99887766554433221100")["server_id"]
	if a != "169552957" || b != "4293844428" {
		t.Errorf("server_id from machine-id: %s %s", a, b)
	}
	if z := dbRunTune(t, ram, "MOHD_TUNE_IPV4=none", "MOHD_TUNE_MACHINE_ID=00000000aaaa")["server_id"]; z != "1" {
		t.Errorf("server_id 0 refuses replication; got %s", z)
	}
}
