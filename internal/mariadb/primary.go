package mariadb

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Account is a MariaDB account with the same password on every host it may connect from.
type Account struct {
	User, Password string
	// Hosts are MariaDB host patterns: addresses ("172.30.5.11"), patterns ("172.30.5.%") or networks
	// ("172.30.5.0/255.255.255.0"). Names do not match: the server runs with skip-name-resolve.
	Hosts []string
}

// PrimaryConfig is the database primary of a Moodle site.
type PrimaryConfig struct {
	// BindAddress is the host's private address: web nodes and replicas connect to it.
	BindAddress string
	// Database is Moodle's database (utf8mb4, utf8mb4_unicode_ci).
	Database string
	// App is Moodle's account: the privileges Moodle's installation guide lists, on Database only.
	App Account
	// Replication is the account replicas connect with. Its Hosts must cover every db host of the cluster,
	// the primary's too: after a switchover the old primary replicates from the new one with it (the
	// account reaches every server through replication).
	Replication Account
	// SemiSync makes each commit wait until a replica has it (up to SemiSyncTimeout, default 10 s, after
	// which the primary goes on alone until a replica catches up).
	SemiSync        bool
	SemiSyncTimeout time.Duration
}

// AppPrivileges are what Moodle needs on its database, as its installation guide grants them
// ("GRANT SELECT,INSERT,UPDATE,DELETE,CREATE,CREATE TEMPORARY TABLES,DROP,INDEX,ALTER ON moodle.*"): no
// LOCK TABLES (Moodle takes its locks with GET_LOCK, which needs no privilege), nothing global.
var AppPrivileges = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "CREATE TEMPORARY TABLES", "DROP", "INDEX", "ALTER"}

// ReplicationPrivileges are what a replica's connection needs, GTID and semi-sync included (the replica's
// IO thread reads the binary log and acknowledges over the same connection): REPLICATION SLAVE only.
var ReplicationPrivileges = []string{"REPLICATION SLAVE"}

// Moodle's character set and collation (the db role's server defaults too).
const (
	Charset   = "utf8mb4"
	Collation = "utf8mb4_unicode_ci"
)

func (c PrimaryConfig) validate() error {
	if err := validateIP("primary: bind address", c.BindAddress); err != nil {
		return err
	}
	if !dbRe.MatchString(c.Database) {
		return fmt.Errorf("primary: database name %q: use 1-64 letters, digits or '_'", c.Database)
	}
	if err := c.App.validate("the application account", true); err != nil {
		return err
	}
	if err := c.Replication.validate("the replication account", true); err != nil {
		return err
	}
	if c.App.User == c.Replication.User {
		return fmt.Errorf("the application and replication accounts are both named %q: they need different names (different privileges)", c.App.User)
	}
	if c.SemiSyncTimeout < 0 || (c.SemiSyncTimeout > 0 && c.SemiSyncTimeout < time.Millisecond) {
		return fmt.Errorf("primary: semi-sync timeout %s: give at least 1ms (0 means %s)", c.SemiSyncTimeout, DefaultSemiSyncTimeout)
	}
	return nil
}

func (c PrimaryConfig) site() siteConfig {
	return primarySite(c.BindAddress, c.SemiSync, c.SemiSyncTimeout)
}

func (c PrimaryConfig) accounts() []accountSpec {
	return []accountSpec{
		{what: "application account", acct: c.App, db: c.Database, schema: AppPrivileges},
		{what: "replication account", acct: c.Replication, global: ReplicationPrivileges},
	}
}

// lockName serializes this package's changes to one host (ConfigurePrimary and a SeedReplica, say).
const lockName = "mariadb"

func lock(ctx context.Context, h remote.Host) (func(), error) {
	unlock, err := h.Lock(ctx, lockName)
	if err != nil {
		return nil, err
	}
	return func() { _ = unlock() }, nil
}

