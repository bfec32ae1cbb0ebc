package roles_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/remote"
	"github.com/mohd-dev/mohd/internal/roles"
)

// dbSQLOn runs one query on h through the socket as root, without column names.
func dbSQLOn(t *testing.T, h *lab.Host, query string) string {
	t.Helper()
	return strings.TrimSpace(labtest.Exec(t, h, "mariadb -N -B -e "+remote.Quote(query)))
}

// dbTCPFromPeer tries a TCP connection from peer to addr:port and says what happened: "open", "refused"
// (a host answered with a reset: the firewall let the packet in and nothing listens) or "dropped" (no
// answer in 3 s: the firewall dropped it).
func dbTCPFromPeer(t *testing.T, peer *lab.Host, addr string, port int) string {
	t.Helper()
	out, err := peer.Exec(context.Background(), fmt.Sprintf(
		`timeout 3 bash -c 'echo > /dev/tcp/%s/%d' 2>&1; echo "rc=$?"`, addr, port))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.Contains(out, "rc=0"):
		return "open"
	case strings.Contains(out, "rc=124"):
		return "dropped"
	case strings.Contains(out, "Connection refused"):
		return "refused"
	}
	t.Fatalf("connecting to %s:%d: %s", addr, port, out)
	return ""
}

func TestApplyDB(t *testing.T) {
	l, h := applyOnLabHost(t, "db")

	// The image binds loopback only; semi-sync is built in but off until the provider wires replication.
	if got := dbSQLOn(t, h, "SELECT CONCAT_WS(' ', @@bind_address, @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_slave_enabled, @@read_only)"); got != "127.0.0.1 OFF OFF OFF" {
		t.Errorf("bind_address semi-sync master/slave read_only: %s", got)
	}
	listen := labtest.Exec(t, h, "ss -Hltn 'sport = :3306'")
	if !strings.Contains(listen, "127.0.0.1:3306") || strings.Count(strings.TrimSpace(listen), "\n") != 0 {
		t.Errorf("MariaDB listens on:\n%s", listen)
	}
	// Nothing MOHD did is a transaction in the binary log: a replica cloned from the same image starts with
	// the same (empty) GTID history as its primary, and no errant GTID.
	if got := dbSQLOn(t, h, "SELECT CONCAT('[', @@gtid_binlog_pos, ']')"); got != "[]" {
		t.Errorf("gtid_binlog_pos after apply: %s (account maintenance must not be binlogged)", got)
	}
	// The lab host's /var/lib/mysql is a plain directory: recorded, not refused.
	if got := labtest.Exec(t, h, "cat /run/mohd/mariadb-datadir"); !strings.HasPrefix(got, "not-separate ") {
		t.Errorf("/run/mohd/mariadb-datadir: %q", got)
	}
	if got := labtest.Exec(t, h, "systemctl is-enabled mohd-mariadb-tune; systemctl show -p After --value mariadb"); !strings.HasPrefix(got, "enabled\n") || !strings.Contains(got, "mohd-mariadb-tune.service") {
		t.Errorf("the tune unit is not enabled and ordered before MariaDB: %s", got)
	}

	// From another host of the cluster: SSH and the exporter answer; 3306 passes the firewall (the cluster
	// may reach it) but nothing listens on the private address until the provider binds it, so the
	// connection is refused; a port the role does not list is dropped.
	peer := labtest.Start(t, l, lab.HostSpec{Name: "peer"})[0]
	for port, want := range map[int]string{22: "open", 9104: "open", 3306: "refused", 4444: "dropped", 8080: "dropped"} {
		if got := dbTCPFromPeer(t, peer, h.Addr, port); got != want {
			t.Errorf("port %d from a cluster peer: %s, want %s", port, got, want)
		}
	}
	if m := labtest.Exec(t, peer, "timeout 5 bash -c 'exec 3<>/dev/tcp/"+h.Addr+"/9104; printf \"GET /metrics HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'"); !strings.Contains(m, "\nmysql_up 1\n") {
		t.Errorf("the exporter does not report mysql_up 1 to the cluster")
	}
}

