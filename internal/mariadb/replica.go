package mariadb

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
)

// DefaultPort is MariaDB's port.
const DefaultPort = 3306

// ConnectRetry is how often a replica retries connecting to its primary (MariaDB's default is 60 s, too
// slow to come back after a primary's restart or a switchover).
const ConnectRetry = 10

// masterInfo is where the replica keeps its connection settings, the password included (one per line:
// line 4 host, 5 user, 6 password, 7 port).
const masterInfo = "/var/lib/mysql/master.info"

// ReplicaConfig is one replica of the cluster's primary.
type ReplicaConfig struct {
	// PrimaryAddress and PrimaryPort (default 3306) are where the replica connects.
	PrimaryAddress string
	PrimaryPort    int
	// Replication is the account the primary's ConfigurePrimary created (Hosts are not used here).
	Replication Account
	// BindAddress is the replica's private address (Moodle's read-only queries, and replicas after a
	// switchover, connect to it).
	BindAddress string
	// SemiSync makes the replica acknowledge its primary's commits.
	SemiSync bool
	// OverwriteData lets SeedReplica replace a data directory that holds databases which did not come from
	// this primary (SeedReplica refuses otherwise, with ErrReplicaHasData).
	OverwriteData bool
}

func (c ReplicaConfig) port() int {
	if c.PrimaryPort == 0 {
		return DefaultPort
	}
	return c.PrimaryPort
}

func (c ReplicaConfig) validate() error {
	if err := validateAddress("replica: primary address", c.PrimaryAddress); err != nil {
		return err
	}
	if err := validatePort("replica: primary port", c.PrimaryPort); err != nil {
		return err
	}
	if err := validateIP("replica: bind address", c.BindAddress); err != nil {
		return err
	}
	if c.BindAddress == c.PrimaryAddress {
		return fmt.Errorf("replica: the bind address %s is the primary's address: a replica needs a host of its own", c.BindAddress)
	}
	return c.Replication.validate("the replication account", false)
}

func (c ReplicaConfig) site() siteConfig { return replicaSite(c.BindAddress, c.SemiSync) }

// changeMaster is the statement pointing a replica at its primary, from its own gtid_slave_pos.
func changeMaster(addr string, port int, a Account) string {
	return fmt.Sprintf("CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %d, MASTER_USER = %s, MASTER_PASSWORD = %s, "+
		"MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = %d;", quoteString(addr), port, quoteString(a.User), quoteString(a.Password), ConnectRetry)
}

// ConfigureReplica makes h a read-only, semi-synchronous replica of c's primary, from h's gtid_slave_pos (a
// host seeded by SeedReplica has it). Idempotent: when h already replicates from that primary with those
// credentials and both threads run, nothing is done and changed is false. It waits up to 30 s for the
// replication threads to run and reports the replica's error when they do not.
func ConfigureReplica(ctx context.Context, h remote.Host, c ReplicaConfig) (changed bool, err error) {
	if err := c.validate(); err != nil {
		return false, err
	}
	unlock, err := lock(ctx, h)
	if err != nil {
		return false, err
	}
	defer unlock()
	// A writable server holding databases and replicating from nothing may be a primary (an old one back
	// after a failover, with transactions nobody else has): SeedReplica checks such data, this does not.
	if up, err := mariadbActive(ctx, h); err != nil {
		return false, err
	} else if up {
		f, err := readFacts(ctx, h)
		if err != nil {
			return false, err
		}
		if !f.readOnly && f.defaultSlave() == nil {
			dbs, err := userDatabases(ctx, h)
			if err != nil {
				return false, err
			}
			if len(dbs) > 0 {
				return false, fmt.Errorf("%s is writable, replicates from nothing and holds databases (%s): it may be a primary; nothing done: seed it from the primary (SeedReplica checks whether its data came from there)",
					h.Name(), strings.Join(dbs, ", "))
			}
		}
	}
	return configureReplica(ctx, h, c)
}

func configureReplica(ctx context.Context, h remote.Host, c ReplicaConfig) (bool, error) {
	res, err := applySite(ctx, h, c.site())
	if err != nil {
		return false, err
	}
	changed := res.changed
	f, err := readFacts(ctx, h)
	if err != nil {
		return changed, err
	}
	st := f.replicaStatus()
	same := st.Configured && st.MasterHost == c.PrimaryAddress && st.MasterPort == c.port() &&
		st.MasterUser == c.Replication.User && st.UsingGTID == "Slave_Pos"
	if same {
		if same, err = masterPasswordIs(ctx, h, c.Replication.Password); err != nil {
			return changed, err
		}
	}
	var stmts []string
	switch {
	case !same:
		if st.Configured {
			stmts = append(stmts, "STOP SLAVE;")
		}
		stmts = append(stmts, changeMaster(c.PrimaryAddress, c.port(), c.Replication), "START SLAVE;")
	case st.IORunning == "No" || st.SQLRunning != "Yes":
		stmts = append(stmts, "START SLAVE;")
	case slices.Contains(res.dynamic, "rpl_semi_sync_slave_enabled"):
		// The IO thread negotiates semi-sync when it connects.
		stmts = append(stmts, "STOP SLAVE IO_THREAD;", "START SLAVE IO_THREAD;")
	}
	if len(stmts) == 0 {
		return changed, nil
	}
	if err := runSQL(ctx, h, "replicate from "+c.PrimaryAddress, sessionMode+strings.Join(stmts, "\n")+"\n", c.Replication.Password); err != nil {
		return true, err
	}
	return true, waitReplicating(ctx, h, 30*time.Second)
}

