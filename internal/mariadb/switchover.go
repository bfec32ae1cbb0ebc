package mariadb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Topology is what Switchover and Failover need to rewire a cluster.
type Topology struct {
	// PrimaryAddress is the address the other servers replicate from once the new primary is in service;
	// empty: the bind address of the new primary's site option file (its private address).
	PrimaryAddress string
	// PrimaryPort defaults to 3306.
	PrimaryPort int
	// Replication is the replication account (as in PrimaryConfig; its Hosts are not used here).
	Replication Account
	// SemiSync and SemiSyncTimeout as in PrimaryConfig.
	SemiSync        bool
	SemiSyncTimeout time.Duration
}

func (t Topology) port() int {
	if t.PrimaryPort == 0 {
		return DefaultPort
	}
	return t.PrimaryPort
}

func (t Topology) validate() error {
	if t.PrimaryAddress != "" {
		if err := validateAddress("topology: primary address", t.PrimaryAddress); err != nil {
			return err
		}
	}
	if err := validatePort("topology: primary port", t.PrimaryPort); err != nil {
		return err
	}
	return t.Replication.validate("the replication account", false)
}

// ErrIncomplete: the new primary is in service, but a server that should now replicate from it could not
// be repointed (the error names it): fix it, or seed it again.
var ErrIncomplete = errors.New("the new primary is in service, but not every server replicates from it")

// DefaultSwitchTimeout is used when Switchover or Failover get no timeout.
const DefaultSwitchTimeout = time.Minute