// ConfigurePrimary makes h the cluster's primary as c says: the site option file (private address,
// writable, semi-sync master), the database, the application and replication accounts with exactly their
// privileges and passwords, no account of those names for hosts c does not list. Options are applied with
// SET GLOBAL where MariaDB allows it; a restart happens only for the others (the bind address) or when the
// server was not running with its options on disk. Idempotent: changed is false when nothing needed doing.
// Account changes are binary-logged: replicas get them (and need them: Moodle reads there, and a switchover
// makes a replica the primary).
func ConfigurePrimary(ctx context.Context, h remote.Host, c PrimaryConfig) (changed bool, err error) {
	if err := c.validate(); err != nil {
		return false, err
	}
	unlock, err := lock(ctx, h)
	if err != nil {
		return false, err
	}
	defer unlock()

	up, err := mariadbActive(ctx, h)
	if err != nil {
		return false, err
	}
	if !up {
		if err := systemctlMariaDB(ctx, h, "start"); err != nil {
			return false, err
		}
		changed = true
	}
	// A replica must never be made writable in passing: promoting one is Switchover's or Failover's job.
	f, err := readFacts(ctx, h)
	if err != nil {
		return changed, err
	}
	if s := f.defaultSlave(); s != nil && s.Get("Master_Host") != "" {
		return changed, fmt.Errorf("%s replicates from %s: it is a replica; promote it with a switchover (or a failover) before configuring it as the primary", h.Name(), s.Get("Master_Host"))
	}
	res, err := applySite(ctx, h, c.site())
	if err != nil {
		return changed, err
	}
	changed = changed || res.changed

	st, err := readObjects(ctx, h, c)
	if err != nil {
		return changed, err
	}
	_, stmts := planObjects(c, st)
	if len(stmts) == 0 {
		return changed, nil
	}
	err = runSQL(ctx, h, "create the database and converge the application and replication accounts",
		sessionMode+strings.Join(stmts, "\n")+"\n", secretsOf(c)...)
	return true, err
}

func secretsOf(c PrimaryConfig) []string {
	return []string{c.App.Password, NativePasswordHash(c.App.Password), c.Replication.Password, NativePasswordHash(c.Replication.Password)}
}

// PrimaryState is what InspectPrimary found.
type PrimaryState struct {
	// InSync: nothing differs from the configuration (Diffs is empty).
	InSync bool
	// Diffs says, one line each, what differs: the option file, the running options, the database, the
	// accounts and their privileges, replication.
	Diffs []string
	// Running: MariaDB answers (when false, only the option file was read).
	Running bool
	// RestartPending: the options on disk differ from those the running server started with.
	RestartPending bool
	ReadOnly       bool
	// SemiSyncEnabled is rpl_semi_sync_master_enabled; SemiSyncActive is Rpl_semi_sync_master_status: ON
	// while commits wait for a replica's acknowledgement, OFF after a timeout left the primary alone.
	SemiSyncEnabled, SemiSyncActive bool
	// SemiSyncClients is the number of connected semi-sync replicas.
	SemiSyncClients int
	GTIDBinlogPos   string
	ServerID        uint32
	Version         string
	// ReplicatingFrom is the primary this server replicates from, when it is a replica.
	ReplicatingFrom string
}

