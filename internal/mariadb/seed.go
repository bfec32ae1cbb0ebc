package mariadb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
)

// ErrReplicaHasData: SeedReplica found databases on the replica that did not come from the primary.
var ErrReplicaHasData = errors.New("the replica holds databases that did not come from this primary")

// systemSchemas are the server's own databases; anything else is user data.
var systemSchemas = []string{"mysql", "information_schema", "performance_schema", "sys"}

// userDatabases lists the databases that are not the server's own.
func userDatabases(ctx context.Context, h remote.Host) ([]string, error) {
	q := make([]string, len(systemSchemas))
	for i, s := range systemSchemas {
		q[i] = quoteString(s)
	}
	rows, err := querySQL(ctx, h, "list the databases", sessionMode+
		"SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ("+strings.Join(q, ", ")+") ORDER BY SCHEMA_NAME")
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Get("name")
	}
	return out, nil
}

// seedDir is where the copy is unpacked: inside the data directory, so on the same filesystem (the data
// disk, when /var/lib/mysql is one) and moved into place by renames. The server is stopped meanwhile.
const seedDir = "/var/lib/mysql/.mohd-seed"

// backupCommand streams a consistent copy of the primary's data directory to stdout. mariadb-backup copies
// InnoDB while the primary takes writes, takes a short backup lock at the end for the rest, and records
// the binary log position and GTID of the copy. It reads the server's option files (it needs the datadir
// and InnoDB's settings) and connects as root over the socket.
var backupCommand = `set -e
command -v mariadb-backup >/dev/null || { echo "mariadb-backup is not installed (the db role installs it)" >&2; exit 1; }
exec mariadb-backup --backup --stream=xbstream --user=root --socket=` + Socket

// extractCommand unpacks the stream from stdin into seedDir.
var extractCommand = `set -e
command -v mbstream >/dev/null || { echo "mbstream is not installed (package mariadb-backup)" >&2; exit 1; }
rm -rf ` + seedDir + `
mkdir -m 0700 ` + seedDir + `
exec mbstream -x -C ` + seedDir

// prepareCommand applies the redo log the copy carries (the copy becomes consistent at the backup's end)
// and prints the binary log coordinates of that point: file, position and GTID position.
var prepareCommand = `set -e
d=` + seedDir + `
out=$(mariadb-backup --prepare --target-dir="$d" 2>&1) || { rc=$?; printf '%s\n' "$out" | tail -n 20 >&2; exit $rc; }
for f in mariadb_backup_binlog_info xtrabackup_binlog_info; do
	if [ -f "$d/$f" ]; then printf 'binlog_info='; head -n 1 "$d/$f"; exit 0; fi
done
echo "the copy has no binary log position (no mariadb_backup_binlog_info or xtrabackup_binlog_info)" >&2
exit 1`

// swapCommand replaces the (stopped) server's data with the prepared copy. Kept: lost+found, and Debian's
// markers of the data directory's version (debian-*.flag, mysql_upgrade_info). The old binary and relay
// logs and the old replication settings go with the old data; so do the backup's own bookkeeping files.
// The copy is moved in by renames (mariadb-backup --move-back, MariaDB's documented restore).
var swapCommand = `set -e
d=` + seedDir + `
cd /var/lib/mysql
[ -d "$d/mysql" ] || { echo "the prepared copy has no system tables" >&2; exit 1; }
find . -mindepth 1 -maxdepth 1 ! -name .mohd-seed ! -name lost+found ! -name 'debian-*.flag' ! -name mysql_upgrade_info -exec rm -rf {} +
out=$(mariadb-backup --move-back --force-non-empty-directories --target-dir="$d" 2>&1) || { rc=$?; printf '%s\n' "$out" | tail -n 20 >&2; exit $rc; }
rm -rf "$d"
rm -f xtrabackup_* mariadb_backup_* backup-my.cnf
chown -R mysql:mysql /var/lib/mysql`