// lockAll takes this package's lock on every host, in name order (so two calls never wait on each other).
func lockAll(ctx context.Context, hosts ...remote.Host) (func(), error) {
	byName := map[string]remote.Host{}
	for _, h := range hosts {
		byName[h.Name()] = h
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	var unlocks []func()
	release := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for _, n := range names {
		u, err := lock(ctx, byName[n])
		if err != nil {
			release()
			return nil, err
		}
		unlocks = append(unlocks, u)
	}
	return release, nil
}

// hostBind reads the bind address of a host's site file, which a change of role keeps.
func hostBind(ctx context.Context, h remote.Host) (string, error) {
	st, err := readSite(ctx, h)
	if err != nil {
		return "", err
	}
	bind := siteBind(st)
	if bind == "" {
		return "", fmt.Errorf("%s has no bind address in %s: configure it as a primary or replica first", h.Name(), SiteCnfPath)
	}
	return bind, nil
}

// killAppConnections kills client connections other than the server's own, root's, the exporter's and
// replication's: the application's, which after read_only can only fail; they reconnect elsewhere.
func killAppConnections(ctx context.Context, h remote.Host, replUser string) error {
	rows, err := querySQL(ctx, h, "list the application's connections", sessionMode+
		"SELECT ID AS id FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "+
		"AND COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Killed') "+
		"AND USER NOT IN ('system user', 'event_scheduler', 'unauthenticated user', 'root', 'prometheus', "+quoteString(replUser)+")")
	if err != nil || len(rows) == 0 {
		return err
	}
	var b strings.Builder
	for _, r := range rows {
		if id, err := strconv.ParseUint(r.Get("id"), 10, 64); err == nil {
			fmt.Fprintf(&b, "KILL CONNECTION %d;\n", id)
		}
	}
	// A connection may end by itself meanwhile (Unknown thread id): --force goes on, the error is ignored.
	_, _ = h.Run(ctx, remote.Cmd{Command: clientCommand("--batch --force"), Stdin: []byte(b.String()), Desc: "disconnect the application"})
	return nil
}

// makeReadOnly sets read_only on a primary. SET GLOBAL read_only waits for running commits (up to
// lock_wait_timeout); when that times out the application's connections are killed and it is tried again.
func makeReadOnly(ctx context.Context, h remote.Host, replUser string, timeout time.Duration) error {
	secs := max(int(timeout.Seconds()), 1)
	stmt := fmt.Sprintf("%sSET SESSION lock_wait_timeout = %d;\nSET GLOBAL read_only = ON;\n", sessionMode, secs)
	if err := runSQL(ctx, h, "make the old primary read-only", stmt); err == nil {
		return nil
	}
	if err := killAppConnections(ctx, h, replUser); err != nil {
		return err
	}
	return runSQL(ctx, h, "make the old primary read-only", stmt)
}

// waitGTID waits until h has applied pos (SELECT MASTER_GTID_WAIT): 0 is done, -1 a timeout.
func waitGTID(ctx context.Context, h remote.Host, pos string, timeout time.Duration) error {
	if pos == "" {
		return nil
	}
	secs := max(timeout.Seconds(), 1)
	v, err := queryValue(ctx, h, "wait until the server has applied "+pos,
		fmt.Sprintf("%sSELECT MASTER_GTID_WAIT(%s, %.0f) AS r;\n", sessionMode, quoteString(pos), secs))
	if err != nil {
		return err
	}
	if v != "0" {
		st, _ := InspectReplica(ctx, h)
		return fmt.Errorf("%s has not applied the primary's transactions up to %s after %s (it is at %s; IO %s, SQL %s %s)",
			h.Name(), pos, timeout, st.GTIDSlavePos, st.IORunning, st.SQLRunning, st.LastSQLError)
	}
	return nil
}

// semiSyncMasterSQL turns the semi-sync master side on (or off) at once, before a promoted server opens.
func semiSyncMasterSQL(t Topology) string {
	timeout := t.SemiSyncTimeout
	if timeout <= 0 {
		timeout = DefaultSemiSyncTimeout
	}
	return fmt.Sprintf("SET GLOBAL rpl_semi_sync_master_timeout = %d;\nSET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC;\nSET GLOBAL rpl_semi_sync_master_enabled = %s;\nSET GLOBAL rpl_semi_sync_slave_enabled = %s;\n",
		timeout.Milliseconds(), onOff(t.SemiSync), onOff(t.SemiSync))
}

// repoint makes h replicate from addr, from its own gtid_slave_pos.
func repoint(ctx context.Context, h remote.Host, addr string, t Topology, bind string) error {
	if _, err := applySite(ctx, h, replicaSite(bind, t.SemiSync)); err != nil {
		return err
	}
	if err := runSQL(ctx, h, "replicate from the new primary "+addr,
		sessionMode+"STOP SLAVE;\n"+changeMaster(addr, t.port(), t.Replication)+"\nSTART SLAVE;\n", t.Replication.Password); err != nil {
		return err
	}
	return waitReplicating(ctx, h, 30*time.Second)
}

// Switchover moves the primary from oldPrimary to newPrimary, one of its replicas, without losing a
// transaction; both must answer (else see Failover):
//
//  1. the old primary becomes read-only (waiting up to timeout for running commits) and the application's
//     connections to it are closed; its gtid_binlog_pos is then the last transaction there will be;
//  2. newPrimary waits (MASTER_GTID_WAIT, up to timeout) until it has applied that position;
//  3. newPrimary stops replicating and forgets the old primary (RESET SLAVE ALL), semi-sync master on;
//  4. the old primary replicates from the new one, from that position, read-only (its option file too);
//  5. newPrimary becomes writable (its option file says primary);
//  6. otherReplicas replicate from the new primary.
//
// A failure before step 5 puts everything back as it was (the old primary writable again). A failure at
// step 6 leaves the new primary in service and returns an error wrapping ErrIncomplete. Running it again
// after the new primary is in service only repoints the others.
func Switchover(ctx context.Context, oldPrimary, newPrimary remote.Host, otherReplicas []remote.Host, c Topology, timeout time.Duration) (err error) {
	if err := c.validate(); err != nil {
		return err
	}
	if timeout <= 0 {
		timeout = DefaultSwitchTimeout
	}
	if oldPrimary.Name() == newPrimary.Name() {
		return fmt.Errorf("switchover: %s is both the old and the new primary", oldPrimary.Name())
	}
	unlock, err := lockAll(ctx, append([]remote.Host{oldPrimary, newPrimary}, otherReplicas...)...)
	if err != nil {
		return err
	}
	defer unlock()

	newBind, err := hostBind(ctx, newPrimary)
	if err != nil {
		return err
	}
	oldBind, err := hostBind(ctx, oldPrimary)
	if err != nil {
		return err
	}
	addr := c.PrimaryAddress
	if addr == "" {
		addr = newBind
	}
	nf, err := readFacts(ctx, newPrimary)
	if err != nil {
		return err
	}
	of, err := readFacts(ctx, oldPrimary)
	if err != nil {
		return err
	}
	ns, olds := nf.replicaStatus(), of.replicaStatus()
	if !ns.Configured && !nf.readOnly && olds.Configured && olds.MasterHost == addr {
		// Done by an earlier call that failed at the last step.
		return repointAll(ctx, otherReplicas, addr, c, "", timeout)
	}
	switch {
	case !ns.Configured:
		return fmt.Errorf("switchover: %s replicates from nothing: only a replica of the primary can become the primary", newPrimary.Name())
	case !ns.Replicating():
		return fmt.Errorf("switchover: %s does not replicate (IO %s, SQL %s %s%s): it cannot catch up with the primary; repair it or seed it again",
			newPrimary.Name(), ns.IORunning, ns.SQLRunning, ns.LastIOError, ns.LastSQLError)
	case olds.Configured:
		return fmt.Errorf("switchover: %s replicates from %s: it is not the primary", oldPrimary.Name(), olds.MasterHost)
	}

	// Steps undone, last first, when a later one fails before the new primary is in service.
	var undo []func() error
	defer func() {
		if err == nil {
			return
		}
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			errs = append(errs, undo[i]())
		}
		if u := errors.Join(errs...); u != nil {
			err = fmt.Errorf("%w\nputting the cluster back as it was failed too: %w", err, u)
		} else if len(undo) > 0 {
			err = fmt.Errorf("%w\n(the cluster is back as it was: %s is the primary)", err, oldPrimary.Name())
		}
	}()

	// 1.
	if err := makeReadOnly(ctx, oldPrimary, c.Replication.User, timeout); err != nil {
		return err
	}
	undo = append(undo, func() error {
		return runSQL(context.WithoutCancel(ctx), oldPrimary, "make the old primary writable again", sessionMode+"SET GLOBAL read_only = OFF;\n")
	})
	if err := killAppConnections(ctx, oldPrimary, c.Replication.User); err != nil {
		return err
	}
	of, err = readFacts(ctx, oldPrimary)
	if err != nil {
		return err
	}
	pos := of.binlogPos
	// 2.
	if err := waitGTID(ctx, newPrimary, pos, timeout); err != nil {
		return err
	}
	// 3.
	if err := runSQL(ctx, newPrimary, "stop replicating on the new primary", sessionMode+semiSyncMasterSQL(c)+"STOP SLAVE;\nRESET SLAVE ALL;\n"); err != nil {
		return err
	}
	undo = append(undo, func() error {
		return runSQL(context.WithoutCancel(ctx), newPrimary, "make the new primary a replica again", sessionMode+
			"SET GLOBAL rpl_semi_sync_master_enabled = OFF;\n"+changeMaster(ns.MasterHost, ns.MasterPort, c.Replication)+"\nSTART SLAVE;\n", c.Replication.Password)
	})
	// 4.
	undo = append(undo, func() error {
		wctx := context.WithoutCancel(ctx)
		if err := runSQL(wctx, oldPrimary, "stop the old primary replicating", sessionMode+"STOP SLAVE;\nRESET SLAVE ALL;\n"); err != nil {
			return err
		}
		_, err := applySite(wctx, oldPrimary, primarySite(oldBind, c.SemiSync, c.SemiSyncTimeout))
		return err
	})
	if err := runSQL(ctx, oldPrimary, "make the old primary replicate from the new one", sessionMode+
		"SET GLOBAL gtid_slave_pos = "+quoteString(pos)+";\n"+changeMaster(addr, c.port(), c.Replication)+"\nSTART SLAVE;\n", c.Replication.Password); err != nil {
		return err
	}
	if _, err := applySite(ctx, oldPrimary, replicaSite(oldBind, c.SemiSync)); err != nil {
		return err
	}
	// 5.
	if _, err := applySite(ctx, newPrimary, primarySite(newBind, c.SemiSync, c.SemiSyncTimeout)); err != nil {
		return err
	}
	undo = nil
	// 6.
	var errs []error
	if err := waitReplicating(ctx, oldPrimary, 30*time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := repointAll(ctx, otherReplicas, addr, c, pos, timeout); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrIncomplete, errors.Join(errs...))
	}
	return nil
}

