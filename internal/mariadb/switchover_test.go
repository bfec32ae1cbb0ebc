package mariadb

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
)

func testTopology() Topology {
	return Topology{Replication: Account{User: "repl", Password: "r3pl"}, SemiSync: true, SemiSyncTimeout: 5 * time.Second}
}

// clusterFakes: db1 the primary at 0-10-40, db2 its replica (both threads running) at slavePos.
func clusterFakes(t *testing.T, slavePos string) (*fakeDB, *fakeDB) {
	t.Helper()
	old := configuredFake(t, primarySite("172.30.5.10", true, 5*time.Second).render())
	old.answerXML("SHOW ALL SLAVES STATUS", factsRow(10, false, "0-10-40", "0-10-40", "0-10-40", "", "172.30.5.10", true, true))
	old.answerXML("information_schema.PROCESSLIST")
	answerRunning(old, primarySite("172.30.5.10", true, 5*time.Second))
	nw := configuredFakeNamed(t, "root@db2:22", replicaSite("172.30.5.11", true).render())
	nw.answerXML("SHOW ALL SLAVES STATUS", factsRow(11, true, slavePos, slavePos, slavePos, slavePos, "172.30.5.11", false, true),
		slaveRow("172.30.5.10", "Yes", "Yes", slavePos, "Slave has read all relay log; waiting for more updates"))
	return old, nw
}

func TestSwitchoverRollsBackWhenTheReplicaCannotCatchUp(t *testing.T) {
	old, nw := clusterFakes(t, "0-10-38")
	nw.answerXML("MASTER_GTID_WAIT('0-10-40'", row("r", "-1"))
	err := Switchover(context.Background(), old, nw, nil, testTopology(), 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "has not applied") || !strings.Contains(err.Error(), "back as it was") {
		t.Fatalf("error: %v", err)
	}
	ro := old.sentContaining("SET GLOBAL read_only")
	if len(ro) != 2 || !strings.Contains(ro[0], "SET GLOBAL read_only = ON") || !strings.Contains(ro[1], "SET GLOBAL read_only = OFF") {
		t.Errorf("old primary: %q", ro)
	}
	if len(nw.sentContaining("RESET SLAVE")) > 0 || len(old.sentContaining("CHANGE MASTER")) > 0 || len(nw.Uploads())+len(old.Uploads()) > 0 {
		t.Error("the switchover went on after the failed wait")
	}
}