// SeedReplica makes replica a copy of primary and starts replication from the copy's point:
//
//  1. checks that the replica holds no databases that did not come from this primary (else it fails with
//     ErrReplicaHasData unless c.OverwriteData is set): a replica's own data is recognised by its GTIDs,
//     all of which must be in the primary's history, or by it replicating from this primary already;
//  2. stops MariaDB on the replica;
//  3. streams mariadb-backup's copy of the primary (taken while it serves writes) through this process
//     into mbstream on the replica: nothing is written to disk on this machine or on the primary;
//  4. prepares the copy, swaps it in for the replica's data directory, writes the replica's option file
//     and starts MariaDB;
//  5. sets the replica's binary log state and gtid_slave_pos to the copy's GTID position, so that it
//     replicates from exactly there, and can itself serve replicas from there once promoted;
//  6. configures replication as ConfigureReplica does.
//
// progress (may be nil) receives a line per step and the volume copied.
func SeedReplica(ctx context.Context, primary, replica remote.Host, c ReplicaConfig, progress func(string)) error {
	if err := c.validate(); err != nil {
		return err
	}
	say := func(format string, a ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, a...))
		}
	}
	if primary.Name() == replica.Name() {
		return fmt.Errorf("seed: the primary and the replica are the same host %s", primary.Name())
	}
	unlock, err := lock(ctx, replica)
	if err != nil {
		return err
	}
	defer unlock()

	pf, err := readFacts(ctx, primary)
	if err != nil {
		return err
	}
	if pf.readOnly {
		say("warning: the primary %s is read-only", primary.Name())
	}
	if err := checkSeedTarget(ctx, primary, replica, c, pf); err != nil {
		return err
	}

	say("stopping MariaDB on %s", replica.Name())
	if err := systemctlMariaDB(ctx, replica, "stop"); err != nil {
		return err
	}
	say("copying the primary %s with mariadb-backup, streamed to %s", primary.Name(), replica.Name())
	start := time.Now()
	n, err := streamBackup(ctx, primary, replica, say)
	if err != nil {
		return fmt.Errorf("seed: %w (the replica's MariaDB is stopped; its old data is still in place)", err)
	}
	say("copied %s in %s; preparing the copy", humanBytes(n), time.Since(start).Round(time.Second))
	res, err := replica.Run(ctx, remote.Cmd{Command: prepareCommand, Desc: "prepare the copy (mariadb-backup --prepare)"})
	if err != nil {
		return err
	}
	gtid, err := parseBinlogInfo(string(res.Stdout))
	if err != nil {
		return fmt.Errorf("%s: %w", replica.Name(), err)
	}
	say("the copy is at GTID position %q; replacing the replica's data directory", gtid)
	if _, err := replica.Run(ctx, remote.Cmd{Command: swapCommand, Desc: "replace the data directory with the copy"}); err != nil {
		return err
	}
	// The option file first, so that the server starts read-only.
	if _, err := applySite(ctx, replica, c.site()); err != nil {
		return err
	}
	stmts := []string{"STOP SLAVE;", "RESET SLAVE ALL;", "RESET MASTER;"}
	if gtid != "" {
		stmts = append(stmts, "SET GLOBAL gtid_binlog_state = "+quoteString(gtid)+";")
	}
	stmts = append(stmts, "SET GLOBAL gtid_slave_pos = "+quoteString(gtid)+";")
	if err := runSQL(ctx, replica, "start the replica's history at the copy's GTID position", sessionMode+strings.Join(stmts, "\n")+"\n"); err != nil {
		return err
	}
	say("replicating from %s:%d", c.PrimaryAddress, c.port())
	_, err = configureReplica(ctx, replica, c)
	return err
}

