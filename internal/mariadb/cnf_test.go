package mariadb

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
)

func TestRenderSite(t *testing.T) {
	got := string(primarySite("172.30.5.10", true, 5*time.Second).render())
	want := `# Managed by MOHD (Terraform provider): this host's settings as the cluster's database primary.
# Rewritten by every apply: a change made here shows as drift and is reverted. Local overrides belong in
# 80-*.cnf .. 99-*.cnf, read after this file.
[mysqld]
bind-address = 172.30.5.10
read_only = OFF
rpl_semi_sync_master_enabled = ON
rpl_semi_sync_master_timeout = 5000
rpl_semi_sync_master_wait_point = AFTER_SYNC
rpl_semi_sync_slave_enabled = ON
`
	if got != want {
		t.Errorf("primary site file:\n%s\nwant:\n%s", got, want)
	}
	got = string(replicaSite("172.30.5.11", true).render())
	for _, line := range []string{"database replica.", "\nbind-address = 172.30.5.11\n", "\nread_only = ON\n", "\nrpl_semi_sync_master_enabled = OFF\n", "\nrpl_semi_sync_slave_enabled = ON\n"} {
		if !strings.Contains(got, line) {
			t.Errorf("replica site file lacks %q:\n%s", line, got)
		}
	}
	if got := primarySite("10.0.0.1", false, 0); got.get("rpl_semi_sync_master_timeout") != "10000" || got.get("rpl_semi_sync_master_enabled") != "OFF" {
		t.Errorf("defaults without semi-sync: %+v", got)
	}
}

func TestParseSiteAndChangedKeys(t *testing.T) {
	p := primarySite("172.30.5.10", true, 5*time.Second)
	opts, ok := parseSite(string(p.render()))
	if !ok || len(changedKeys(opts, p)) != 0 {
		t.Fatalf("a rendered file does not parse back: %v %v %v", opts, ok, changedKeys(opts, p))
	}
	r := replicaSite("172.30.5.10", true)
	if got := changedKeys(opts, r); !slices.Equal(got, []string{"read_only", "rpl_semi_sync_master_enabled", "rpl_semi_sync_master_timeout", "rpl_semi_sync_master_wait_point"}) {
		t.Errorf("primary to replica changes %v", got)
	}
	if !allDynamic(changedKeys(opts, r)) {
		t.Error("a role change of the same host is not dynamic")
	}
	if allDynamic(changedKeys(opts, primarySite("172.30.5.99", true, 5*time.Second))) {
		t.Error("a new bind address is taken for dynamic")
	}
	// Spellings a person may use.
	opts, ok = parseSite("[mysqld]\nbind_address=10.0.0.1\nread-only\nrpl_semi_sync_master_enabled = 1\n")
	if !ok || opts["bind_address"] != "10.0.0.1" || opts["read_only"] != "ON" || opts["rpl_semi_sync_master_enabled"] != "ON" {
		t.Errorf("parse: %v %v", opts, ok)
	}
	for _, bad := range []string{"[client]\npassword=x\n", "!includedir /etc/x\n", "bind-address = 1.2.3.4\n"} {
		if _, ok := parseSite(bad); ok {
			t.Errorf("%q parsed as a plain site file", bad)
		}
	}
	if d := parseDefaults("--bind-address=127.0.0.1 --skip-name-resolve --read_only=OFF --bind-address=10.0.0.5 --read_only=1"); d["bind_address"] != "10.0.0.5" || d["read_only"] != "ON" {
		t.Errorf("parseDefaults: last value must win: %v", d)
	}
}

// configuredFake is a fake server whose site file is primarySite(bind...) and runs with it.
func configuredFake(t *testing.T, content []byte) *fakeDB {
	t.Helper()
	return configuredFakeNamed(t, "root@db1:22", content)
}

func configuredFakeNamed(t *testing.T, name string, content []byte) *fakeDB {
	t.Helper()
	f := newFakeDB(name)
	f.SetFile(remote.File{Path: SiteCnfPath, Content: content, Mode: 0o644, Owner: "root", Group: "root"})
	f.stamp = f.hashLocked()
	return f
}

func answerRunning(f *fakeDB, want siteConfig) {
	var rows []resultRow
	for _, o := range want.opts {
		rows = append(rows, row("Variable_name", o.key, "Value", o.value))
	}
	f.answerXML("SHOW GLOBAL VARIABLES", rows...)
}