// repointAll makes each replica replicate from addr, after it has applied pos when given (it then has
// everything the old primary had: nothing is lost or applied twice).
func repointAll(ctx context.Context, replicas []remote.Host, addr string, c Topology, pos string, timeout time.Duration) error {
	var errs []error
	for _, h := range replicas {
		err := func() error {
			bind, err := hostBind(ctx, h)
			if err != nil {
				return err
			}
			if err := waitGTID(ctx, h, pos, min(timeout, 30*time.Second)); err != nil {
				return err
			}
			return repoint(ctx, h, addr, c, bind)
		}()
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrIncomplete, errors.Join(errs...))
	}
	return nil
}

// drainRelay stops h receiving from its (lost) primary and waits until it has applied everything it
// received: its gtid_slave_pos reaches Gtid_IO_Pos, or the SQL thread says it has read the whole relay
// log (twice in a row). In the latter case the relay log may end inside a transaction the dead primary
// was sending: a transaction whose end never arrived was never acknowledged, so never reported committed
// to its client, and is rightly dropped.
//
// Order matters: with GTIDs, MariaDB discards the relay log when replication starts while both threads
// are stopped (it fetches again from gtid_slave_pos, from a primary that is gone). So a SQL thread stopped
// by hand is started before the IO thread is stopped, and a replica with both threads stopped is refused:
// what its relay log holds can no longer be applied.
func drainRelay(ctx context.Context, h remote.Host, timeout time.Duration) error {
	f, err := readFacts(ctx, h)
	if err != nil {
		return err
	}
	st := f.replicaStatus()
	if st.SQLRunning != "Yes" {
		switch {
		case st.LastSQLError != "":
			return fmt.Errorf("%s stopped applying its relay log: %s", h.Name(), st.LastSQLError)
		case st.IORunning == "No":
			return fmt.Errorf("%s: both replication threads are stopped: starting them again would discard its relay log (GTID mode), so what it received after %s cannot be applied; promote another replica, or accept losing it (START SLAVE, then fail over again)", h.Name(), st.GTIDSlavePos)
		}
		if err := runSQL(ctx, h, "apply the relay log", sessionMode+"START SLAVE SQL_THREAD;\n"); err != nil {
			return err
		}
	}
	if err := runSQL(ctx, h, "stop receiving from the lost primary", sessionMode+"STOP SLAVE IO_THREAD;\n"); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	idle := 0
	for {
		f, err := readFacts(ctx, h)
		if err != nil {
			return err
		}
		st := f.replicaStatus()
		if st.SQLRunning != "Yes" {
			if st.LastSQLError != "" {
				return fmt.Errorf("%s stopped applying its relay log: %s", h.Name(), st.LastSQLError)
			}
			return fmt.Errorf("%s: the replication SQL thread stopped: its relay log cannot be applied", h.Name())
		}
		slave, _ := ParseGTIDList(st.GTIDSlavePos)
		io, _ := ParseGTIDList(st.GTIDIOPos)
		if gtidReached(slave, io) {
			return nil
		}
		if strings.Contains(st.SQLState, "has read all relay log") {
			idle++
			if idle >= 2 {
				return nil
			}
		} else {
			idle = 0
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has not applied its relay log after %s (applied %s, received %s)", h.Name(), timeout, st.GTIDSlavePos, st.GTIDIOPos)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// Failover promotes newPrimary, a replica, when the primary is lost (does not answer; it must not come
// back as a primary: rebuild it as a replica with SeedReplica). Nothing is chosen automatically: the
// caller names the new primary, and Failover refuses when another reachable replica holds transactions
// newPrimary lacks (promote that one instead). Steps:
//
//  1. newPrimary stops receiving (STOP SLAVE IO_THREAD) and applies all it received (up to timeout; see
//     drainRelay);
//  2. so do otherReplicas, and their positions are compared with newPrimary's history;
//  3. newPrimary forgets the old primary, semi-sync master on; the other replicas replicate from it;
//  4. newPrimary becomes writable (its option file says primary).
//
// With semi-synchronous replication every commit the old primary acknowledged to a client is in a
// replica's relay log (see the package documentation), so after step 1 it is in newPrimary when
// newPrimary was the replica that acknowledged, which step 2 checks as far as it can. It returns the GTID
// position newPrimary was promoted at. A failure at step 3 for another replica wraps ErrIncomplete.
func Failover(ctx context.Context, newPrimary remote.Host, otherReplicas []remote.Host, c Topology, timeout time.Duration) (pos string, err error) {
	if err := c.validate(); err != nil {
		return "", err
	}
	if timeout <= 0 {
		timeout = DefaultSwitchTimeout
	}
	unlock, err := lockAll(ctx, append([]remote.Host{newPrimary}, otherReplicas...)...)
	if err != nil {
		return "", err
	}
	defer unlock()
	newBind, err := hostBind(ctx, newPrimary)
	if err != nil {
		return "", err
	}
	addr := c.PrimaryAddress
	if addr == "" {
		addr = newBind
	}
	nf, err := readFacts(ctx, newPrimary)
	if err != nil {
		return "", err
	}
	ns := nf.replicaStatus()
	if !ns.Configured {
		if nf.readOnly {
			return "", fmt.Errorf("failover: %s replicates from nothing and is read-only: it is no replica of the lost primary", newPrimary.Name())
		}
		// Promoted by an earlier call that failed later: finish repointing.
		return nf.currentPos, repointAll(ctx, otherReplicas, addr, c, "", timeout)
	}
	// 1.
	restartIO := func(hosts ...remote.Host) {
		for _, h := range hosts {
			_ = runSQL(context.WithoutCancel(ctx), h, "receive from the old primary again", sessionMode+"START SLAVE IO_THREAD;\n")
		}
	}
	if err := drainRelay(ctx, newPrimary, timeout); err != nil {
		restartIO(newPrimary)
		return "", fmt.Errorf("failover: %w: not promoted", err)
	}
	nf, err = readFacts(ctx, newPrimary)
	if err != nil {
		return "", err
	}
	state, err := ParseGTIDList(nf.binlogState)
	if err != nil {
		return "", err
	}
	// 2.
	var reachable []remote.Host
	var skipped []error
	for _, h := range otherReplicas {
		if _, err := h.Run(ctx, remote.Cmd{Command: "true", Desc: "reach the replica"}); err != nil {
			skipped = append(skipped, err)
			continue
		}
		reachable = append(reachable, h)
		if err := drainRelay(ctx, h, timeout); err != nil {
			skipped = append(skipped, err)
			continue
		}
		of, err := readFacts(ctx, h)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		p, err := ParseGTIDList(of.currentPos)
		if err != nil {
			return "", err
		}
		if ok, missing := gtidContained(p, state); !ok {
			restartIO(append([]remote.Host{newPrimary}, reachable...)...)
			return "", fmt.Errorf("failover: %s holds transactions %s that %s lacks (it is at %s, %s at %s): promote %s instead, or rebuild it after the failover; nothing was promoted",
				h.Name(), formatGTIDs(missing), newPrimary.Name(), of.currentPos, newPrimary.Name(), nf.currentPos, h.Name())
		}
	}
	// 3.
	if err := runSQL(ctx, newPrimary, "forget the lost primary", sessionMode+semiSyncMasterSQL(c)+"STOP SLAVE;\nRESET SLAVE ALL;\n"); err != nil {
		return "", err
	}
	nf, err = readFacts(ctx, newPrimary)
	if err != nil {
		return "", err
	}
	pos = nf.currentPos
	repointErr := repointAll(ctx, reachable, addr, c, "", timeout)
	// 4.
	if _, err := applySite(ctx, newPrimary, primarySite(newBind, c.SemiSync, c.SemiSyncTimeout)); err != nil {
		return pos, err
	}
	if len(skipped) > 0 {
		repointErr = errors.Join(repointErr, fmt.Errorf("%w: %w", ErrIncomplete, errors.Join(skipped...)))
	}
	return pos, repointErr
}