// InspectPrimary compares h with c and reports the primary's state. It changes nothing.
func InspectPrimary(ctx context.Context, h remote.Host, c PrimaryConfig) (PrimaryState, error) {
	var ps PrimaryState
	if err := c.validate(); err != nil {
		return ps, err
	}
	st, err := readSite(ctx, h)
	if err != nil {
		return ps, err
	}
	ps.Running = st.active
	ps.RestartPending = st.active && !st.inSync()
	if !st.active {
		ps.Diffs = siteDiffs(st, c.site(), nil)
		return ps, nil
	}
	f, err := readFacts(ctx, h)
	if err != nil {
		return ps, err
	}
	ps.ReadOnly = f.readOnly
	ps.SemiSyncEnabled = normValue("rpl_semi_sync_master_enabled", f.vars["rpl_semi_sync_master_enabled"]) == "ON"
	ps.SemiSyncActive = strings.EqualFold(f.status["rpl_semi_sync_master_status"], "ON")
	ps.SemiSyncClients, _ = strconv.Atoi(f.status["rpl_semi_sync_master_clients"])
	ps.GTIDBinlogPos, ps.ServerID, ps.Version = f.binlogPos, f.serverID, f.version
	ps.Diffs = siteDiffs(st, c.site(), f.vars)
	if s := f.defaultSlave(); s != nil && s.Get("Master_Host") != "" {
		ps.ReplicatingFrom = s.Get("Master_Host")
		ps.Diffs = append(ps.Diffs, fmt.Sprintf("this server replicates from %s: it is a replica, not the primary", ps.ReplicatingFrom))
	}
	obj, err := readObjects(ctx, h, c)
	if err != nil {
		return ps, err
	}
	diffs, _ := planObjects(c, obj)
	ps.Diffs = append(ps.Diffs, diffs...)
	ps.InSync = len(ps.Diffs) == 0
	return ps, nil
}

// accountSpec is an account as it must be: its privileges on *.* (besides USAGE) and on one database.
type accountSpec struct {
	what   string
	acct   Account
	global []string
	db     string
	schema []string
}

// accountState is what the server has for one account name.
type accountState struct {
	hosts map[string]hostState // by host, as stored
}

type hostState struct {
	plugin    string
	pwMatches bool
	privs     []privilege
}

// privilege is one row of the server's privilege tables for an account.
type privilege struct {
	kind      string // global, schema, table, column, routine, role
	priv      string // SELECT, ...; the role's name for kind role
	grantable bool
	obj       string // the database pattern, table, column or routine
}

// objectsState is the database and the accounts as the server has them.
type objectsState struct {
	dbExists             bool
	dbCharset, dbCollate string
	accounts             []accountState // in the order of PrimaryConfig.accounts
}

// readObjects reads the database and both accounts (the password hashes travel on stdin).
func readObjects(ctx context.Context, h remote.Host, c PrimaryConfig) (objectsState, error) {
	var st objectsState
	rows, err := querySQL(ctx, h, "read the database's character set", sessionMode+
		"SELECT DEFAULT_CHARACTER_SET_NAME AS cs, DEFAULT_COLLATION_NAME AS co FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "+quoteString(c.Database))
	if err != nil {
		return st, err
	}
	if len(rows) > 0 {
		st.dbExists, st.dbCharset, st.dbCollate = true, rows[0].Get("cs"), rows[0].Get("co")
	}
	for _, spec := range c.accounts() {
		a, err := readAccount(ctx, h, spec.acct)
		if err != nil {
			return st, err
		}
		st.accounts = append(st.accounts, a)
	}
	return st, nil
}