// masterPasswordIs compares the password the replica connects with (its master.info) with pw, on the host:
// pw travels on stdin, the stored one never leaves the host.
func masterPasswordIs(ctx context.Context, h remote.Host, pw string) (bool, error) {
	res, err := h.Run(ctx, remote.Cmd{
		Command: `IFS= read -r want || true
have=$(sed -n 6p ` + masterInfo + ` 2>/dev/null || true)
if [ "$have" = "$want" ]; then echo same; else echo different; fi`,
		Stdin:   []byte(pw + "\n"),
		Secrets: []string{pw},
		Desc:    "compare the replication password the replica uses",
	})
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(res.Stdout)) == "same", nil
}

// waitReplicating waits until both replication threads run, failing early on a replication error.
func waitReplicating(ctx context.Context, h remote.Host, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		f, err := readFacts(ctx, h)
		if err != nil {
			return err
		}
		st := f.replicaStatus()
		switch {
		case st.Replicating():
			return nil
		case st.SQLRunning == "No" && st.LastSQLError != "":
			return fmt.Errorf("%s: replication stopped applying transactions: %s", h.Name(), st.LastSQLError)
		case st.IORunning == "No" && st.LastIOError != "":
			return fmt.Errorf("%s: replication cannot read from its primary %s: %s", h.Name(), st.MasterHost, st.LastIOError)
		case time.Now().After(deadline):
			msg := fmt.Sprintf("IO thread %s, SQL thread %s", st.IORunning, st.SQLRunning)
			if st.LastIOError != "" {
				msg += ": " + st.LastIOError
			}
			return fmt.Errorf("%s: replication from %s:%d does not run after %s (%s): check that the primary answers on its address and that the replication account and password match", h.Name(), st.MasterHost, st.MasterPort, timeout, msg)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// DiffReplica lists how h differs from a replica configured with c (empty: in sync): its option file and
// running options, where and how it replicates, whether both threads run. It changes nothing.
func DiffReplica(ctx context.Context, h remote.Host, c ReplicaConfig) ([]string, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	st, err := readSite(ctx, h)
	if err != nil {
		return nil, err
	}
	if !st.active {
		return siteDiffs(st, c.site(), nil), nil
	}
	f, err := readFacts(ctx, h)
	if err != nil {
		return nil, err
	}
	diffs := siteDiffs(st, c.site(), f.vars)
	rs := f.replicaStatus()
	switch {
	case !rs.Configured:
		return append(diffs, "replication is not configured"), nil
	case rs.MasterHost != c.PrimaryAddress || rs.MasterPort != c.port():
		diffs = append(diffs, fmt.Sprintf("replicates from %s:%d, want %s:%d", rs.MasterHost, rs.MasterPort, c.PrimaryAddress, c.port()))
	case rs.MasterUser != c.Replication.User:
		diffs = append(diffs, fmt.Sprintf("replicates as user %q, want %q", rs.MasterUser, c.Replication.User))
	}
	if rs.UsingGTID != "Slave_Pos" {
		diffs = append(diffs, fmt.Sprintf("replication uses GTID mode %q, want Slave_Pos", rs.UsingGTID))
	}
	if ok, err := masterPasswordIs(ctx, h, c.Replication.Password); err != nil {
		return nil, err
	} else if !ok {
		diffs = append(diffs, "replication connects with another password")
	}
	if !rs.Replicating() {
		d := fmt.Sprintf("replication threads: IO %s, SQL %s", rs.IORunning, rs.SQLRunning)
		for _, e := range []string{rs.LastIOError, rs.LastSQLError} {
			if e != "" {
				d += ": " + e
			}
		}
		diffs = append(diffs, d)
	}
	if len(rs.OtherConnections) > 0 {
		diffs = append(diffs, "other replication connections exist: "+strings.Join(rs.OtherConnections, ", "))
	}
	return diffs, nil
}

// RemoveReplica stops h replicating (STOP SLAVE lets the SQL thread finish the transaction it applies) and
// forgets its primary (RESET SLAVE ALL); the server keeps running, read-only, with its data, and its option
// file says read-only too so that a restart keeps it so. Removing a server that no longer replicates and is
// read-only does nothing; one that is writable and replicates from nothing may be the primary: refused.
func RemoveReplica(ctx context.Context, h remote.Host) error {
	unlock, err := lock(ctx, h)
	if err != nil {
		return err
	}
	defer unlock()
	up, err := mariadbActive(ctx, h)
	if err != nil {
		return err
	}
	if !up {
		return fmt.Errorf("%s: %w: start it (systemctl start mariadb) to remove the replica cleanly", h.Name(), errNotRunning)
	}
	f, err := readFacts(ctx, h)
	if err != nil {
		return err
	}
	rs := f.replicaStatus()
	if !rs.Configured && !rs.ReadOnly {
		return fmt.Errorf("%s replicates from nothing and is writable: it is not a replica (the primary?): nothing done", h.Name())
	}
	if rs.Configured {
		if err := runSQL(ctx, h, "stop replication and forget the primary", sessionMode+"STOP SLAVE;\nRESET SLAVE ALL;\n"); err != nil {
			return err
		}
	}
	st, err := readSite(ctx, h)
	if err != nil {
		return err
	}
	// The site file keeps its bind address; the host is no replica any more: read-only, semi-sync off.
	if bind := siteBind(st); bind != "" {
		_, err = applySite(ctx, h, siteConfig{role: "detached replica (read-only, replicating from nothing)", opts: []option{
			{"bind_address", bind}, {"read_only", "ON"}, {"rpl_semi_sync_master_enabled", "OFF"}, {"rpl_semi_sync_slave_enabled", "OFF"},
		}})
		return err
	}
	if !rs.ReadOnly {
		return runSQL(ctx, h, "make the server read-only", sessionMode+"SET GLOBAL read_only = ON;\n")
	}
	return nil
}
