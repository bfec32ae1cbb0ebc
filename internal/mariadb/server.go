package mariadb

import (
	"context"
	"strconv"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// facts is one read of a running server: variables, semi-sync status and replication connections.
type facts struct {
	version     string
	serverID    uint32
	readOnly    bool
	binlogPos   string // gtid_binlog_pos: the last GTID of each domain in this server's binary log
	binlogState string // gtid_binlog_state: the last GTID of each domain and server in it
	currentPos  string // gtid_current_pos
	slavePos    string // gtid_slave_pos
	vars        map[string]string
	status      map[string]string // Rpl_semi_sync_* status, lower-case names
	slaves      []resultRow       // SHOW ALL SLAVES STATUS
}

// factVars are the variables facts reads besides the GTID positions: every option a site file sets.
var factVars = []string{"bind_address", "read_only", "rpl_semi_sync_master_enabled", "rpl_semi_sync_master_timeout",
	"rpl_semi_sync_master_wait_point", "rpl_semi_sync_slave_enabled"}

func factsScript() string {
	cols := []string{"@@version AS version", "@@server_id AS server_id", "@@gtid_binlog_pos AS gtid_binlog_pos",
		"@@gtid_binlog_state AS gtid_binlog_state", "@@gtid_current_pos AS gtid_current_pos", "@@gtid_slave_pos AS gtid_slave_pos"}
	for _, v := range factVars {
		cols = append(cols, "@@global."+v+" AS "+v)
	}
	return sessionMode + "SELECT " + strings.Join(cols, ", ") + ";\n" +
		"SHOW GLOBAL STATUS LIKE 'Rpl\\_semi\\_sync\\_%';\nSHOW ALL SLAVES STATUS;\n"
}

func readFacts(ctx context.Context, h remote.Host) (facts, error) {
	rows, err := querySQL(ctx, h, "read the server's replication state", factsScript())
	if err != nil {
		return facts{}, err
	}
	return parseFacts(rows), nil
}

func parseFacts(rows []resultRow) facts {
	f := facts{vars: map[string]string{}, status: map[string]string{}}
	for _, r := range rows {
		switch {
		case len(r) > 0 && r[0].Name == "version":
			f.version = r.Get("version")
			id, _ := strconv.ParseUint(r.Get("server_id"), 10, 32)
			f.serverID = uint32(id)
			f.binlogPos, f.binlogState = r.Get("gtid_binlog_pos"), r.Get("gtid_binlog_state")
			f.currentPos, f.slavePos = r.Get("gtid_current_pos"), r.Get("gtid_slave_pos")
			for _, v := range factVars {
				f.vars[v] = r.Get(v)
			}
			f.readOnly = normValue("read_only", f.vars["read_only"]) == "ON"
		case len(r) > 0 && r[0].Name == "Variable_name":
			f.status[strings.ToLower(r.Get("Variable_name"))] = r.Get("Value")
		case len(r) > 0 && r[0].Name == "Connection_name":
			f.slaves = append(f.slaves, r)
		}
	}
	return f
}

// defaultSlave is the unnamed replication connection, the one this package configures (nil: none).
func (f facts) defaultSlave() resultRow {
	for _, r := range f.slaves {
		if r.Get("Connection_name") == "" {
			return r
		}
	}
	return nil
}

// otherSlaves names replication connections other than the default one (multi-source set up by hand).
func (f facts) otherSlaves() []string {
	var out []string
	for _, r := range f.slaves {
		if n := r.Get("Connection_name"); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// ReplicaStatus is a server's replication state (from SHOW ALL SLAVES STATUS, its unnamed connection, and
// the server's variables).
type ReplicaStatus struct {
	// Running: MariaDB answers. When false, nothing else is filled.
	Running bool
	// Configured: the server has a replication connection (MasterHost is set).
	Configured bool
	// IORunning and SQLRunning are Slave_IO_Running ("Yes", "No", "Connecting") and Slave_SQL_Running
	// ("Yes", "No"); empty when not configured.
	IORunning, SQLRunning string
	// SecondsBehind is Seconds_Behind_Master; nil when unknown (a thread stopped, not configured).
	SecondsBehind *int64
	// GTIDSlavePos is the last transaction applied from a primary (gtid_slave_pos), GTIDCurrentPos the
	// server's whole position (gtid_current_pos), GTIDIOPos the last one received (Gtid_IO_Pos),
	// GTIDBinlogPos the last one in its own binary log.
	GTIDSlavePos, GTIDCurrentPos, GTIDIOPos, GTIDBinlogPos string
	LastIOError, LastSQLError                              string
	// SQLState is Slave_SQL_Running_State ("Slave has read all relay log; waiting for more updates").
	SQLState   string
	ReadOnly   bool
	MasterHost string
	MasterPort int
	MasterUser string
	// UsingGTID is Using_Gtid: "Slave_Pos" as this package configures it, "Current_Pos" or "No".
	UsingGTID string
	// SemiSyncSlave: the server acknowledges its primary's commits (Rpl_semi_sync_slave_status: semi-sync
	// enabled and the IO thread connected with it).
	SemiSyncSlave bool
	// SemiSyncSlaveEnabled is rpl_semi_sync_slave_enabled.
	SemiSyncSlaveEnabled bool
	ServerID             uint32
	Version              string
	// OtherConnections names replication connections besides the unnamed one (not MOHD's).
	OtherConnections []string
}

func (f facts) replicaStatus() ReplicaStatus {
	st := ReplicaStatus{
		Running:              true,
		GTIDSlavePos:         f.slavePos,
		GTIDCurrentPos:       f.currentPos,
		GTIDBinlogPos:        f.binlogPos,
		ReadOnly:             f.readOnly,
		SemiSyncSlave:        strings.EqualFold(f.status["rpl_semi_sync_slave_status"], "ON"),
		SemiSyncSlaveEnabled: normValue("rpl_semi_sync_slave_enabled", f.vars["rpl_semi_sync_slave_enabled"]) == "ON",
		ServerID:             f.serverID,
		Version:              f.version,
		OtherConnections:     f.otherSlaves(),
	}
	r := f.defaultSlave()
	if r == nil {
		return st
	}
	st.Configured = r.Get("Master_Host") != ""
	st.IORunning, st.SQLRunning = r.Get("Slave_IO_Running"), r.Get("Slave_SQL_Running")
	if !r.IsNull("Seconds_Behind_Master") {
		if n, err := strconv.ParseInt(r.Get("Seconds_Behind_Master"), 10, 64); err == nil {
			st.SecondsBehind = &n
		}
	}
	st.GTIDIOPos = r.Get("Gtid_IO_Pos")
	st.LastIOError, st.LastSQLError = r.Get("Last_IO_Error"), r.Get("Last_SQL_Error")
	st.SQLState = r.Get("Slave_SQL_Running_State")
	st.MasterHost, st.MasterUser, st.UsingGTID = r.Get("Master_Host"), r.Get("Master_User"), r.Get("Using_Gtid")
	st.MasterPort, _ = strconv.Atoi(r.Get("Master_Port"))
	return st
}

// Replicating reports whether both replication threads run.
func (s ReplicaStatus) Replicating() bool { return s.IORunning == "Yes" && s.SQLRunning == "Yes" }

// InspectReplica reads h's replication state. It changes nothing. A server that is down is reported with
// Running false, not as an error.
func InspectReplica(ctx context.Context, h remote.Host) (ReplicaStatus, error) {
	up, err := mariadbActive(ctx, h)
	if err != nil || !up {
		return ReplicaStatus{}, err
	}
	f, err := readFacts(ctx, h)
	if err != nil {
		return ReplicaStatus{}, err
	}
	return f.replicaStatus(), nil
}

func mariadbActive(ctx context.Context, h remote.Host) (bool, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: "systemctl is-active mariadb.service || true", Desc: "check whether MariaDB runs"})
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(res.Stdout)) == "active", nil
}