func readAccount(ctx context.Context, h remote.Host, a Account) (accountState, error) {
	st := accountState{hosts: map[string]hostState{}}
	hash := NativePasswordHash(a.Password)
	rows, err := querySQL(ctx, h, fmt.Sprintf("read account %q", a.User), sessionMode+
		"SELECT Host AS host, IFNULL(JSON_VALUE(Priv, '$.plugin'), '') AS plugin, "+
		"IFNULL(JSON_VALUE(Priv, '$.authentication_string'), '') = "+quoteString(hash)+" AS pw "+
		"FROM mysql.global_priv WHERE User = "+quoteString(a.User), hash)
	if err != nil {
		return st, err
	}
	if len(rows) == 0 {
		return st, nil
	}
	var grantees []string
	byGrantee := map[string]string{}
	for _, r := range rows {
		host := r.Get("host")
		st.hosts[host] = hostState{plugin: r.Get("plugin"), pwMatches: r.Get("pw") == "1"}
		g := grantee(a.User, host)
		grantees = append(grantees, quoteString(g))
		byGrantee[g] = host
	}
	in := strings.Join(grantees, ", ")
	user := quoteString(a.User)
	rows, err = querySQL(ctx, h, fmt.Sprintf("read the privileges of account %q", a.User), sessionMode+
		"SELECT GRANTEE AS g, 'global' AS kind, PRIVILEGE_TYPE AS priv, IS_GRANTABLE AS grantable, '' AS obj FROM information_schema.USER_PRIVILEGES WHERE GRANTEE IN ("+in+")\n"+
		"UNION ALL SELECT GRANTEE, 'schema', PRIVILEGE_TYPE, IS_GRANTABLE, TABLE_SCHEMA FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE IN ("+in+")\n"+
		"UNION ALL SELECT GRANTEE, 'table', PRIVILEGE_TYPE, IS_GRANTABLE, CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE IN ("+in+")\n"+
		"UNION ALL SELECT GRANTEE, 'column', PRIVILEGE_TYPE, IS_GRANTABLE, CONCAT(TABLE_SCHEMA, '.', TABLE_NAME, '.', COLUMN_NAME) FROM information_schema.COLUMN_PRIVILEGES WHERE GRANTEE IN ("+in+")\n"+
		"UNION ALL SELECT CONCAT('''', User, '''@''', Host, ''''), 'routine', Proc_priv, 'NO', CONCAT(Db, '.', Routine_name) FROM mysql.procs_priv WHERE User = "+user+"\n"+
		"UNION ALL SELECT CONCAT('''', User, '''@''', Host, ''''), 'role', Role, IF(Admin_option = 'Y', 'YES', 'NO'), '' FROM mysql.roles_mapping WHERE User = "+user+"\n")
	if err != nil {
		return st, err
	}
	for _, r := range rows {
		host, ok := byGrantee[r.Get("g")]
		if !ok {
			continue
		}
		hs := st.hosts[host]
		hs.privs = append(hs.privs, privilege{kind: r.Get("kind"), priv: r.Get("priv"), grantable: r.Get("grantable") == "YES", obj: r.Get("obj")})
		st.hosts[host] = hs
	}
	return st, nil
}

