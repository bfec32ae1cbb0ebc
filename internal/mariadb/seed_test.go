package mariadb

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mohd-dev/mohd/internal/remote"
)

func TestParseBinlogInfo(t *testing.T) {
	for out, want := range map[string]string{
		"binlog_info=mariadb-bin.000001\t694\t0-5-2\n":                  "0-5-2",
		"noise\nbinlog_info=mariadb-bin.000003\t1234\t0-5-2,1-7-9\n":    "0-5-2,1-7-9",
		"binlog_info=mariadb-bin.000001\t330\n":                         "",
		"binlog_info=mariadb-bin.000001\t330\t\n":                       "",
		"binlog_info=mariadb-bin.000001\t330\t0-2886795267-13\n\n":      "0-2886795267-13",
		"binlog_info=mariadb-bin.000002\t4\t0-1-1\nbinlog_info=other\n": "0-1-1",
	} {
		got, err := parseBinlogInfo(out)
		if err != nil || got != want {
			t.Errorf("parseBinlogInfo(%q) = %q, %v; want %q", out, got, err, want)
		}
	}
	for _, bad := range []string{"", "binlog_info=\n", "binlog_info=mariadb-bin.000001\t1\tnot-a-gtid\n"} {
		if _, err := parseBinlogInfo(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestStreamBackup(t *testing.T) {
	ctx := context.Background()
	copyData := bytes.Repeat([]byte("xbstream\x00data"), 100000)
	newPair := func(backupExit int) (*remote.Fake, *remote.Fake, *[]byte) {
		primary, replica := remote.NewFake("root@db1:22"), remote.NewFake("root@db2:22")
		primary.On(`mariadb-backup --backup --stream=xbstream`, remote.Result{Stdout: copyData, ExitCode: backupExit, Stderr: []byte("backup broke off")})
		got := new([]byte)
		replica.OnFunc(`mbstream -x -C /var/lib/mysql/.mohd-seed`, func(c remote.Cmd) (remote.Result, error) {
			*got = c.Stdin
			return remote.Result{}, nil
		})
		return primary, replica, got
	}
	primary, replica, got := newPair(0)
	n, err := streamBackup(ctx, primary, replica, func(string, ...any) {})
	if err != nil || n != int64(len(copyData)) || !bytes.Equal(*got, copyData) {
		t.Errorf("stream: %d bytes, %v; the replica got %d bytes", n, err, len(*got))
	}
	// Nothing is buffered in full: the primary's stdout goes to a stream, the replica's stdin comes from one.
	if c := primary.Calls()[0]; c.Stdin != nil || len(c.Command) > 300 {
		t.Errorf("backup command: %+v", c)
	}
	// A backup that fails is a failed seed, even when mbstream took the truncated stream without complaint.
	primary, replica, _ = newPair(1)
	if _, err := streamBackup(ctx, primary, replica, func(string, ...any) {}); err == nil || !strings.Contains(err.Error(), "backup broke off") {
		t.Errorf("failed backup: %v", err)
	}
}

// seedFakes are a primary at 0-10-40 (history: server 10 up to 40) and a replica with facts f.
func seedFakes(t *testing.T, replicaFacts resultRow, slave resultRow, dbs ...string) (*fakeDB, *fakeDB) {
	t.Helper()
	primary := newFakeDB("root@db1:22")
	primary.answerXML("SHOW ALL SLAVES STATUS", factsRow(10, false, "0-10-40", "0-10-40", "0-10-40", "", "172.30.5.10", true, true))
	replica := newFakeDB("root@db2:22")
	rows := []resultRow{replicaFacts}
	if slave != nil {
		rows = append(rows, slave)
	}
	replica.answerXML("SHOW ALL SLAVES STATUS", rows...)
	var names []resultRow
	for _, d := range dbs {
		names = append(names, row("name", d))
	}
	replica.answerXML("information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN", names...)
	return primary, replica
}

func TestCheckSeedTarget(t *testing.T) {
	ctx := context.Background()
	c := testReplicaConfig()
	c.PrimaryAddress = "172.30.5.10"
	check := func(primary, replica *fakeDB, c ReplicaConfig) error {
		f, err := readFacts(ctx, primary)
		if err != nil {
			t.Fatal(err)
		}
		return checkSeedTarget(ctx, primary, replica, c, f)
	}
	t.Run("fresh clone", func(t *testing.T) {
		p, r := seedFakes(t, factsRow(11, false, "", "", "", "", "127.0.0.1", false, false), nil)
		if err := check(p, r, c); err != nil {
			t.Error(err)
		}
	})
	t.Run("its own database", func(t *testing.T) {
		p, r := seedFakes(t, factsRow(11, true, "0-11-3", "0-11-3", "0-11-3", "", "127.0.0.1", false, false), nil, "local")
		err := check(p, r, c)
		if !errors.Is(err, ErrReplicaHasData) || !strings.Contains(err.Error(), "0-11-3") || !strings.Contains(err.Error(), "OverwriteData") {
			t.Errorf("%v", err)
		}
		c2 := c
		c2.OverwriteData = true
		if err := check(p, r, c2); err != nil {
			t.Errorf("with OverwriteData: %v", err)
		}
	})
	t.Run("a writable server", func(t *testing.T) {
		p, r := seedFakes(t, factsRow(11, false, "0-10-12", "0-10-12", "0-10-12", "", "172.30.5.11", false, false), nil, "moodle")
		if err := check(p, r, c); !errors.Is(err, ErrReplicaHasData) || !strings.Contains(err.Error(), "writable and replicates from nothing") {
			t.Errorf("%v", err)
		}
	})
	t.Run("an earlier copy of this primary", func(t *testing.T) {
		p, r := seedFakes(t, factsRow(11, true, "0-10-12", "0-10-12", "0-10-12", "0-10-12", "172.30.5.11", false, true),
			slaveRow("172.30.5.10", "Yes", "No", "0-10-12", ""), "moodle")
		if err := check(p, r, c); err != nil {
			t.Error(err)
		}
	})
	t.Run("a detached copy", func(t *testing.T) {
		p, r := seedFakes(t, factsRow(11, true, "0-10-12", "0-10-12", "0-10-12", "0-10-12", "172.30.5.11", false, false), nil, "moodle")
		if err := check(p, r, c); err != nil {
			t.Error(err)
		}
	})
	t.Run("a replica of another primary", func(t *testing.T) {
		p, r := seedFakes(t, factsRow(11, true, "0-10-12", "0-10-12", "0-10-12", "0-10-12", "172.30.5.11", false, true),
			slaveRow("10.9.9.9", "Yes", "Yes", "0-10-12", ""), "moodle")
		if err := check(p, r, c); !errors.Is(err, ErrReplicaHasData) || !strings.Contains(err.Error(), "10.9.9.9") {
			t.Errorf("%v", err)
		}
	})
	t.Run("same server_id", func(t *testing.T) {
		p, r := seedFakes(t, factsRow(10, false, "", "", "", "", "127.0.0.1", false, false), nil)
		if err := check(p, r, c); err == nil || !strings.Contains(err.Error(), "server_id") {
			t.Errorf("%v", err)
		}
	})
}

func TestSeedReplicaRefusalChangesNothing(t *testing.T) {
	p, r := seedFakes(t, factsRow(11, true, "0-11-3", "0-11-3", "0-11-3", "", "127.0.0.1", false, false), nil, "local")
	err := SeedReplica(context.Background(), p, r, testReplicaConfig(), nil)
	if !errors.Is(err, ErrReplicaHasData) {
		t.Fatalf("%v", err)
	}
	for _, cmd := range append(r.Commands(), p.Commands()...) {
		if strings.Contains(cmd, "systemctl stop") || strings.Contains(cmd, "mariadb-backup") || strings.Contains(cmd, "mbstream") {
			t.Errorf("ran %q although it refused", cmd)
		}
	}
}
