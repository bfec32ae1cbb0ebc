package roles

import (
	"fmt"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// The db role: MariaDB 10.11 for Moodle, ready to be wired by the provider as a GTID primary or replica.
//
// What is baked is identical on every db host. What depends on the machine (RAM-derived sizes, server_id)
// is computed when the host boots, by mohd-mariadb-tune.service, so that clones of one image differ. What
// depends on the site (the private bind address, read_only, semi-sync, replication users and passwords) is
// written later by the provider in /etc/mysql/mariadb.conf.d/70-mohd-site.cnf and over SQL: never here.
const (
	dbHostCnf     = "/etc/mysql/mariadb.conf.d/60-mohd-host.cnf"
	dbTune        = "/usr/local/sbin/mohd-mariadb-tune"
	dbPrestart    = "/usr/local/sbin/mohd-mariadb-prestart"
	dbAccountsSQL = "/usr/local/share/mohd/mariadb-accounts.sql"
	dbDropIn      = "/etc/systemd/system/mariadb.service.d/50-mohd.conf"
	// DBConfigStamp holds the hash of the server options the running MariaDB started with (written by
	// mohd-mariadb-prestart at each start); Apply restarts MariaDB when the options on disk hash otherwise.
	DBConfigStamp = "/run/mohd/mariadb-options.sha256"
	// DBConfigHash prints the hash of the effective server options: every [mysqld]/[server]/[mariadb] value
	// of every option file, in order. HOME is the mysql user's (no ~/.my.cnf), whoever runs it.
	DBConfigHash = "env HOME=/nonexistent mariadbd --print-defaults | sha256sum | cut -d' ' -f1"
	// dbDatadirRecord says, per boot, whether /var/lib/mysql is a separate filesystem (mohd-mariadb-prestart).
	dbDatadirRecord = "/run/mohd/mariadb-datadir"
)

// dbAccountStatements bring a server's local accounts to MOHD's state; each is idempotent. They run with
// sql_log_bin=0 (mariadb-accounts.sql): through mariadb-install-db on a new data disk, and by Apply.
// Apply's step also drops, after listing them, anonymous accounts, root accounts other than root@localhost,
// and the test database when it is empty (mariadb-install-db creates none of them here).
var dbAccountStatements = []string{
	// mysql_secure_installation, without a password: root logs in as the system's root, through the socket.
	"ALTER USER `root`@`localhost` IDENTIFIED VIA unix_socket",
	// The grants old installers gave everyone on test and test_* (stored as the pattern 'test\_%'); exact
	// matches only, so that a site's real database named test_something keeps its grants.
	`DELETE FROM mysql.db WHERE Db IN ('test', 'test\\_%')`,
	// The exporter runs as the system user prometheus: socket authentication, no password anywhere.
	"CREATE USER IF NOT EXISTS `prometheus`@`localhost` IDENTIFIED VIA unix_socket",
	"ALTER USER `prometheus`@`localhost` IDENTIFIED VIA unix_socket",
	// PROCESS: processlist and InnoDB status; BINLOG MONITOR (formerly REPLICATION CLIENT): SHOW BINARY
	// LOGS; REPLICA MONITOR: SHOW SLAVE STATUS (MariaDB >= 10.5.9 no longer lets REPLICATION CLIENT do it).
	"GRANT PROCESS, BINLOG MONITOR, REPLICA MONITOR ON *.* TO `prometheus`@`localhost`",
	"GRANT SELECT ON `performance_schema`.* TO `prometheus`@`localhost`",
	"FLUSH PRIVILEGES",
}

// dbExporterArgs are prometheus-mysqld-exporter 0.14's flags: the defaults plus replication, binary log,
// connection and InnoDB collectors.
var dbExporterArgs = []string{
	"--web.listen-address=:9104",
	"--collect.global_status",
	"--collect.global_variables",
	"--collect.slave_status",
	"--collect.binlog_size",
	"--collect.info_schema.processlist",
	"--collect.info_schema.innodb_metrics",
	"--collect.engine_innodb_status",
}

// dbExporterCollectors are the collectors whose success the checks require.
var dbExporterCollectors = []string{"global_status", "slave_status", "binlog_size", "info_schema.processlist", "engine_innodb_status"}

// dbTuned are the variables 60-mohd-host.cnf sets.
var dbTuned = []string{"innodb_buffer_pool_size", "innodb_log_file_size", "max_connections", "tmp_table_size", "max_heap_table_size", "server_id"}

type dbData struct {
	Params
	AccountsSQL        string
	AccountStatements  []string
	ConfigStamp        string
	ConfigHash         string
	ExporterArgs       string
	ExporterPrivileges string
}

func dbFiles(p Params) ([]File, error) {
	d := dbData{
		Params:             p,
		AccountsSQL:        dbAccountsSQL,
		AccountStatements:  dbAccountStatements,
		ConfigStamp:        DBConfigStamp,
		ConfigHash:         DBConfigHash,
		ExporterArgs:       strings.Join(dbExporterArgs, " "),
		ExporterPrivileges: "PROCESS, BINLOG MONITOR and REPLICA MONITOR on *.*, and SELECT on performance_schema.*",
	}
	return renderAll(d,
		// MariaDB is never restarted by the engine for these: the step "restart MariaDB when its options
		// changed" does it once, whichever of them (or 60-mohd-host.cnf, or the provider's drop-in) changed.
		fileSpec{Path: "/etc/mysql/mariadb.conf.d/55-mohd-server.cnf", Template: "db/55-mohd-server.cnf"},
		fileSpec{Path: dbTune, Template: "db/mohd-mariadb-tune", Mode: 0o755},
		fileSpec{Path: dbPrestart, Template: "db/mohd-mariadb-prestart", Mode: 0o755},
		fileSpec{Path: dbAccountsSQL, Template: "db/mariadb-accounts.sql"},
		fileSpec{Path: dbDropIn, Template: "db/mariadb-mohd.conf"},
		fileSpec{Path: "/etc/systemd/system/mohd-mariadb-tune.service", Template: "db/mohd-mariadb-tune.service",
			Restart: []string{"mohd-mariadb-tune"}},
		fileSpec{Path: "/etc/default/prometheus-mysqld-exporter", Template: "db/prometheus-mysqld-exporter.default",
			Restart: []string{"prometheus-mysqld-exporter"}},
	)
}

// dbSQL runs one query through the socket as root (unix_socket authentication) without column names.
const dbSQL = `q() { mariadb -N -B -e "$1"; }
`

var dbSetup = []Step{
	{Desc: "size MariaDB for this host (mohd-mariadb-tune)", Script: dbTune},
	{Desc: "restart MariaDB when its options changed", Script: fmt.Sprintf(`# Units first: the start must run mohd-mariadb-prestart, which records the options started with.
if [ "$(systemctl show -p NeedDaemonReload --value mariadb.service)" = yes ] ||
	! systemctl show -p DropInPaths --value mariadb.service | grep -q %[1]s; then
	systemctl daemon-reload
fi
if ! systemctl is-active --quiet mariadb.service; then
	systemctl start mariadb.service
	echo changed
	exit 0
fi
want=$(%[2]s)
have=$(cat %[3]s 2>/dev/null || true)
[ "$want" != "$have" ] || exit 0
systemctl restart mariadb.service
echo changed`, remote.Quote(dbDropIn), DBConfigHash, DBConfigStamp)},
	{Desc: "secure the accounts (no anonymous user, no test database, root through unix_socket only) and give the exporter its own", Script: dbSQL + fmt.Sprintf(`state() {
	q "SELECT User, Host, JSON_REMOVE(Priv, '$.password_last_changed') FROM mysql.global_priv ORDER BY User, Host"
	q "SELECT * FROM mysql.db ORDER BY Host, Db, User"
	q "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'test'"
}
before=$(state)
drops=$(q "SELECT CONCAT('DROP USER ', QUOTE(User), '@', QUOTE(Host), ';') FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost')")
# The test database goes when it is empty, as the installers create it; one holding tables is somebody's
# data: it stays, and the checks fail until a person decides.
if [ "$(q "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'test'")" = 1 ] &&
	[ "$(q "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'test'")" = 0 ]; then
	drops="$drops DROP DATABASE test;"
fi
{ cat %s; echo "$drops"; } | mariadb
[ "$(state)" = "$before" ] || echo changed`, dbAccountsSQL)},
	// The exporter starts at installation, before its account and settings exist, and fails until systemd
	// gives up; clear that so the services step can start it.
	{Desc: "clear the exporter's failed start from its installation", Script: `if systemctl is-failed --quiet prometheus-mysqld-exporter; then
	systemctl reset-failed prometheus-mysqld-exporter
fi`},
}

var dbChecks = []Step{
	{Desc: "mariadbd accepts its configuration (mariadbd --help --verbose) and uses /var/lib/mysql", Script: `out=$(mariadbd --help --verbose 2>&1) || { echo "$out" | tail -n 5 >&2; exit 1; }
echo "$out" | grep -Eq '^datadir[[:space:]]+/var/lib/mysql/$' || { echo "the datadir is not /var/lib/mysql" >&2; exit 1; }`},
	{Desc: "MariaDB answers SELECT 1 through its unix socket", Script: dbSQL + `test "$(q 'SELECT 1')" = 1`},
	{Desc: "binary log, GTID and durable commits are set for replication", Script: dbSQL + `v=$(q "SELECT CONCAT_WS(' ', @@log_bin, @@binlog_format, @@gtid_strict_mode, @@log_slave_updates, @@sync_binlog, @@innodb_flush_log_at_trx_commit, @@binlog_expire_logs_seconds, @@log_bin_basename, @@relay_log_basename)")
want='ON ROW ON ON 1 1 604800 /var/lib/mysql/mariadb-bin /var/lib/mysql/relay-bin'
[ "$v" = "$want" ] || { echo "log_bin binlog_format gtid_strict_mode log_slave_updates sync_binlog innodb_flush_log_at_trx_commit binlog_expire_logs_seconds log_bin_basename relay_log_basename: got '$v', want '$want'" >&2; exit 1; }`},
	{Desc: "the running server has the sizes and server_id mohd-mariadb-tune computed for this host", Script: dbSQL + fmt.Sprintf(`%[1]s --print | cmp -s - %[2]s || { echo "%[2]s is not what mohd-mariadb-tune computes for this host now" >&2; exit 1; }
# What the server was configured with: the tuned values unless a later drop-in overrides them.
conf=$(mariadbd --help --verbose 2>/dev/null)
fail=
for var in %[3]s; do
	opt=$(echo "$var" | tr _ -)
	want=$(echo "$conf" | awk -v o="$opt" '$1 == o {print $2; exit}')
	have=$(q "SELECT @@$var")
	[ "$want" = "$have" ] || { echo "$var: the server runs with $have, its configuration says $want" >&2; fail=1; }
done
[ -z "$fail" ]`, dbTune, dbHostCnf, strings.Join(dbTuned, " "))},
	{Desc: "Moodle's character set, collation and server settings", Script: dbSQL + `v=$(q "SELECT CONCAT_WS(' ', @@character_set_server, @@collation_server, @@innodb_file_per_table, @@max_allowed_packet, @@local_infile, @@skip_name_resolve)")
want='utf8mb4 utf8mb4_unicode_ci ON 67108864 OFF ON'
[ "$v" = "$want" ] || { echo "character_set_server collation_server innodb_file_per_table max_allowed_packet local_infile skip_name_resolve: got '$v', want '$want'" >&2; exit 1; }`},
	{Desc: "no anonymous account, no remote root, no test database, root through unix_socket only, no empty password", Script: dbSQL + `bad=$(q "SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost')")
[ -z "$bad" ] || { echo "accounts to remove: $bad" >&2; exit 1; }
[ "$(q "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'test'")" = 0 ] || { echo "a database named test exists (it holds tables, so MOHD did not drop it)" >&2; exit 1; }
[ "$(q "SELECT COUNT(*) FROM mysql.db WHERE Db IN ('test', 'test\\\\_%')")" = 0 ] || { echo "the installers' grants on test and test_* remain" >&2; exit 1; }
root=$(q 'SHOW CREATE USER root@localhost' | tr -d '\140')
[ "$root" = 'CREATE USER root@localhost IDENTIFIED VIA unix_socket' ] || { echo "root@localhost authenticates otherwise than through unix_socket alone: $root" >&2; exit 1; }
empty=$(q "SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.global_priv WHERE IFNULL(JSON_VALUE(Priv, '$.plugin'), '') IN ('', 'mysql_native_password', 'mysql_old_password', 'ed25519') AND IFNULL(JSON_VALUE(Priv, '$.authentication_string'), '') = '' AND IFNULL(JSON_EXTRACT(Priv, '$.account_locked'), 'false') <> 'true' AND IFNULL(JSON_EXTRACT(Priv, '$.is_role'), 'false') <> 'true'")
[ -z "$empty" ] || { echo "accounts with an empty password: $empty" >&2; exit 1; }`},
	{Desc: "semi-synchronous replication is built in (the provider turns it on)", Script: dbSQL + `n=$(q "SELECT COUNT(*) FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME IN ('RPL_SEMI_SYNC_MASTER_ENABLED', 'RPL_SEMI_SYNC_SLAVE_ENABLED')")
[ "$n" = 2 ] || { echo "rpl_semi_sync_master_enabled / rpl_semi_sync_slave_enabled missing" >&2; exit 1; }`},
	{Desc: "the exporter serves MariaDB, replication and binary log metrics", Script: fmt.Sprintf(`m=
for i in $(seq 40); do
	m=$(curl -fsS http://127.0.0.1:9104/metrics 2>/dev/null) && echo "$m" | grep -qx 'mysql_up 1' && break
	sleep 0.25
done
echo "$m" | grep -qx 'mysql_up 1' || { echo "mysql_up is not 1: the exporter cannot log in" >&2; exit 1; }
# prometheus-mysqld-exporter 0.14 reports a failed collector (a missing privilege, say) as a scrape error.
echo "$m" | grep -qx 'mysql_exporter_last_scrape_error 0' || { echo "the exporter's last scrape failed: journalctl -u prometheus-mysqld-exporter" >&2; exit 1; }
fail=
for c in %s; do
	echo "$m" | grep -qF "mysql_exporter_collector_duration_seconds{collector=\"collect.$c\"}" || { echo "collector $c is not enabled" >&2; fail=1; }
done
echo "$m" | grep -q '^mysql_binlog_files ' || { echo "no binary log metrics" >&2; fail=1; }
[ -z "$fail" ]`, strings.Join(dbExporterCollectors, " "))},
	{Desc: "the data directory is MariaDB's and whether it is a separate filesystem is recorded", Script: dbSQL + fmt.Sprintf(`[ "$(stat -c %%U /var/lib/mysql)" = mysql ] || { echo "/var/lib/mysql is not owned by mysql" >&2; exit 1; }
[ "$(q 'SELECT @@datadir')" = /var/lib/mysql/ ] || { echo "the server's datadir is not /var/lib/mysql" >&2; exit 1; }
test -s %[1]s || { echo "%[1]s is missing: mohd-mariadb-prestart did not run" >&2; exit 1; }
# Not a failure: in an image /var/lib/mysql is a plain directory; on a VM the provider mounts the database's
# disk there and enforces it.
findmnt --mountpoint /var/lib/mysql >/dev/null || echo "WARNING: /var/lib/mysql is not a separate filesystem ($(cat %[1]s))" >&2`, dbDatadirRecord)},
}

func init() {
	register(&Role{
		Name:        "db",
		Summary:     "MariaDB 10.11 for Moodle: binary log and GTID ready for a primary and a replica, sized per host at boot",
		Packages:    []string{"mariadb-server", "mariadb-client", "mariadb-backup", "prometheus-mysqld-exporter", "iproute2"},
		KeyPackages: []string{"mariadb-server", "mariadb-backup", "prometheus-mysqld-exporter"},
		Ports: []Port{
			// Mariabackup streams over SSH, so no port for it.
			{Port: 3306, What: "MariaDB (web nodes, the replica)"},
			{Port: 9104, What: "MariaDB exporter"},
		},
		Files:    dbFiles,
		Setup:    dbSetup,
		Services: []string{"mohd-mariadb-tune", "mariadb", "prometheus-mysqld-exporter"},
		Checks:   dbChecks,
	})
}
