package mariadb

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// slaveStatusXML is SHOW ALL SLAVES STATUS of a MariaDB 10.11 replica as the client prints it (--xml),
// shortened to the columns that matter and a few others.
const slaveStatusXML = `<?xml version="1.0"?>

<resultset statement="SHOW ALL SLAVES STATUS" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <row>
	<field name="Connection_name"></field>
	<field name="Slave_SQL_State">Slave has read all relay log; waiting for more updates</field>
	<field name="Slave_IO_State">Waiting for master to send event</field>
	<field name="Master_Host">172.30.158.10</field>
	<field name="Master_User">repl</field>
	<field name="Master_Port">3306</field>
	<field name="Slave_IO_Running">Yes</field>
	<field name="Slave_SQL_Running">Yes</field>
	<field name="Last_Errno">0</field>
	<field name="Last_Error"></field>
	<field name="Seconds_Behind_Master">3</field>
	<field name="Last_IO_Errno">0</field>
	<field name="Last_IO_Error"></field>
	<field name="Last_SQL_Errno">0</field>
	<field name="Last_SQL_Error"></field>
	<field name="Using_Gtid">Slave_Pos</field>
	<field name="Gtid_IO_Pos">0-2887622154-41</field>
	<field name="Slave_SQL_Running_State">Slave has read all relay log; waiting for more updates</field>
	<field name="Gtid_Slave_Pos">0-2887622154-41</field>
  </row>

  <row>
	<field name="Connection_name">reporting</field>
	<field name="Master_Host">10.9.9.9</field>
	<field name="Slave_IO_Running">Connecting</field>
	<field name="Slave_SQL_Running">Yes</field>
	<field name="Seconds_Behind_Master" xsi:nil="true" />
	<field name="Last_IO_Error">error connecting to master 'repl@10.9.9.9:3306' - retry-time: 10  maximum-retries: 100000  message: Can't connect</field>
  </row>
</resultset>
`

func TestReplicaStatus(t *testing.T) {
	rows, err := parseXML([]byte(xmlOut(factsRow(2887622155, true, "0-2887622154-41", "0-2887622154-41", "0-2887622154-41", "0-2887622154-41", "172.30.158.11", false, true)) +
		xmlOut(row("Variable_name", "Rpl_semi_sync_slave_status", "Value", "ON")) + slaveStatusXML))
	if err != nil {
		t.Fatal(err)
	}
	st := parseFacts(rows).replicaStatus()
	if !st.Running || !st.Configured || !st.Replicating() || st.MasterHost != "172.30.158.10" || st.MasterPort != 3306 || st.MasterUser != "repl" ||
		st.UsingGTID != "Slave_Pos" || st.GTIDIOPos != "0-2887622154-41" || st.GTIDSlavePos != "0-2887622154-41" || !st.ReadOnly ||
		!st.SemiSyncSlave || !st.SemiSyncSlaveEnabled || st.SecondsBehind == nil || *st.SecondsBehind != 3 || st.ServerID != 2887622155 ||
		!strings.HasPrefix(st.SQLState, "Slave has read all relay log") || !slices.Equal(st.OtherConnections, []string{"reporting"}) {
		t.Errorf("status: %+v", st)
	}

	// Stopped with an error; Seconds_Behind_Master NULL.
	rows, err = parseXML([]byte(xmlOut(factsRow(2, true, "", "", "0-1-5", "0-1-5", "10.0.0.2", false, true)) +
		xmlOut(row("Connection_name", "", "Master_Host", "10.0.0.1", "Master_Port", "3306", "Slave_IO_Running", "Yes", "Slave_SQL_Running", "No",
			"Seconds_Behind_Master", nil, "Last_SQL_Error", "Could not execute Write_rows_v1 event on table moodle.t; Duplicate entry '1'"))))
	if err != nil {
		t.Fatal(err)
	}
	st = parseFacts(rows).replicaStatus()
	if st.SecondsBehind != nil || st.Replicating() || !strings.Contains(st.LastSQLError, "Duplicate entry") {
		t.Errorf("stopped replica: %+v", st)
	}
	// Not a replica at all.
	rows, _ = parseXML([]byte(xmlOut(factsRow(1, false, "0-1-5", "0-1-5", "0-1-5", "", "10.0.0.1", true, true))))
	if st := parseFacts(rows).replicaStatus(); st.Configured || st.IORunning != "" || st.ReadOnly {
		t.Errorf("primary: %+v", st)
	}
}

func testReplicaConfig() ReplicaConfig {
	return ReplicaConfig{PrimaryAddress: "172.30.5.10", Replication: Account{User: "repl", Password: `r'3pl`}, BindAddress: "172.30.5.11", SemiSync: true}
}

func TestChangeMaster(t *testing.T) {
	got := changeMaster("172.30.5.10", 3306, Account{User: "repl", Password: `r'3\pl`})
	want := `CHANGE MASTER TO MASTER_HOST = '172.30.5.10', MASTER_PORT = 3306, MASTER_USER = 'repl', MASTER_PASSWORD = 'r\'3\\pl', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 10;`
	if got != want {
		t.Errorf("%s\nwant\n%s", got, want)
	}
}

