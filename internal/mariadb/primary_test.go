package mariadb

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

func testPrimaryConfig() PrimaryConfig {
	return PrimaryConfig{
		BindAddress: "172.30.5.10", Database: "moodle_db",
		App:         Account{User: "moodle", Password: `p'w\x`, Hosts: []string{"172.30.5.%", "10.0.0.0/255.255.255.0"}},
		Replication: Account{User: "repl", Password: "r3pl", Hosts: []string{"172.30.5.%"}},
		SemiSync:    true, SemiSyncTimeout: 5 * time.Second,
	}
}

// appPrivs are the privilege rows of an application account that has exactly what it needs.
func appPrivs() []privilege {
	p := []privilege{{kind: "global", priv: "USAGE"}}
	for _, s := range AppPrivileges {
		p = append(p, privilege{kind: "schema", priv: s, obj: `moodle\_db`})
	}
	return p
}

func inSyncObjects(c PrimaryConfig) objectsState {
	app := accountState{hosts: map[string]hostState{}}
	for _, h := range c.App.hosts() {
		app.hosts[h] = hostState{plugin: "mysql_native_password", pwMatches: true, privs: appPrivs()}
	}
	repl := accountState{hosts: map[string]hostState{"172.30.5.%": {plugin: "mysql_native_password", pwMatches: true,
		privs: []privilege{{kind: "global", priv: "REPLICATION SLAVE"}}}}}
	return objectsState{dbExists: true, dbCharset: Charset, dbCollate: Collation, accounts: []accountState{app, repl}}
}

func TestPlanObjects(t *testing.T) {
	c := testPrimaryConfig()
	appHash := NativePasswordHash(c.App.Password)

	t.Run("fresh server", func(t *testing.T) {
		diffs, stmts := planObjects(c, objectsState{})
		want := []string{
			"CREATE DATABASE IF NOT EXISTS `moodle_db` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;",
			"CREATE USER IF NOT EXISTS `moodle`@`10.0.0.0/255.255.255.0` IDENTIFIED BY PASSWORD '" + appHash + "';",
			"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, CREATE TEMPORARY TABLES, DROP, INDEX, ALTER ON `moodle\\_db`.* TO `moodle`@`10.0.0.0/255.255.255.0`;",
			"CREATE USER IF NOT EXISTS `moodle`@`172.30.5.%` IDENTIFIED BY PASSWORD '" + appHash + "';",
			"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, CREATE TEMPORARY TABLES, DROP, INDEX, ALTER ON `moodle\\_db`.* TO `moodle`@`172.30.5.%`;",
			"CREATE USER IF NOT EXISTS `repl`@`172.30.5.%` IDENTIFIED BY PASSWORD '" + NativePasswordHash("r3pl") + "';",
			"GRANT REPLICATION SLAVE ON *.* TO `repl`@`172.30.5.%`;",
		}
		if !slices.Equal(stmts, want) {
			t.Errorf("statements:\n%s\nwant:\n%s", strings.Join(stmts, "\n"), strings.Join(want, "\n"))
		}
		if len(diffs) != 4 {
			t.Errorf("diffs: %q", diffs)
		}
		// Only hashes: no password in any statement (the binary log keeps them).
		for _, s := range stmts {
			if strings.Contains(s, c.App.Password) || strings.Contains(s, escapeString(c.App.Password)) || strings.Contains(s, "r3pl'") {
				t.Errorf("a password in %s", s)
			}
		}
	})
	t.Run("in sync", func(t *testing.T) {
		if diffs, stmts := planObjects(c, inSyncObjects(c)); len(diffs)+len(stmts) > 0 {
			t.Errorf("%q %q", diffs, stmts)
		}
	})
	t.Run("drift", func(t *testing.T) {
		st := inSyncObjects(c)
		st.dbCollate = "utf8mb4_general_ci"
		app := st.accounts[0]
		// 172.30.5.%: another password and no INDEX; 10.0.0.0/...: SUPER and a table grant; and a host that
		// is no longer listed.
		h := app.hosts["172.30.5.%"]
		h.pwMatches = false
		h.privs = slices.DeleteFunc(appPrivs(), func(p privilege) bool { return p.priv == "INDEX" })
		app.hosts["172.30.5.%"] = h
		h = app.hosts["10.0.0.0/255.255.255.0"]
		h.privs = append(appPrivs(), privilege{kind: "global", priv: "SUPER"}, privilege{kind: "table", priv: "SELECT", obj: "mysql.user"})
		app.hosts["10.0.0.0/255.255.255.0"] = h
		app.hosts["%"] = hostState{plugin: "mysql_native_password", pwMatches: true}
		// The replication account: another plugin, a role, a wildcard grant on the database.
		repl := st.accounts[1]
		repl.hosts["172.30.5.%"] = hostState{plugin: "ed25519", privs: []privilege{{kind: "global", priv: "REPLICATION SLAVE"}, {kind: "role", priv: "dba"}}}
		diffs, stmts := planObjects(c, st)
		t.Logf("diffs:\n%s", strings.Join(diffs, "\n"))
		for _, want := range []string{
			"ALTER DATABASE `moodle_db` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;",
			"ALTER USER `moodle`@`172.30.5.%` IDENTIFIED BY PASSWORD '" + appHash + "';",
			"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, CREATE TEMPORARY TABLES, DROP, INDEX, ALTER ON `moodle\\_db`.* TO `moodle`@`172.30.5.%`;",
			"REVOKE ALL PRIVILEGES, GRANT OPTION FROM `moodle`@`10.0.0.0/255.255.255.0`;",
			"DROP USER IF EXISTS `moodle`@`%`;",
			"ALTER USER `repl`@`172.30.5.%` IDENTIFIED BY PASSWORD '" + NativePasswordHash("r3pl") + "';",
			"REVOKE `dba` FROM `repl`@`172.30.5.%`;",
		} {
			if !slices.Contains(stmts, want) {
				t.Errorf("missing statement %s\nin:\n%s", want, strings.Join(stmts, "\n"))
			}
		}
		// Re-granting follows the revocation.
		i := slices.Index(stmts, "REVOKE ALL PRIVILEGES, GRANT OPTION FROM `moodle`@`10.0.0.0/255.255.255.0`;")
		if i < 0 || i+1 >= len(stmts) || !strings.HasPrefix(stmts[i+1], "GRANT SELECT") {
			t.Errorf("no grant after the revocation: %q", stmts)
		}
		for _, want := range []string{"lacks INDEX on `moodle\\_db`.*", "has another password", "SUPER on *.*", "SELECT on table mysql.user",
			"'moodle'@'%' exists for a host that is not listed", `authenticates with "ed25519"`, "role dba", "utf8mb4_general_ci"} {
			if !slices.ContainsFunc(diffs, func(d string) bool { return strings.Contains(d, want) }) {
				t.Errorf("no diff mentions %q", want)
			}
		}
	})
	t.Run("unescaped wildcard grant is extra", func(t *testing.T) {
		st := inSyncObjects(c)
		h := st.accounts[0].hosts["172.30.5.%"]
		h.privs = append(h.privs, privilege{kind: "schema", priv: "SELECT", obj: "moodle_db"})
		st.accounts[0].hosts["172.30.5.%"] = h
		if diffs, _ := planObjects(c, st); len(diffs) != 1 || !strings.Contains(diffs[0], "SELECT on schema moodle_db") {
			t.Errorf("%q", diffs)
		}
	})
}