func TestApplySite(t *testing.T) {
	ctx := context.Background()
	primary := primarySite("172.30.5.10", true, 5*time.Second)
	replica := replicaSite("172.30.5.10", true)

	t.Run("unchanged", func(t *testing.T) {
		f := configuredFake(t, primary.render())
		answerRunning(f, primary)
		res, err := applySite(ctx, f, primary)
		if err != nil || res.changed || res.restarted || len(f.sentContaining("SET GLOBAL")) > 0 {
			t.Errorf("%+v %v %q", res, err, f.sent())
		}
	})
	t.Run("dynamic role change: SET GLOBAL, stamp updated, no restart", func(t *testing.T) {
		f := configuredFake(t, primary.render())
		answerRunning(f, replica)
		res, err := applySite(ctx, f, replica)
		if err != nil || !res.changed || res.restarted || f.restarts != 0 {
			t.Fatalf("%+v %v restarts %d", res, err, f.restarts)
		}
		sets := f.sentContaining("SET GLOBAL")
		if len(sets) != 1 {
			t.Fatalf("SET GLOBAL scripts: %q", sets)
		}
		// A demoted primary stops taking writes first.
		if i, j := strings.Index(sets[0], "read_only = ON"), strings.Index(sets[0], "rpl_semi_sync_master_enabled = OFF"); i < 0 || j < 0 || i > j {
			t.Errorf("read_only must go ON first:\n%s", sets[0])
		}
		if f.stamp != f.hashLocked() {
			t.Error("the role's stamp was not updated: its next apply would restart MariaDB")
		}
	})
	t.Run("promotion opens writes last", func(t *testing.T) {
		f := configuredFake(t, replica.render())
		answerRunning(f, primary)
		if _, err := applySite(ctx, f, primary); err != nil {
			t.Fatal(err)
		}
		sets := f.sentContaining("SET GLOBAL")
		if len(sets) != 1 || !strings.HasSuffix(strings.TrimSpace(sets[0]), "SET GLOBAL read_only = OFF;") {
			t.Errorf("read_only must go OFF last: %q", sets)
		}
	})
	t.Run("new bind address restarts", func(t *testing.T) {
		f := configuredFake(t, primarySite("172.30.5.99", true, 5*time.Second).render())
		answerRunning(f, primary)
		res, err := applySite(ctx, f, primary)
		if err != nil || !res.restarted || f.restarts != 1 {
			t.Errorf("%+v %v restarts %d", res, err, f.restarts)
		}
	})
	t.Run("hand edit reverted without restart", func(t *testing.T) {
		f := configuredFake(t, primary.render())
		// Edited on disk, never applied to the server: the stamp is that of the original.
		f.SetFile(remote.File{Path: SiteCnfPath, Content: []byte(strings.Replace(string(primary.render()), "= 5000", "= 1234", 1)), Mode: 0o644, Owner: "root", Group: "root"})
		answerRunning(f, primary)
		res, err := applySite(ctx, f, primary)
		if err != nil || !res.changed || res.restarted || f.restarts != 0 {
			t.Errorf("%+v %v restarts %d", res, err, f.restarts)
		}
	})
	t.Run("pending change of another file restarts", func(t *testing.T) {
		f := configuredFake(t, primary.render())
		f.other = "60-mohd-host.cnf changed"
		answerRunning(f, primary)
		res, err := applySite(ctx, f, primary)
		if err != nil || !res.restarted {
			t.Errorf("%+v %v", res, err)
		}
	})
	t.Run("stopped server is started", func(t *testing.T) {
		f := configuredFake(t, primary.render())
		f.active = false
		answerRunning(f, primary)
		res, err := applySite(ctx, f, primary)
		if err != nil || !res.restarted || !f.active {
			t.Errorf("%+v %v", res, err)
		}
	})
	t.Run("running value changed by hand is set back", func(t *testing.T) {
		f := configuredFake(t, primary.render())
		running := primarySite("172.30.5.10", true, 5*time.Second)
		running.opts[1].value = "1" // SET GLOBAL read_only = ON by hand
		answerRunning(f, running)
		res, err := applySite(ctx, f, primary)
		if err != nil || !res.changed || !slices.Equal(res.dynamic, []string{"read_only"}) {
			t.Errorf("%+v %v", res, err)
		}
	})
	t.Run("override in a later file is an error", func(t *testing.T) {
		f := configuredFake(t, primary.render())
		f.overrides = "--read_only=ON"
		answerRunning(f, primary)
		if _, err := applySite(ctx, f, primary); err == nil || !strings.Contains(err.Error(), "overrides it") {
			t.Errorf("error: %v", err)
		}
	})
}

func TestSiteDiffs(t *testing.T) {
	want := primarySite("172.30.5.10", true, 5*time.Second)
	st := siteState{active: true, hash: "a", stamp: "a", present: true, content: strings.Replace(string(want.render()), "= 5000", "= 1234", 1),
		defaults: map[string]string{"bind_address": "172.30.5.10"}}
	running := map[string]string{"bind_address": "172.30.5.10", "read_only": "1", "rpl_semi_sync_master_enabled": "1",
		"rpl_semi_sync_master_timeout": "5000", "rpl_semi_sync_master_wait_point": "AFTER_SYNC", "rpl_semi_sync_slave_enabled": "1"}
	d := siteDiffs(st, want, running)
	if len(d) != 2 || !strings.Contains(d[0], "options rpl_semi_sync_master_timeout") || !strings.Contains(d[1], "read_only = 1, want OFF") {
		t.Errorf("diffs: %q", d)
	}
	st.stamp = "b"
	if d := siteDiffs(st, want, running); !slices.ContainsFunc(d, func(s string) bool { return strings.Contains(s, "restart is pending") }) {
		t.Errorf("pending restart not reported: %q", d)
	}
	if d := siteDiffs(siteState{}, want, nil); !slices.Equal(d, []string{SiteCnfPath + " is missing", "MariaDB is not running"}) {
		t.Errorf("absent: %q", d)
	}
}
