package mariadb_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/mariadb"
	"github.com/mohd-dev/mohd/internal/remote"
)

// Passwords with the characters that break naive quoting.
const (
	appPassword  = `app'pa"ss\word;--`
	replPassword = `r3pl'\"x`
)

// sqlOn runs one statement on h through the socket as root (docker exec: an assertion, not the code under test).
func sqlOn(t *testing.T, h *lab.Host, query string) string {
	t.Helper()
	return strings.TrimSpace(labtest.Exec(t, h, "mariadb -N -B -e "+remote.Quote(query)))
}

func serverID(addr string) uint32 {
	ip := net.ParseIP(addr).To4()
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}

// writer inserts rows with increasing ids into moodle.acked through addr as the application account,
// from the host run (as Moodle would, over TCP: root would not be stopped by read_only), and records the
// ids whose INSERT the server acknowledged.
type writer struct {
	mu     sync.Mutex
	acked  []int
	cancel context.CancelFunc
	done   chan error
}

func startWriter(t *testing.T, run remote.Host, addr string, from int) *writer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{cancel: cancel, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if n, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
				w.mu.Lock()
				w.acked = append(w.acked, n)
				w.mu.Unlock()
			}
		}
	}()
	script := fmt.Sprintf(`IFS= read -r MYSQL_PWD; export MYSQL_PWD
i=%d
while :; do
	i=$((i+1))
	if mariadb --no-defaults --connect-timeout=2 -h %s -u moodle moodle -e "INSERT INTO acked (id) VALUES ($i)" </dev/null 2>/dev/null; then echo $i; fi
done`, from, addr)
	go func() {
		_, err := run.Run(ctx, remote.Cmd{Command: script, Stdin: []byte(appPassword + "\n"), StdoutStream: pw, Secrets: []string{appPassword}, Desc: "write rows"})
		_ = pw.Close()
		w.done <- err
	}()
	return w
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *writer) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for w.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the writer has %d acknowledged rows after 2 minutes, want %d", w.count(), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *writer) stop() []int {
	w.cancel()
	// The writer ends cancelled: its error says nothing.
	if err := <-w.done; err != nil && !strings.Contains(err.Error(), "cancel") {
		w.mu.Lock()
		w.acked = append(w.acked, -1) // marks a writer that failed otherwise; missingRows reports it
		w.mu.Unlock()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked)
}