func TestConfigurePrimaryRefusesReplica(t *testing.T) {
	f := newFakeDB("root@db2:22")
	f.answerXML("SHOW ALL SLAVES STATUS", factsRow(11, true, "", "", "0-10-5", "0-10-5", "172.30.5.11", false, true),
		slaveRow("172.30.5.10", "Yes", "Yes", "0-10-5", ""))
	_, err := ConfigurePrimary(context.Background(), f, testPrimaryConfig())
	if err == nil || !strings.Contains(err.Error(), "replicates from 172.30.5.10") {
		t.Fatalf("configuring a replica as the primary: %v", err)
	}
	if len(f.Uploads()) > 0 || len(f.sentContaining("SET GLOBAL")) > 0 {
		t.Error("the replica was changed")
	}
}

func TestConfigurePrimarySendsHashesOnly(t *testing.T) {
	c := testPrimaryConfig()
	f := newFakeDB("root@db1:22")
	f.answerXML("SHOW ALL SLAVES STATUS", factsRow(10, false, "", "", "", "", "127.0.0.1", false, false))
	answerRunning(f, c.site())
	changed, err := ConfigurePrimary(context.Background(), f, c)
	if err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	if f.LocksTaken()[0] != "mariadb" {
		t.Errorf("locks: %v", f.LocksTaken())
	}
	if f.restarts != 1 {
		t.Errorf("a new bind address needs one restart, got %d", f.restarts)
	}
	var accounts []string
	for _, call := range f.Calls() {
		if strings.Contains(string(call.Stdin), "CREATE USER") {
			accounts = append(accounts, string(call.Stdin))
			for _, s := range []string{c.App.Password, NativePasswordHash(c.App.Password), escapeString(c.App.Password), NativePasswordHash(c.Replication.Password)} {
				if !slices.Contains(call.Secrets, s) {
					t.Errorf("%q is not a listed secret", s)
				}
			}
		}
		if strings.Contains(call.Command, NativePasswordHash(c.App.Password)) {
			t.Errorf("a hash on the command line: %s", call.Command)
		}
	}
	if len(accounts) != 1 || strings.Contains(accounts[0], c.App.Password) || !strings.HasPrefix(accounts[0], sessionMode) {
		t.Errorf("account script: %q", accounts)
	}
}