// planObjects compares the server's database and accounts with c: what differs (for InspectPrimary) and the
// statements that converge them (for ConfigurePrimary).
func planObjects(c PrimaryConfig, st objectsState) (diffs, stmts []string) {
	db := quoteIdent(c.Database)
	switch {
	case !st.dbExists:
		diffs = append(diffs, fmt.Sprintf("database %s does not exist", db))
		stmts = append(stmts, fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s CHARACTER SET %s COLLATE %s;", db, Charset, Collation))
	case st.dbCharset != Charset || st.dbCollate != Collation:
		diffs = append(diffs, fmt.Sprintf("database %s defaults to %s / %s, want %s / %s", db, st.dbCharset, st.dbCollate, Charset, Collation))
		// The default of new tables only: existing ones keep theirs (Moodle's admin/cli/mysql_collation.php converts them).
		stmts = append(stmts, fmt.Sprintf("ALTER DATABASE %s CHARACTER SET %s COLLATE %s;", db, Charset, Collation))
	}
	for i, spec := range c.accounts() {
		var a accountState
		if i < len(st.accounts) {
			a = st.accounts[i]
		}
		d, s := spec.plan(a)
		diffs, stmts = append(diffs, d...), append(stmts, s...)
	}
	return diffs, stmts
}

// plan converges one account name: every listed host with the password and exactly the privileges, no
// other host.
func (s accountSpec) plan(st accountState) (diffs, stmts []string) {
	hash := NativePasswordHash(s.acct.Password)
	want := s.acct.hosts()
	for _, host := range want {
		acct := account(s.acct.User, host)
		name := grantee(s.acct.User, host)
		hs, exists := st.hosts[host]
		if !exists {
			diffs = append(diffs, fmt.Sprintf("%s %s does not exist", s.what, name))
			stmts = append(stmts, fmt.Sprintf("CREATE USER IF NOT EXISTS %s IDENTIFIED BY PASSWORD %s;", acct, quoteString(hash)))
			stmts = append(stmts, s.grants(acct)...)
			continue
		}
		if hs.plugin != "mysql_native_password" || !hs.pwMatches {
			if hs.plugin != "mysql_native_password" {
				diffs = append(diffs, fmt.Sprintf("%s %s authenticates with %q, want mysql_native_password and its password", s.what, name, hs.plugin))
			} else {
				diffs = append(diffs, fmt.Sprintf("%s %s has another password", s.what, name))
			}
			stmts = append(stmts, fmt.Sprintf("ALTER USER %s IDENTIFIED BY PASSWORD %s;", acct, quoteString(hash)))
		}
		missing, extra, roles := s.compare(hs.privs)
		if len(extra) > 0 || len(roles) > 0 {
			all := slices.Clone(extra)
			for _, r := range roles {
				all = append(all, "role "+r)
			}
			diffs = append(diffs, fmt.Sprintf("%s %s has privileges beyond its own: %s", s.what, name, strings.Join(all, "; ")))
			for _, r := range roles {
				stmts = append(stmts, fmt.Sprintf("REVOKE %s FROM %s;", quoteIdent(r), acct))
			}
			if len(extra) > 0 {
				// Everything goes, then the account's own privileges come back: simpler and surer than
				// revoking each extra privilege at its level.
				stmts = append(stmts, fmt.Sprintf("REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s;", acct))
				stmts = append(stmts, s.grants(acct)...)
				continue
			}
		}
		if len(missing) > 0 {
			diffs = append(diffs, fmt.Sprintf("%s %s lacks %s", s.what, name, strings.Join(missing, "; ")))
			stmts = append(stmts, s.grants(acct)...)
		}
	}
	var extraHosts []string
	for host := range st.hosts {
		if !slices.Contains(want, strings.ToLower(host)) {
			extraHosts = append(extraHosts, host)
		}
	}
	slices.Sort(extraHosts)
	for _, host := range extraHosts {
		diffs = append(diffs, fmt.Sprintf("%s %s exists for a host that is not listed", s.what, grantee(s.acct.User, host)))
		stmts = append(stmts, fmt.Sprintf("DROP USER IF EXISTS %s;", account(s.acct.User, host)))
	}
	return diffs, stmts
}

// grants are the GRANT statements giving acct its privileges (GRANT adds: granting what is there is harmless).
func (s accountSpec) grants(acct string) []string {
	var out []string
	if len(s.global) > 0 {
		out = append(out, fmt.Sprintf("GRANT %s ON *.* TO %s;", strings.Join(s.global, ", "), acct))
	}
	if s.db != "" {
		out = append(out, fmt.Sprintf("GRANT %s ON %s.* TO %s;", strings.Join(s.schema, ", "), quoteIdent(grantDB(s.db)), acct))
	}
	return out
}

// compare sorts an account's privilege rows into missing ones, extra ones and granted roles.
func (s accountSpec) compare(have []privilege) (missing, extra, roles []string) {
	pattern := grantDB(s.db)
	haveGlobal, haveSchema := map[string]bool{}, map[string]bool{}
	for _, p := range have {
		switch {
		case p.kind == "role":
			roles = append(roles, p.priv)
			continue
		case p.grantable && p.kind != "routine":
			extra = append(extra, fmt.Sprintf("GRANT OPTION (%s %s)", p.kind, strings.TrimSpace(p.obj+" "+p.priv)))
		}
		switch {
		case p.kind == "global" && p.priv == "USAGE":
		case p.kind == "global" && slices.Contains(s.global, p.priv):
			haveGlobal[p.priv] = true
		case p.kind == "schema" && s.db != "" && p.obj == pattern && slices.Contains(s.schema, p.priv):
			haveSchema[p.priv] = true
		default:
			where := "on *.*"
			if p.kind != "global" {
				where = "on " + p.kind + " " + p.obj
			}
			extra = append(extra, p.priv+" "+where)
		}
	}
	for _, p := range s.global {
		if !haveGlobal[p] {
			missing = append(missing, p+" on *.*")
		}
	}
	for _, p := range s.schema {
		if !haveSchema[p] {
			missing = append(missing, p+" on "+quoteIdent(pattern)+".*")
		}
	}
	return missing, extra, roles
}