// TestApplyDBImageClones bakes a db image the way Packer does (apply, generalize, capture with the server
// shut down), boots two clones of it with different RAM (one on a new, empty "SSD" mounted at
// /var/lib/mysql), and checks that each sized itself and took its own server_id at boot, without an
// apply; then wires them as primary and semi-synchronous replica the way the provider will (a
// 70-mohd-site.cnf drop-in and SQL) and checks replication and its metrics.
func TestApplyDBImageClones(t *testing.T) {
	// db2's /var/lib/mysql is an empty directory of the machine running the tests, bind-mounted: a new disk.
	// Made before the lab, so that it is removed after the lab's hosts (cleanups run last-in, first-out).
	disk := t.TempDir()
	if err := os.Chmod(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	// Registered before the lab so that it runs after the lab's cleanup: an image still used by the clones'
	// containers would only lose its tag and stay behind, untagged.
	image := fmt.Sprintf("mohd-test/db-clone:%d", time.Now().UnixNano())
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })
	l := labtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	r, err := roles.Get("db")
	if err != nil {
		t.Fatal(err)
	}
	p := roles.Params{ClusterCIDR: l.Subnet.String(), PluginVersion: "test"}

	// A small build machine, as Packer's build containers are: the redo log sized at bake time stays small.
	bake := labtest.Start(t, l, lab.HostSpec{Name: "dbbake", Memory: "1g"})[0]
	start := time.Now()
	if _, err := roles.Apply(ctx, labtest.Remote(t, bake), r, p, func(s string) { t.Log(s) }); err != nil {
		t.Fatalf("apply on the build host: %v", err)
	}
	t.Logf("bake: apply %s", time.Since(start).Round(time.Second))
	if err := roles.Generalize(ctx, labtest.Remote(t, bake), nil); err != nil {
		t.Fatal(err)
	}
	labtest.Exec(t, bake, "systemctl stop mariadb")
	if out, err := exec.CommandContext(ctx, "docker", "commit", bake.Container, image).CombinedOutput(); err != nil {
		t.Fatalf("docker commit: %v\n%s", err, out)
	}
	if err := bake.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	hosts := labtest.Start(t, l,
		lab.HostSpec{Name: "db1", Image: image, Memory: "1g"},
		lab.HostSpec{Name: "db2", Image: image, Memory: "3g", Volumes: []string{disk + ":/var/lib/mysql"}})
	primary, replica := hosts[0], hosts[1]
	for _, h := range hosts {
		labtest.Exec(t, h, `for i in $(seq 240); do systemctl is-active --quiet mariadb && exit 0; sleep 0.5; done
systemctl status mariadb --no-pager; journalctl -u mariadb -u mohd-mariadb-tune -n 30 --no-pager; exit 1`)
	}

	// Sized and identified at boot, per clone: the image was baked on a host without a memory limit.
	wantPool := map[string]string{"db1": "603979776", "db2": "1879048192"} // 60% of 1 GiB and 3 GiB, in 64 MiB steps
	ids := map[string]bool{}
	for _, h := range hosts {
		got := strings.Fields(dbSQLOn(t, h, "SELECT @@innodb_buffer_pool_size, @@server_id"))
		t.Logf("%s (%s): innodb_buffer_pool_size %s, server_id %s", h.Name, h.Addr, got[0], got[1])
		if got[0] != wantPool[h.Name] {
			t.Errorf("%s: buffer pool %s, want %s", h.Name, got[0], wantPool[h.Name])
		}
		if want := dbServerID(t, h.Addr); got[1] != want {
			t.Errorf("%s: server_id %s, want %s (from %s)", h.Name, got[1], want, h.Addr)
		}
		ids[got[1]] = true
	}
	if len(ids) != 2 {
		t.Errorf("two clones of one image share a server_id: %v", ids)
	}
	if got := labtest.Exec(t, primary, "cat /run/mohd/mariadb-datadir"); !strings.HasPrefix(got, "not-separate ") {
		t.Errorf("db1 datadir record: %q", got)
	}
	if got := labtest.Exec(t, replica, "cat /run/mohd/mariadb-datadir; test -d /var/lib/mysql/mysql && echo initialized"); !strings.HasPrefix(got, "separate ") || !strings.Contains(got, "initialized") {
		t.Errorf("db2 (an empty disk at /var/lib/mysql) was not recorded as separate and initialized: %q", got)
	}
	if fi, err := os.Stat(disk + "/mysql"); err != nil || !fi.IsDir() {
		t.Errorf("the system tables are not on the mounted disk: %v", err)
	}

	// A clone is already converged: its checks pass (on the new disk too) and an apply changes nothing.
	rhs := map[string]remote.Host{}
	for _, h := range hosts {
		rhs[h.Name] = labtest.Remote(t, h)
		if err := roles.Check(ctx, rhs[h.Name], r); err != nil {
			t.Errorf("checks on clone %s: %v", h.Name, err)
		}
		rep, err := roles.Apply(ctx, rhs[h.Name], r, p, nil)
		if err != nil {
			t.Fatalf("apply on clone %s: %v", h.Name, err)
		}
		if rep.Changed() {
			t.Errorf("apply on a freshly booted clone %s changed: %+v", h.Name, rep)
		}
	}

	// The provider's turn: the private address, read_only and semi-sync in 70-mohd-site.cnf; the next apply
	// restarts MariaDB once for it, and the checks still pass with the site's settings.
	site := map[*lab.Host]string{
		primary: "rpl_semi_sync_master_enabled = ON\n",
		replica: "read_only = ON\nrpl_semi_sync_slave_enabled = ON\n",
	}
	for _, h := range hosts {
		cnf := "# test stand-in for the provider's site drop-in\n[mysqld]\nbind-address = " + h.Addr + "\n" + site[h]
		labtest.Exec(t, h, "printf %s "+remote.Quote(cnf)+" > /etc/mysql/mariadb.conf.d/70-mohd-site.cnf")
		rep, err := roles.Apply(ctx, rhs[h.Name], r, p, nil)
		if err != nil {
			t.Fatalf("apply with the site drop-in on %s: %v", h.Name, err)
		}
		if !slices.Equal(rep.Steps, []string{"restart MariaDB when its options changed"}) || len(rep.Files)+len(rep.Restarted) > 0 {
			t.Errorf("apply after the site drop-in on %s: %+v, want exactly one MariaDB restart", h.Name, rep)
		}
		if rep, err := roles.Apply(ctx, rhs[h.Name], r, p, nil); err != nil || rep.Changed() {
			t.Errorf("second apply with the site drop-in on %s: %+v %v", h.Name, rep, err)
		}
	}
	dbSQLOn(t, primary, "CREATE USER 'repl'@'"+replica.Addr+"' IDENTIFIED BY 'lab-only-secret'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'"+replica.Addr+"'")
	dbSQLOn(t, replica, "CHANGE MASTER TO MASTER_HOST='"+primary.Addr+"', MASTER_USER='repl', MASTER_PASSWORD='lab-only-secret', MASTER_USE_GTID=slave_pos; START SLAVE")
	labtest.Exec(t, primary, `for i in $(seq 60); do [ "$(mariadb -N -B -e "SHOW STATUS LIKE 'Rpl_semi_sync_master_clients'" | cut -f2)" = 1 ] && exit 0; sleep 0.5; done; exit 1`)
	dbSQLOn(t, primary, "CREATE DATABASE moodle; CREATE TABLE moodle.t (id INT PRIMARY KEY, s VARCHAR(20)) ENGINE=InnoDB; INSERT INTO moodle.t VALUES (1, 'héllo')")
	labtest.Exec(t, replica, `for i in $(seq 60); do [ "$(mariadb -N -B -e 'SELECT s FROM moodle.t WHERE id = 1' 2>/dev/null)" = héllo ] && exit 0; sleep 0.5; done; mariadb -e 'SHOW SLAVE STATUS\G'; exit 1`)

	if got := dbSQLOn(t, primary, "SHOW STATUS LIKE 'Rpl_semi_sync_master_yes_tx'"); strings.Fields(got)[1] == "0" {
		t.Errorf("no transaction was acknowledged semi-synchronously: %s", got)
	}
	pos := dbSQLOn(t, primary, "SELECT @@gtid_binlog_pos")
	if want := "0-" + dbServerID(t, primary.Addr) + "-"; !strings.HasPrefix(pos, want) {
		t.Errorf("primary gtid_binlog_pos %q, want %s*", pos, want)
	}
	if got := dbSQLOn(t, replica, "SELECT @@gtid_slave_pos"); got != pos {
		t.Errorf("replica gtid_slave_pos %q, primary gtid_binlog_pos %q", got, pos)
	}
	if got := dbSQLOn(t, replica, "SELECT CONCAT_WS(' ', @@read_only, @@bind_address, @@gtid_strict_mode)"); got != "ON "+replica.Addr+" ON" {
		t.Errorf("replica read_only bind_address gtid_strict_mode: %s", got)
	}

	// The replica's exporter shows replication, as Prometheus will scrape it.
	m := labtest.Exec(t, replica, "curl -fsS http://127.0.0.1:9104/metrics")
	for _, want := range []string{"mysql_slave_status_slave_io_running{", "mysql_slave_status_slave_sql_running{", "mysql_slave_status_seconds_behind_master{"} {
		line := dbMetricLine(m, want)
		if line == "" {
			t.Errorf("the replica's exporter has no %s...} metric", want)
			continue
		}
		t.Log(line)
		if strings.Contains(want, "running") && !strings.HasSuffix(line, " 1") {
			t.Errorf("replication is not running: %s", line)
		}
	}
	for _, h := range hosts {
		if err := roles.Check(ctx, rhs[h.Name], r); err != nil {
			t.Errorf("checks on %s wired by the site: %v", h.Name, err)
		}
	}
}

func dbMetricLine(metrics, prefix string) string {
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// dbServerID is the server_id mohd-mariadb-tune derives from an address.
func dbServerID(t *testing.T, addr string) string {
	t.Helper()
	ip := net.ParseIP(addr).To4()
	if ip == nil {
		t.Fatalf("%q is not an IPv4 address", addr)
	}
	return strconv.FormatUint(uint64(ip[0])<<24|uint64(ip[1])<<16|uint64(ip[2])<<8|uint64(ip[3]), 10)
}