func TestSwitchoverOrder(t *testing.T) {
	old, nw := clusterFakes(t, "0-10-40")
	// After RESET SLAVE ALL the new primary no longer replicates.
	nw.answer("SHOW ALL SLAVES STATUS", func(string) (string, int) {
		if len(nw.sentContaining("RESET SLAVE ALL")) > 0 {
			return xmlOut(factsRow(11, false, "0-10-40", "0-10-40", "0-10-40", "0-10-40", "172.30.5.11", true, true)), 0
		}
		return xmlOut(factsRow(11, true, "0-10-40", "0-10-40", "0-10-40", "0-10-40", "172.30.5.11", false, true),
			slaveRow("172.30.5.10", "Yes", "Yes", "0-10-40", "")), 0
	})
	nw.answerXML("MASTER_GTID_WAIT('0-10-40'", row("r", "0"))
	answerRunning(nw, primarySite("172.30.5.11", true, 5*time.Second))
	old.answer("SHOW ALL SLAVES STATUS", func(string) (string, int) {
		if len(old.sentContaining("CHANGE MASTER")) > 0 {
			return xmlOut(factsRow(10, true, "0-10-40", "0-10-40", "0-10-40", "0-10-40", "172.30.5.10", false, true),
				slaveRow("172.30.5.11", "Yes", "Yes", "0-10-40", "")), 0
		}
		return xmlOut(factsRow(10, false, "0-10-40", "0-10-40", "0-10-40", "", "172.30.5.10", true, true)), 0
	})
	answerRunning(old, replicaSite("172.30.5.10", true))
	if err := Switchover(context.Background(), old, nw, nil, testTopology(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	cm := old.sentContaining("CHANGE MASTER")
	if len(cm) != 1 || !strings.Contains(cm[0], "SET GLOBAL gtid_slave_pos = '0-10-40';\nCHANGE MASTER TO MASTER_HOST = '172.30.5.11'") {
		t.Errorf("old primary: %q", cm)
	}
	reset := nw.sentContaining("RESET SLAVE ALL")
	if len(reset) != 1 || !strings.Contains(reset[0], "SET GLOBAL rpl_semi_sync_master_enabled = ON") {
		t.Errorf("new primary: %q", reset)
	}
	// The new primary opens for writes last, once the old one replicates from it.
	var last string
	for _, s := range nw.sentContaining("SET GLOBAL") {
		last = s
	}
	if !strings.HasSuffix(strings.TrimSpace(last), "SET GLOBAL read_only = OFF;") {
		t.Errorf("last change on the new primary: %q", last)
	}
	if f, _ := nw.File(SiteCnfPath); !strings.Contains(string(f.Content), "read_only = OFF") {
		t.Errorf("new primary's site file: %s", f.Content)
	}
	if f, _ := old.File(SiteCnfPath); !strings.Contains(string(f.Content), "read_only = ON") || !strings.Contains(string(f.Content), "bind-address = 172.30.5.10") {
		t.Errorf("old primary's site file: %s", f.Content)
	}
	if nw.restarts+old.restarts != 0 {
		t.Errorf("a switchover restarted MariaDB (%d, %d)", old.restarts, nw.restarts)
	}
}

func TestFailoverRefusesAReplicaThatIsBehind(t *testing.T) {
	_, nw := clusterFakes(t, "0-10-50")
	other := configuredFakeNamed(t, "root@db3:22", replicaSite("172.30.5.12", true).render())
	other.answerXML("SHOW ALL SLAVES STATUS", factsRow(12, true, "0-10-52", "0-10-52", "0-10-52", "0-10-52", "172.30.5.12", false, true),
		slaveRow("172.30.5.10", "No", "Yes", "0-10-52", "Slave has read all relay log; waiting for more updates"))
	_, err := Failover(context.Background(), nw, []remote.Host{other}, testTopology(), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "holds transactions 0-10-52") || !strings.Contains(err.Error(), "promote root@db3:22 instead") {
		t.Fatalf("error: %v", err)
	}
	if len(nw.sentContaining("RESET SLAVE")) > 0 || len(nw.Uploads()) > 0 {
		t.Error("promoted although another replica is ahead")
	}
	if len(nw.sentContaining("START SLAVE IO_THREAD")) != 1 || len(other.sentContaining("START SLAVE IO_THREAD")) != 1 {
		t.Error("the IO threads were not restarted after the refusal")
	}
}

func TestFailoverStopsOnReplicationError(t *testing.T) {
	nw := configuredFakeNamed(t, "root@db2:22", replicaSite("172.30.5.11", true).render())
	nw.answerXML("SHOW ALL SLAVES STATUS", factsRow(11, true, "0-10-48", "0-10-48", "0-10-48", "0-10-48", "172.30.5.11", false, true),
		row("Connection_name", "", "Master_Host", "172.30.5.10", "Master_Port", "3306", "Slave_IO_Running", "No", "Slave_SQL_Running", "No",
			"Gtid_IO_Pos", "0-10-50", "Last_SQL_Error", "Duplicate entry '7' for key 'PRIMARY'"))
	_, err := Failover(context.Background(), nw, nil, testTopology(), time.Second)
	if err == nil || !strings.Contains(err.Error(), "Duplicate entry") || errors.Is(err, ErrIncomplete) {
		t.Fatalf("error: %v", err)
	}
	if len(nw.sentContaining("RESET SLAVE")) > 0 {
		t.Error("promoted with an unapplied relay log")
	}
}

func TestDrainRelayStartsAStoppedSQLThreadFirst(t *testing.T) {
	f := configuredFakeNamed(t, "root@db2:22", replicaSite("172.30.5.11", true).render())
	f.answer("SHOW ALL SLAVES STATUS", func(string) (string, int) {
		slave, io, sql := "0-10-45", "Connecting", "No"
		if len(f.sentContaining("START SLAVE SQL_THREAD")) > 0 {
			slave, sql = "0-10-50", "Yes"
		}
		if len(f.sentContaining("STOP SLAVE IO_THREAD")) > 0 {
			io = "No"
		}
		return xmlOut(factsRow(11, true, slave, slave, slave, slave, "172.30.5.11", false, true)) +
			xmlOut(row("Connection_name", "", "Master_Host", "172.30.5.10", "Master_Port", "3306", "Slave_IO_Running", io,
				"Slave_SQL_Running", sql, "Gtid_IO_Pos", "0-10-50", "Last_SQL_Error", "")), 0
	})
	if err := drainRelay(context.Background(), f, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range f.sent() {
		for _, stmt := range []string{"START SLAVE SQL_THREAD", "STOP SLAVE IO_THREAD"} {
			if strings.Contains(s, stmt) {
				order = append(order, stmt)
			}
		}
	}
	// Both threads stopped at once would make MariaDB discard the relay log at the next start.
	if strings.Join(order, ", ") != "START SLAVE SQL_THREAD, STOP SLAVE IO_THREAD" {
		t.Errorf("order: %v", order)
	}
}

func TestDrainRelayRefusesBothThreadsStopped(t *testing.T) {
	f := configuredFakeNamed(t, "root@db2:22", replicaSite("172.30.5.11", true).render())
	f.answerXML("SHOW ALL SLAVES STATUS", factsRow(11, true, "0-10-45", "0-10-45", "0-10-45", "0-10-45", "172.30.5.11", false, true),
		row("Connection_name", "", "Master_Host", "172.30.5.10", "Master_Port", "3306", "Slave_IO_Running", "No",
			"Slave_SQL_Running", "No", "Gtid_IO_Pos", "0-10-50", "Last_SQL_Error", ""))
	if err := drainRelay(context.Background(), f, time.Second); err == nil || !strings.Contains(err.Error(), "discard its relay log") {
		t.Errorf("error: %v", err)
	}
	if len(f.sentContaining("START SLAVE")) > 0 {
		t.Error("replication was started: the relay log is gone")
	}
}
