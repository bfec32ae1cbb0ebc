package mariadb

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/mohd-dev/mohd/internal/remote"
)

// fakeDB is a remote.Fake that answers the mariadb client like a server would: scripted by what the SQL on
// stdin contains (every SQL of this package travels there). It records every script it was sent.
type fakeDB struct {
	*remote.Fake
	mu      sync.Mutex
	answers []fakeAnswer
	scripts []string
	active  bool
	// other stands for the option files besides the site file: changing it changes the options on disk.
	other string
	stamp string
	// overrides are --print-defaults arguments of a file read after the site file.
	overrides string
	restarts  int
}

type fakeAnswer struct {
	contains string
	fn       func(script string) (string, int)
}

func newFakeDB(name string) *fakeDB {
	f := &fakeDB{Fake: remote.NewFake(name), active: true}
	f.Strict = true
	f.stamp = f.hashLocked()
	f.OnFunc(`mariadb --no-defaults`, func(c remote.Cmd) (remote.Result, error) {
		script := string(c.Stdin)
		f.mu.Lock()
		f.scripts = append(f.scripts, script)
		answers := append([]fakeAnswer(nil), f.answers...)
		f.mu.Unlock()
		for _, a := range answers {
			if strings.Contains(script, a.contains) {
				out, code := a.fn(script)
				if code != 0 {
					return remote.Result{ExitCode: code, Stderr: []byte(out)}, nil
				}
				return remote.Result{Stdout: []byte(out)}, nil
			}
		}
		return remote.Result{}, nil
	})
	f.OnFunc(`mariadbd --print-defaults \| sha256sum`, func(c remote.Cmd) (remote.Result, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if strings.Contains(c.Command, "printf") { // updateStamp
			f.stamp = f.hashLocked()
			return remote.Result{}, nil
		}
		site, present := f.File(SiteCnfPath)
		defaults := "--bind-address=127.0.0.1 --read_only=OFF"
		if present {
			opts, _ := parseSite(string(site.Content))
			for _, k := range slices.Sorted(maps.Keys(opts)) {
				defaults += " --" + k + "=" + opts[k]
			}
		}
		out := fmt.Sprintf("active=%s\nhash=%s\nstamp=%s\ndefaults=%s %s\n", map[bool]string{true: "yes", false: "no"}[f.active],
			f.hashLocked(), f.stamp, defaults, f.overrides)
		if present {
			out += "present=yes\n---\n" + string(site.Content)
		} else {
			out += "present=no\n"
		}
		return remote.Result{Stdout: []byte(out)}, nil
	})
	f.OnFunc(`^systemctl (start|restart|stop) mariadb`, func(c remote.Cmd) (remote.Result, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.active = !strings.HasPrefix(c.Command, "systemctl stop")
		f.stamp = f.hashLocked()
		f.restarts++
		return remote.Result{}, nil
	})
	f.On(`^true$`, remote.Result{})
	f.OnFunc(`^systemctl is-active mariadb`, func(remote.Cmd) (remote.Result, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.active {
			return remote.Result{Stdout: []byte("active\n")}, nil
		}
		return remote.Result{Stdout: []byte("inactive\n")}, nil
	})
	return f
}

// hashLocked is the hash of the options on disk: the site file and the other files.
func (f *fakeDB) hashLocked() string {
	site, _ := f.File(SiteCnfPath)
	sum := sha256.Sum256(append([]byte(f.other+"\x00"), site.Content...))
	return hex.EncodeToString(sum[:8])
}

// answer scripts the client's output for SQL containing contains.
func (f *fakeDB) answer(contains string, fn func(script string) (string, int)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers = append([]fakeAnswer{{contains, fn}}, f.answers...)
}

// answerXML answers with fixed rows.
func (f *fakeDB) answerXML(contains string, rows ...resultRow) {
	out := xmlOut(rows...)
	f.answer(contains, func(string) (string, int) { return out, 0 })
}

func (f *fakeDB) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.scripts...)
}

// sentContaining returns the scripts that contain s.
func (f *fakeDB) sentContaining(s string) []string {
	var out []string
	for _, sc := range f.sent() {
		if strings.Contains(sc, s) {
			out = append(out, sc)
		}
	}
	return out
}

// row builds a resultRow from name, value pairs; the value nil marks NULL.
func row(kv ...any) resultRow {
	var r resultRow
	for i := 0; i+1 < len(kv); i += 2 {
		c := resultColumn{Name: kv[i].(string)}
		if kv[i+1] == nil {
			c.Null = true
		} else {
			c.Value = fmt.Sprint(kv[i+1])
		}
		r = append(r, c)
	}
	return r
}

// xmlOut renders rows as the mariadb client's --xml output.
func xmlOut(rows ...resultRow) string {
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\"?>\n\n<resultset statement=\"SELECT ...\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n")
	for _, r := range rows {
		b.WriteString("  <row>\n")
		for _, c := range r {
			if c.Null {
				fmt.Fprintf(&b, "\t<field name=\"%s\" xsi:nil=\"true\" />\n", esc.Replace(c.Name))
			} else {
				fmt.Fprintf(&b, "\t<field name=\"%s\">%s</field>\n", esc.Replace(c.Name), esc.Replace(c.Value))
			}
		}
		b.WriteString("  </row>\n")
	}
	b.WriteString("</resultset>\n")
	return b.String()
}

// factsRow is the first row of factsScript's output.
func factsRow(serverID int, readOnly bool, binlogPos, binlogState, currentPos, slavePos, bind string, masterSemi, slaveSemi bool) resultRow {
	ro := "0"
	if readOnly {
		ro = "1"
	}
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	return row("version", "10.11.19-MariaDB-0+deb12u1", "server_id", serverID, "gtid_binlog_pos", binlogPos,
		"gtid_binlog_state", binlogState, "gtid_current_pos", currentPos, "gtid_slave_pos", slavePos,
		"bind_address", bind, "read_only", ro, "rpl_semi_sync_master_enabled", b(masterSemi),
		"rpl_semi_sync_master_timeout", "10000", "rpl_semi_sync_master_wait_point", "AFTER_SYNC",
		"rpl_semi_sync_slave_enabled", b(slaveSemi))
}

// slaveRow is a SHOW ALL SLAVES STATUS row for the unnamed connection.
func slaveRow(host string, io, sql, ioPos, sqlState string) resultRow {
	return row("Connection_name", "", "Slave_SQL_State", "", "Master_Host", host, "Master_User", "repl", "Master_Port", "3306",
		"Slave_IO_Running", io, "Slave_SQL_Running", sql, "Last_IO_Error", "", "Last_SQL_Error", "",
		"Seconds_Behind_Master", "0", "Using_Gtid", "Slave_Pos", "Gtid_IO_Pos", ioPos, "Slave_SQL_Running_State", sqlState)
}

type (
	remoteCmd    = remote.Cmd
	remoteResult = remote.Result
)