// missingRows lists the ids of acked that h does not have in moodle.acked.
func missingRows(t *testing.T, h *lab.Host, acked []int) []int {
	t.Helper()
	have := map[int]bool{}
	for _, l := range strings.Fields(sqlOn(t, h, "SELECT id FROM moodle.acked")) {
		n, _ := strconv.Atoi(l)
		have[n] = true
	}
	var missing []int
	for _, id := range acked {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing
}

// TestLabCluster wires three hosts of the db role image into a primary and two replicas and moves the
// primary around: configuration and drift, seeding under load, replication, switchover there and back,
// removal of a replica, failover after the primary is killed.
func TestLabCluster(t *testing.T) {
	l := labtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	imgs, err := lab.EnsureRoleImages(ctx, lab.RoleImageOptions{Roles: []string{"db"}, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	spec := func(name, mem string) lab.HostSpec {
		s := lab.RoleHostSpec(name, imgs[0])
		s.Memory = mem // the data directory is a volume of its own: lab.RoleHostSpec
		return s
	}
	// Different RAM: the replica's InnoDB redo log and buffer pool differ from the primary's.
	hosts := labtest.Start(t, l, spec("db1", "1g"), spec("db2", "1536m"), spec("db3", "1g"))
	db1, db2, db3 := hosts[0], hosts[1], hosts[2]
	for _, h := range hosts {
		labtest.Exec(t, h, `for i in $(seq 240); do systemctl is-active --quiet mariadb && exit 0; sleep 0.5; done; journalctl -u mariadb -n 30 --no-pager; exit 1`)
	}
	r1, r2, r3 := labtest.Remote(t, db1), labtest.Remote(t, db2), labtest.Remote(t, db3)
	mask := net.IP(l.Subnet.Mask).String()
	cluster := l.Subnet.IP.String() + "/" + mask
	pc := mariadb.PrimaryConfig{
		BindAddress: db1.Addr,
		Database:    "moodle",
		App:         mariadb.Account{User: "moodle", Password: appPassword, Hosts: []string{cluster}},
		// A pattern and an address: both forms of host.
		Replication:     mariadb.Account{User: "repl", Password: replPassword, Hosts: []string{strings.TrimSuffix(l.Subnet.IP.String(), ".0") + ".%", "127.0.0.1"}},
		SemiSync:        true,
		SemiSyncTimeout: 5 * time.Second,
	}
	rc := func(primary, bind string) mariadb.ReplicaConfig {
		return mariadb.ReplicaConfig{PrimaryAddress: primary, Replication: pc.Replication, BindAddress: bind, SemiSync: true}
	}
	topo := mariadb.Topology{Replication: pc.Replication, SemiSync: true, SemiSyncTimeout: pc.SemiSyncTimeout}
	step := func(name string, f func(t *testing.T)) {
		start := time.Now()
		ok := t.Run(name, f)
		t.Logf("%s: %s", name, time.Since(start).Round(100*time.Millisecond))
		if !ok {
			t.FailNow()
		}
	}

	step("ConfigurePrimary", func(t *testing.T) {
		changed, err := mariadb.ConfigurePrimary(ctx, r1, pc)
		if err != nil || !changed {
			t.Fatalf("first apply: changed %v, %v", changed, err)
		}
		changed, err = mariadb.ConfigurePrimary(ctx, r1, pc)
		if err != nil || changed {
			t.Fatalf("second apply: changed %v, %v (want no change)", changed, err)
		}
		ps, err := mariadb.InspectPrimary(ctx, r1, pc)
		if err != nil {
			t.Fatal(err)
		}
		if !ps.InSync || !ps.Running || ps.ReadOnly || !ps.SemiSyncEnabled || ps.RestartPending || ps.ServerID != serverID(db1.Addr) || !strings.HasPrefix(ps.Version, "10.11.") {
			t.Errorf("InspectPrimary: %+v", ps)
		}
		if got := sqlOn(t, db1, "SELECT CONCAT_WS(' ', @@bind_address, @@read_only, @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_master_timeout, @@rpl_semi_sync_slave_enabled, @@rpl_semi_sync_master_wait_point)"); got != db1.Addr+" OFF ON 5000 ON AFTER_SYNC" {
			t.Errorf("running options: %s", got)
		}
		if got := sqlOn(t, db1, "SELECT CONCAT(DEFAULT_CHARACTER_SET_NAME, ' ', DEFAULT_COLLATION_NAME) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'moodle'"); got != "utf8mb4 utf8mb4_unicode_ci" {
			t.Errorf("database: %q", got)
		}
		if got := sqlOn(t, db1, "SHOW GRANTS FOR 'moodle'@'"+cluster+"'"); !strings.Contains(got, "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES ON `moodle`.* TO `moodle`@`"+cluster+"`") {
			t.Errorf("application grants:\n%s", got)
		}
		// The password works from another host of the cluster, over TCP, and only on Moodle's database.
		login := func(h *lab.Host, user, pw, sql string) (string, error) {
			return h.Exec(ctx, "MYSQL_PWD="+remote.Quote(pw)+" mariadb --no-defaults -N -B -h "+db1.Addr+" -u "+user+" -e "+remote.Quote(sql))
		}
		if _, err := login(db2, "moodle", appPassword, "CREATE TABLE moodle.acked (id INT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
			t.Fatalf("the application account cannot create a table in its database: %v", err)
		}
		if out, err := login(db2, "moodle", appPassword, "SELECT COUNT(*) FROM mysql.global_priv"); err == nil {
			t.Errorf("the application account reads mysql.global_priv: %s", out)
		}
		if _, err := login(db2, "moodle", "wrong", "SELECT 1"); err == nil {
			t.Error("a wrong password is accepted")
		}
		// Passwords are stored as hashes: not even the binary log has them.
		if out := labtest.Exec(t, db1, "mariadb-binlog /var/lib/mysql/mariadb-bin.0* 2>/dev/null | grep -c -F "+remote.Quote(`r3pl`)+" || true"); strings.TrimSpace(out) != "0" {
			t.Errorf("the replication password is in the binary log (%s lines)", out)
		}
	})

	step("InspectPrimaryDrift", func(t *testing.T) {
		labtest.Exec(t, db1, `sed -i 's/^rpl_semi_sync_master_timeout = .*/rpl_semi_sync_master_timeout = 1234/' `+mariadb.SiteCnfPath)
		sqlOn(t, db1, "REVOKE INDEX ON `moodle`.* FROM 'moodle'@'"+cluster+"'")
		sqlOn(t, db1, "SET GLOBAL read_only = ON")
		ps, err := mariadb.InspectPrimary(ctx, r1, pc)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("drift:\n%s", strings.Join(ps.Diffs, "\n"))
		for _, want := range []string{"rpl_semi_sync_master_timeout", "a restart is pending", "lacks INDEX on `moodle`.*", "runs with read_only = 1"} {
			if !slices.ContainsFunc(ps.Diffs, func(d string) bool { return strings.Contains(d, want) }) {
				t.Errorf("drift %q not reported", want)
			}
		}
		if ps.InSync || !ps.ReadOnly || !ps.RestartPending {
			t.Errorf("InspectPrimary: %+v", ps)
		}
		pid := labtest.Exec(t, db1, "systemctl show -p MainPID --value mariadb")
		changed, err := mariadb.ConfigurePrimary(ctx, r1, pc)
		if err != nil || !changed {
			t.Fatalf("repair: changed %v, %v", changed, err)
		}
		// The file is back as the server runs it: no restart was needed.
		if got := labtest.Exec(t, db1, "systemctl show -p MainPID --value mariadb"); got != pid {
			t.Errorf("MariaDB was restarted (pid %s, then %s) to revert a hand edit it never ran with", pid, got)
		}
		if ps, err := mariadb.InspectPrimary(ctx, r1, pc); err != nil || !ps.InSync {
			t.Errorf("after the repair: %+v %v", ps, err)
		}
	})

	step("SeedReplicaUnderLoad", func(t *testing.T) {
		sqlOn(t, db1, "CREATE TABLE moodle.restored (i INT) ENGINE=InnoDB; INSERT INTO moodle.restored VALUES (1)")
		w := startWriter(t, r3, db1.Addr, 0)
		w.waitFor(t, 20)
		var lines []string
		err := mariadb.SeedReplica(ctx, r1, r2, rc(db1.Addr, db2.Addr), func(s string) { lines = append(lines, s) })
		t.Logf("seed progress:\n%s", strings.Join(lines, "\n"))
		if err != nil {
			w.stop()
			out, _ := db2.Exec(ctx, "journalctl -u mariadb -n 60 --no-pager -o cat; stat -f -c %T /var/lib/mysql; ls -la /var/lib/mysql")
			t.Fatalf("%v\n%s", err, out)
		}
		w.waitFor(t, w.count()+20) // writes go on, and replicate
		acked := w.stop()
		pos := sqlOn(t, db1, "SELECT @@gtid_binlog_pos")
		if got := sqlOn(t, db2, "SELECT MASTER_GTID_WAIT('"+pos+"', 60)"); got != "0" {
			t.Fatalf("the replica did not reach %s: %s", pos, got)
		}
		if m := missingRows(t, db2, acked); len(m) > 0 {
			t.Errorf("%d of %d acknowledged rows missing on the replica: %v", len(m), len(acked), m)
		}
		if a, b := sqlOn(t, db1, "CHECKSUM TABLE moodle.acked"), sqlOn(t, db2, "CHECKSUM TABLE moodle.acked"); a != b {
			t.Errorf("checksums differ: primary %s, replica %s", a, b)
		}
		t.Logf("%d rows written during the seed", len(acked))

		changed, err := mariadb.ConfigureReplica(ctx, r2, rc(db1.Addr, db2.Addr))
		if err != nil || changed {
			t.Errorf("ConfigureReplica after the seed: changed %v, %v (want no change)", changed, err)
		}
		if d, err := mariadb.DiffReplica(ctx, r2, rc(db1.Addr, db2.Addr)); err != nil || len(d) > 0 {
			t.Errorf("DiffReplica: %q %v", d, err)
		}
		st, err := mariadb.InspectReplica(ctx, r2)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Running || !st.Configured || !st.Replicating() || st.MasterHost != db1.Addr || st.MasterPort != 3306 || st.MasterUser != "repl" ||
			!st.ReadOnly || !st.SemiSyncSlave || st.UsingGTID != "Slave_Pos" || st.SecondsBehind == nil || *st.SecondsBehind != 0 ||
			st.GTIDSlavePos != pos || st.ServerID != serverID(db2.Addr) || st.LastIOError != "" || st.LastSQLError != "" {
			t.Errorf("InspectReplica: %+v", st)
		}
		ps, err := mariadb.InspectPrimary(ctx, r1, pc)
		if err != nil || !ps.SemiSyncActive || ps.SemiSyncClients != 1 || ps.GTIDBinlogPos != pos {
			t.Errorf("InspectPrimary with a replica: %+v %v", ps, err)
		}
		// Moodle truncates tables: the copy takes that too.
		// (moodle.restored came with the copy: its tablespace file is the restored one.)
		sqlOn(t, db1, "TRUNCATE TABLE moodle.restored")
		labtest.Exec(t, db2, `for i in $(seq 50); do [ "$(mariadb -N -B -e 'SELECT COUNT(*) FROM moodle.restored')" = 0 ] && exit 0; sleep 0.2; done; mariadb -e 'SHOW SLAVE STATUS\G'; exit 1`)
		// A row written on the primary is read on the replica.
		sqlOn(t, db1, "INSERT INTO moodle.acked VALUES (1000000)")
		labtest.Exec(t, db2, `for i in $(seq 50); do [ "$(mariadb -N -B -e 'SELECT COUNT(*) FROM moodle.acked WHERE id = 1000000')" = 1 ] && exit 0; sleep 0.2; done; exit 1`)
	})

	step("SeedReplicaRefusesForeignData", func(t *testing.T) {
		sqlOn(t, db3, "CREATE DATABASE local; CREATE TABLE local.t (i INT); INSERT INTO local.t VALUES (1)")
		err := mariadb.SeedReplica(ctx, r1, r3, rc(db1.Addr, db3.Addr), nil)
		if !errors.Is(err, mariadb.ErrReplicaHasData) {
			t.Fatalf("seeding over another server's data: %v, want ErrReplicaHasData", err)
		}
		t.Logf("refused: %v", err)
		if !strings.Contains(err.Error(), "not in the primary's history") {
			t.Errorf("the refusal does not name the replica's own transactions")
		}
		if got := sqlOn(t, db3, "SELECT COUNT(*) FROM local.t"); got != "1" {
			t.Fatalf("the refused seed touched the replica's data")
		}
		c := rc(db1.Addr, db3.Addr)
		c.OverwriteData = true
		if err := mariadb.SeedReplica(ctx, r1, r3, c, func(s string) { t.Log(s) }); err != nil {
			t.Fatal(err)
		}
		if got := sqlOn(t, db3, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'local'"); got != "0" {
			t.Errorf("the overwritten replica still has its own database")
		}
		if st, err := mariadb.InspectReplica(ctx, r3); err != nil || !st.Replicating() || st.MasterHost != db1.Addr {
			t.Errorf("db3: %+v %v", st, err)
		}
		// Re-seeding a replica of this primary needs no override: its data is the primary's.
		if err := mariadb.SeedReplica(ctx, r1, r3, rc(db1.Addr, db3.Addr), nil); err != nil {
			t.Errorf("re-seeding a replica of the same primary: %v", err)
		}
	})

	step("SwitchoverAndBack", func(t *testing.T) {
		w := startWriter(t, r3, db1.Addr, 2000000)
		w.waitFor(t, 30)
		if err := mariadb.Switchover(ctx, r1, r2, []remote.Host{r3}, topo, time.Minute); err != nil {
			w.stop()
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the writer's inserts into the old primary now fail
		acked := w.stop()
		if m := missingRows(t, db2, acked); len(m) > 0 {
			t.Errorf("%d of %d acknowledged rows missing on the new primary: %v", len(m), len(acked), m)
		}
		if got := sqlOn(t, db1, "SELECT @@read_only"); got != "1" {
			t.Errorf("old primary read_only = %s", got)
		}
		for _, c := range []struct {
			h    remote.Host
			name string
		}{{r1, "db1"}, {r3, "db3"}} {
			st, err := mariadb.InspectReplica(ctx, c.h)
			if err != nil || !st.Replicating() || st.MasterHost != db2.Addr || !st.ReadOnly {
				t.Errorf("%s after the switchover: %+v %v", c.name, st, err)
			}
		}
		pc2 := pc
		pc2.BindAddress = db2.Addr
		changed, err := mariadb.ConfigurePrimary(ctx, r2, pc2)
		if err != nil || changed {
			t.Errorf("ConfigurePrimary on the new primary: changed %v, %v (the switchover left it configured)", changed, err)
		}
		if d, err := mariadb.DiffReplica(ctx, r1, rc(db2.Addr, db1.Addr)); err != nil || len(d) > 0 {
			t.Errorf("the old primary as a replica: %q %v", d, err)
		}
		sqlOn(t, db2, "INSERT INTO moodle.acked VALUES (3000000)")
		for _, h := range []*lab.Host{db1, db3} {
			labtest.Exec(t, h, `for i in $(seq 50); do [ "$(mariadb -N -B -e 'SELECT COUNT(*) FROM moodle.acked WHERE id = 3000000')" = 1 ] && exit 0; sleep 0.2; done; exit 1`)
		}

		w = startWriter(t, r3, db2.Addr, 4000000)
		w.waitFor(t, 30)
		if err := mariadb.Switchover(ctx, r2, r1, []remote.Host{r3}, topo, time.Minute); err != nil {
			w.stop()
			t.Fatal(err)
		}
		acked = append(acked, w.stop()...)
		if m := missingRows(t, db1, acked); len(m) > 0 {
			t.Errorf("%d acknowledged rows missing after switching back: %v", len(m), m)
		}
		if ps, err := mariadb.InspectPrimary(ctx, r1, pc); err != nil || !ps.InSync {
			t.Errorf("db1, primary again: %+v %v", ps, err)
		}
		pos := sqlOn(t, db1, "SELECT @@gtid_binlog_pos")
		for _, h := range []*lab.Host{db2, db3} {
			if got := sqlOn(t, h, "SELECT MASTER_GTID_WAIT('"+pos+"', 30)"); got != "0" {
				t.Errorf("%s does not reach %s", h.Name, pos)
			}
			if a, b := sqlOn(t, db1, "CHECKSUM TABLE moodle.acked"), sqlOn(t, h, "CHECKSUM TABLE moodle.acked"); a != b {
				t.Errorf("%s: checksum %s, primary %s", h.Name, b, a)
			}
		}
	})

	step("RemoveReplica", func(t *testing.T) {
		if err := mariadb.RemoveReplica(ctx, r3); err != nil {
			t.Fatal(err)
		}
		st, err := mariadb.InspectReplica(ctx, r3)
		if err != nil || !st.Running || st.Configured || !st.ReadOnly || st.MasterHost != "" {
			t.Errorf("after RemoveReplica: %+v %v", st, err)
		}
		if got := labtest.Exec(t, db3, "grep -E '^read_only' "+mariadb.SiteCnfPath); strings.TrimSpace(got) != "read_only = ON" {
			t.Errorf("the option file does not keep the server read-only: %q", got)
		}
		if err := mariadb.RemoveReplica(ctx, r3); err != nil {
			t.Errorf("second RemoveReplica: %v", err)
		}
		if err := mariadb.RemoveReplica(ctx, r1); err == nil {
			t.Error("RemoveReplica on the primary was accepted")
		}
		if got := sqlOn(t, db1, "SELECT @@read_only"); got != "0" {
			t.Errorf("the refused RemoveReplica changed the primary")
		}
	})

	step("FailoverAfterKill", func(t *testing.T) {
		ps, err := mariadb.InspectPrimary(ctx, r1, pc)
		if err != nil || !ps.SemiSyncActive || ps.SemiSyncClients != 1 {
			t.Fatalf("semi-sync is not active before the failover: %+v %v", ps, err)
		}
		semi := func() (yes, no int) {
			for _, l := range strings.Split(sqlOn(t, db1, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_yes_tx', 'Rpl_semi_sync_master_no_tx')"), "\n") {
				f := strings.Fields(l)
				n, _ := strconv.Atoi(f[1])
				if strings.HasSuffix(f[0], "yes_tx") {
					yes = n
				} else {
					no = n
				}
			}
			return yes, no
		}
		// The replica stops applying: what the writer commits from now on reaches it only as far as its
		// relay log, which is where semi-sync's acknowledgement says it is.
		sqlOn(t, db2, "STOP SLAVE SQL_THREAD")
		yes0, no0 := semi()
		w := startWriter(t, r3, db1.Addr, 5000000)
		w.waitFor(t, 100)
		// Every commit so far waited for the replica's acknowledgement: none went without.
		yes1, no1 := semi()
		if err := db1.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		acked := w.stop()
		t.Logf("%d rows acknowledged to the writer before the primary was killed; semi-sync: %d commits acknowledged by the replica, %d not", len(acked), yes1-yes0, no1-no0)
		if no1 != no0 || yes1-yes0 < 100 {
			t.Errorf("commits were not all semi-synchronous while writing: yes_tx +%d, no_tx +%d", yes1-yes0, no1-no0)
		}
		if got := sqlOn(t, db2, "SELECT COUNT(*) FROM moodle.acked WHERE id > 5000000"); got != "0" {
			t.Fatalf("the replica applied %s rows with its SQL thread stopped", got)
		}
		if st, err := mariadb.InspectReplica(ctx, r2); err != nil || st.GTIDIOPos == st.GTIDSlavePos {
			t.Errorf("nothing waits in the relay log: %+v %v", st, err)
		}
		start := time.Now()
		pos, err := mariadb.Failover(ctx, r2, nil, topo, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("failover at GTID %s in %s", pos, time.Since(start).Round(100*time.Millisecond))
		if m := missingRows(t, db2, acked); len(m) > 0 {
			t.Errorf("%d of %d acknowledged rows lost: %v", len(m), len(acked), m)
		}
		if got := sqlOn(t, db2, "SELECT @@gtid_current_pos"); got != pos {
			t.Errorf("Failover reported %s, the server is at %s", pos, got)
		}
		pc2 := pc
		pc2.BindAddress = db2.Addr
		if ps, err := mariadb.InspectPrimary(ctx, r2, pc2); err != nil || ps.ReadOnly || ps.ReplicatingFrom != "" {
			t.Errorf("the promoted server: %+v %v", ps, err)
		}
		// The application writes there.
		if _, err := db3.Exec(ctx, "MYSQL_PWD="+remote.Quote(appPassword)+" mariadb --no-defaults -h "+db2.Addr+" -u moodle moodle -e 'INSERT INTO acked VALUES (6000000)'"); err != nil {
			t.Errorf("the application cannot write on the new primary: %v", err)
		}
	})

	step("RejoinOldPrimary", func(t *testing.T) {
		// The old primary comes back as it was: writable, with its data. It is no replica for
		// ConfigureReplica, and SeedReplica wants to be told before it replaces that data.
		if err := db1.Boot(ctx); err != nil {
			t.Fatal(err)
		}
		labtest.Exec(t, db1, `for i in $(seq 240); do systemctl is-active --quiet mariadb && exit 0; sleep 0.5; done; exit 1`)
		if _, err := mariadb.ConfigureReplica(ctx, r1, rc(db2.Addr, db1.Addr)); err == nil || !strings.Contains(err.Error(), "may be a primary") {
			t.Errorf("ConfigureReplica on the returning primary: %v", err)
		}
		err := mariadb.SeedReplica(ctx, r2, r1, rc(db2.Addr, db1.Addr), nil)
		if !errors.Is(err, mariadb.ErrReplicaHasData) {
			t.Fatalf("seeding over the returning primary: %v", err)
		}
		t.Logf("refused: %v", err)
		c := rc(db2.Addr, db1.Addr)
		c.OverwriteData = true
		if err := mariadb.SeedReplica(ctx, r2, r1, c, nil); err != nil {
			t.Fatal(err)
		}
		sqlOn(t, db2, "INSERT INTO moodle.acked VALUES (7000000)")
		labtest.Exec(t, db1, `for i in $(seq 50); do [ "$(mariadb -N -B -e 'SELECT COUNT(*) FROM moodle.acked WHERE id IN (6000000, 7000000)')" = 2 ] && exit 0; sleep 0.2; done; exit 1`)
		if d, err := mariadb.DiffReplica(ctx, r1, rc(db2.Addr, db1.Addr)); err != nil || len(d) > 0 {
			t.Errorf("the old primary, rebuilt as a replica: %q %v", d, err)
		}
	})
}