// replicaFake is a replica already replicating from 172.30.5.10 as testReplicaConfig says.
func replicaFake(t *testing.T, io, sql string, samePassword bool) *fakeDB {
	t.Helper()
	c := testReplicaConfig()
	f := configuredFake(t, c.site().render())
	answerRunning(f, c.site())
	// START SLAVE starts both threads.
	f.answer("SHOW ALL SLAVES STATUS", func(string) (string, int) {
		i, s := io, sql
		if len(f.sentContaining("START SLAVE;")) > 0 {
			i, s = "Yes", "Yes"
		}
		return xmlOut(factsRow(11, true, "", "", "0-10-5", "0-10-5", "172.30.5.11", false, true)) +
			xmlOut(slaveRow("172.30.5.10", i, s, "0-10-5", "")), 0
	})
	f.OnFunc(`sed -n 6p /var/lib/mysql/master.info`, func(cmd remoteCmd) (remoteResult, error) {
		if samePassword && string(cmd.Stdin) == c.Replication.Password+"\n" {
			return remoteResult{Stdout: []byte("same\n")}, nil
		}
		return remoteResult{Stdout: []byte("different\n")}, nil
	})
	return f
}

func TestConfigureReplica(t *testing.T) {
	ctx := context.Background()
	c := testReplicaConfig()
	t.Run("already replicating: nothing to do", func(t *testing.T) {
		f := replicaFake(t, "Yes", "Yes", true)
		changed, err := ConfigureReplica(ctx, f, c)
		if err != nil || changed || len(f.sentContaining("SLAVE")) != len(f.sentContaining("SHOW ALL SLAVES")) {
			t.Errorf("changed %v, %v; sent %q", changed, err, f.sent())
		}
		// The password is compared on the host, sent on stdin.
		for _, call := range f.Calls() {
			if strings.Contains(call.Command, "r'3pl") || strings.Contains(call.Command, `r\'3pl`) {
				t.Errorf("password on a command line: %s", call.Command)
			}
		}
	})
	t.Run("password changed: CHANGE MASTER with the new one", func(t *testing.T) {
		f := replicaFake(t, "Yes", "Yes", false)
		changed, err := ConfigureReplica(ctx, f, c)
		if err != nil || !changed {
			t.Fatalf("changed %v, %v", changed, err)
		}
		cm := f.sentContaining("CHANGE MASTER")
		if len(cm) != 1 || !strings.Contains(cm[0], "STOP SLAVE;\nCHANGE MASTER TO MASTER_HOST = '172.30.5.10'") || !strings.Contains(cm[0], `MASTER_PASSWORD = 'r\'3pl'`) || !strings.HasSuffix(cm[0], "START SLAVE;\n") {
			t.Errorf("script: %q", cm)
		}
		for _, call := range f.Calls() {
			if strings.Contains(string(call.Stdin), "CHANGE MASTER") && (!slices.Contains(call.Secrets, `r'3pl`) || !slices.Contains(call.Secrets, `r\'3pl`)) {
				t.Errorf("secrets %q", call.Secrets)
			}
		}
	})
	t.Run("stopped threads are started", func(t *testing.T) {
		f := replicaFake(t, "No", "No", true)
		changed, err := ConfigureReplica(ctx, f, c)
		if err != nil || !changed || len(f.sentContaining("START SLAVE;")) != 1 || len(f.sentContaining("CHANGE MASTER")) != 0 {
			t.Errorf("changed %v; sent %q", changed, f.sent())
		}
	})
	t.Run("another primary", func(t *testing.T) {
		f := replicaFake(t, "Yes", "Yes", true)
		c2 := c
		c2.PrimaryAddress = "172.30.5.12"
		changed, err := ConfigureReplica(ctx, f, c2)
		if cm := f.sentContaining("MASTER_HOST = '172.30.5.12'"); err != nil || !changed || len(cm) != 1 {
			t.Errorf("changed %v; sent %q", changed, f.sent())
		}
	})
}

func TestRemoveReplicaRefusesPrimary(t *testing.T) {
	f := configuredFake(t, primarySite("172.30.5.10", true, 0).render())
	f.answerXML("SHOW ALL SLAVES STATUS", factsRow(10, false, "0-10-5", "0-10-5", "0-10-5", "", "172.30.5.10", true, true))
	if err := RemoveReplica(context.Background(), f); err == nil || !strings.Contains(err.Error(), "not a replica") {
		t.Errorf("RemoveReplica on a primary: %v", err)
	}
	if len(f.sentContaining("RESET SLAVE")) > 0 || len(f.Uploads()) > 0 {
		t.Error("the primary was changed")
	}
}

func TestConfigureReplicaRefusesAWritableServerWithData(t *testing.T) {
	f := configuredFake(t, primarySite("172.30.5.11", true, 0).render())
	f.answerXML("SHOW ALL SLAVES STATUS", factsRow(11, false, "0-11-9", "0-11-9", "0-11-9", "", "172.30.5.11", true, true))
	f.answerXML("information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN", row("name", "moodle"))
	_, err := ConfigureReplica(context.Background(), f, testReplicaConfig())
	if err == nil || !strings.Contains(err.Error(), "may be a primary") || !strings.Contains(err.Error(), "moodle") {
		t.Fatalf("error: %v", err)
	}
	if len(f.Uploads()) > 0 || len(f.sentContaining("CHANGE MASTER")) > 0 || len(f.sentContaining("SET GLOBAL")) > 0 {
		t.Error("the server was changed")
	}
}