// checkSeedTarget refuses to overwrite data that is not the primary's.
func checkSeedTarget(ctx context.Context, primary, replica remote.Host, c ReplicaConfig, pf facts) error {
	up, err := mariadbActive(ctx, replica)
	if err != nil {
		return err
	}
	if !up {
		if c.OverwriteData {
			return nil
		}
		return fmt.Errorf("%s: %w: its data cannot be checked before it is overwritten; start it, or set OverwriteData to replace whatever it holds", replica.Name(), errNotRunning)
	}
	rf, err := readFacts(ctx, replica)
	if err != nil {
		return err
	}
	if rf.serverID == pf.serverID {
		return fmt.Errorf("%s and %s have the same server_id %d: replication needs them to differ (mohd-mariadb-tune derives it from the host's address)", primary.Name(), replica.Name(), rf.serverID)
	}
	dbs, err := userDatabases(ctx, replica)
	if err != nil || len(dbs) == 0 || c.OverwriteData {
		return err
	}
	rs := rf.replicaStatus()
	pos, err := ParseGTIDList(rf.currentPos)
	if err != nil {
		return err
	}
	state, err := ParseGTIDList(pf.binlogState)
	if err != nil {
		return err
	}
	contained, missing := gtidContained(pos, state)
	var why string
	switch {
	case rs.Configured && rs.MasterHost != c.PrimaryAddress:
		why = "it replicates from " + rs.MasterHost
	case len(pos) == 0:
		why = "they were not written through the binary log"
	case !contained:
		why = "its transactions " + formatGTIDs(missing) + " are not in the primary's history"
	case !rf.readOnly && !rs.Configured:
		why = "it is writable and replicates from nothing (a primary?)"
	default:
		return nil // a copy of this primary: replicating from it, or detached and read-only
	}
	return fmt.Errorf("%s: %w (databases %s; %s): remove them, or set OverwriteData (the resource's option to overwrite the replica's data) to replace them with the primary's copy",
		replica.Name(), ErrReplicaHasData, strings.Join(dbs, ", "), why)
}

// streamBackup pipes the primary's backup into the replica's mbstream: one io.Pipe, each side in its own
// goroutine, so the copy never touches this machine's disk. When either side fails the other is cancelled
// (a backup that broke off must never be taken for a complete copy, even if mbstream ended cleanly on the
// truncated stream).
func streamBackup(ctx context.Context, primary, replica remote.Host, say func(string, ...any)) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	cw := &countingWriter{w: pw, every: 256 << 20, report: func(n int64) { say("copied %s", humanBytes(n)) }}
	var backupErr, extractErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, backupErr = primary.Run(ctx, remote.Cmd{Command: backupCommand, StdoutStream: cw, Desc: "stream a copy of the database (mariadb-backup --backup)"})
		if backupErr != nil {
			cancel()
		}
		pw.CloseWithError(backupErr)
	}()
	go func() {
		defer wg.Done()
		_, extractErr = replica.Run(ctx, remote.Cmd{Command: extractCommand, StdinStream: pr, Desc: "unpack the copy (mbstream)"})
		if extractErr != nil {
			cancel()
		}
		// Whatever the primary still sends has nowhere to go: its writes must fail, not block.
		pr.CloseWithError(errors.New("the replica's mbstream ended"))
	}()
	wg.Wait()
	if backupErr != nil && extractErr != nil && errors.Is(extractErr, context.Canceled) {
		extractErr = nil // cancelled because of the backup
	}
	if extractErr != nil && backupErr != nil && errors.Is(backupErr, context.Canceled) {
		backupErr = nil
	}
	return cw.total(), errors.Join(backupErr, extractErr)
}

// countingWriter counts what passes and reports every `every` bytes.
type countingWriter struct {
	w      io.Writer
	every  int64
	report func(int64)
	mu     sync.Mutex
	n      int64
	next   int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.mu.Lock()
	c.n += int64(n)
	if c.next == 0 {
		c.next = c.every
	}
	var r int64
	if c.n >= c.next {
		r = c.n
		c.next += c.every
	}
	c.mu.Unlock()
	if r > 0 && c.report != nil {
		c.report(r)
	}
	return n, err
}

func (c *countingWriter) total() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}

// parseBinlogInfo reads prepareCommand's output: "binlog_info=<file>\t<position>\t<GTID list>"; the GTID
// list is empty when the primary's binary log holds no transaction yet.
func parseBinlogInfo(out string) (string, error) {
	for _, line := range strings.Split(out, "\n") {
		v, ok := strings.CutPrefix(line, "binlog_info=")
		if !ok {
			continue
		}
		f := strings.Split(strings.TrimSpace(v), "\t")
		if len(f) < 2 || f[0] == "" {
			return "", fmt.Errorf("the copy's binary log position %q is not <file> <position> [<GTID>]", v)
		}
		if len(f) < 3 {
			return "", nil
		}
		gtid := strings.TrimSpace(f[2])
		if _, err := ParseGTIDList(gtid); err != nil {
			return "", fmt.Errorf("the copy's GTID position: %w", err)
		}
		return gtid, nil
	}
	return "", errors.New("the copy's binary log position was not printed")
}
