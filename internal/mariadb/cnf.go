package mariadb

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
	"github.com/mohd-dev/mohd/internal/roles"
)

// SiteCnfPath is the site's option file: the db role reads it after its own (55-mohd-server.cnf,
// 60-mohd-host.cnf) and never writes it (internal/roles/db.go).
const SiteCnfPath = "/etc/mysql/mariadb.conf.d/70-mohd-site.cnf"

// The db role's record of the options the running server started with (written by mohd-mariadb-prestart at
// every start) and how it hashes the options on disk.
const (
	configStamp = roles.DBConfigStamp
	configHash  = roles.DBConfigHash
)

// DefaultSemiSyncTimeout is how long a commit on the primary waits for a replica's acknowledgement before
// the primary falls back to asynchronous replication (MariaDB's default).
const DefaultSemiSyncTimeout = 10 * time.Second

// option is one line of the site file; key as MariaDB spells the variable (underscores).
type option struct{ key, value string }

// siteConfig is the content of the site file for one role of the host.
type siteConfig struct {
	role string // "primary" or "replica", for the file's header
	opts []option
}

// primarySite: writable, semi-synchronous master with the timeout, and the semi-sync replica side enabled
// too, so that once this host is demoted by a switchover it acknowledges its new primary's commits at once.
// The wait point is written out although it is the default: AFTER_SYNC is what makes an acknowledged commit
// survive the primary's loss (see the package documentation).
func primarySite(bind string, semiSync bool, timeout time.Duration) siteConfig {
	if timeout <= 0 {
		timeout = DefaultSemiSyncTimeout
	}
	return siteConfig{role: "primary", opts: []option{
		{"bind_address", bind},
		{"read_only", "OFF"},
		{"rpl_semi_sync_master_enabled", onOff(semiSync)},
		{"rpl_semi_sync_master_timeout", strconv.FormatInt(timeout.Milliseconds(), 10)},
		{"rpl_semi_sync_master_wait_point", "AFTER_SYNC"},
		{"rpl_semi_sync_slave_enabled", onOff(semiSync)},
	}}
}

// replicaSite: read-only (the application account cannot write; replication and root can), the semi-sync
// replica side on, the master side off (nothing replicates from a replica).
func replicaSite(bind string, semiSync bool) siteConfig {
	return siteConfig{role: "replica", opts: []option{
		{"bind_address", bind},
		{"read_only", "ON"},
		{"rpl_semi_sync_master_enabled", "OFF"},
		{"rpl_semi_sync_slave_enabled", onOff(semiSync)},
	}}
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

func (s siteConfig) get(key string) string {
	for _, o := range s.opts {
		if o.key == key {
			return o.value
		}
	}
	return ""
}

func (s siteConfig) keys() []string {
	k := make([]string, len(s.opts))
	for i, o := range s.opts {
		k[i] = o.key
	}
	return k
}

// render writes the file. bind_address is spelled bind-address as in the role's 55-mohd-server.cnf.
func (s siteConfig) render() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `# Managed by MOHD (Terraform provider): this host's settings as the cluster's database %s.
# Rewritten by every apply: a change made here shows as drift and is reverted. Local overrides belong in
# 80-*.cnf .. 99-*.cnf, read after this file.
[mysqld]
`, s.role)
	for _, o := range s.opts {
		k := o.key
		if k == "bind_address" {
			k = "bind-address"
		}
		fmt.Fprintf(&b, "%s = %s\n", k, o.value)
	}
	return []byte(b.String())
}

// dynamicOptions can be changed on a running server with SET GLOBAL; any other change needs a restart.
var dynamicOptions = []string{
	"read_only",
	"rpl_semi_sync_master_enabled",
	"rpl_semi_sync_master_timeout",
	"rpl_semi_sync_master_wait_point",
	"rpl_semi_sync_slave_enabled",
}

var booleanOptions = []string{"read_only", "rpl_semi_sync_master_enabled", "rpl_semi_sync_slave_enabled"}

func normKey(k string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "-", "_")
}

// normValue makes values comparable: ON/OFF for booleans however written, upper case for the wait point.
func normValue(key, v string) string {
	v = strings.TrimSpace(v)
	switch {
	case slices.Contains(booleanOptions, key):
		switch strings.ToUpper(v) {
		case "1", "ON", "TRUE", "YES", "":
			return "ON" // a bare "read_only" line means ON
		case "0", "OFF", "FALSE", "NO":
			return "OFF"
		}
		return strings.ToUpper(v)
	case key == "rpl_semi_sync_master_wait_point":
		return strings.ToUpper(v)
	}
	return v
}

// parseSite reads a site file into normalized key/values of its [mysqld]-like groups. ok is false when the
// file holds anything this package does not write (another group, an !include, a line it cannot read):
// then no change to it is known to be dynamic.
func parseSite(content string) (opts map[string]string, ok bool) {
	opts, ok = map[string]string{}, true
	group := ""
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '[':
			group = strings.ToLower(strings.Trim(line, "[] "))
			if group != "mysqld" && group != "server" && group != "mariadb" && group != "mariadbd" {
				ok = false
			}
			continue
		case line[0] == '!' || group == "":
			ok = false
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		k = normKey(k)
		opts[k] = normValue(k, strings.Trim(strings.TrimSpace(v), `"'`))
	}
	return opts, ok
}

// changedKeys lists the keys whose value differs between old (parsed) and want, or that only one has.
func changedKeys(old map[string]string, want siteConfig) []string {
	var out []string
	for _, o := range want.opts {
		if v, in := old[o.key]; !in || v != normValue(o.key, o.value) {
			out = append(out, o.key)
		}
	}
	for k := range old {
		if !slices.Contains(want.keys(), k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// siteState is what readSite finds on a host.
type siteState struct {
	active      bool
	hash, stamp string            // options on disk now; options the running server started with
	defaults    map[string]string // effective options on disk (last value of each), normalized keys
	present     bool
	content     string
}

// inSync: the running server has the options on disk.
func (s siteState) inSync() bool { return s.active && s.stamp != "" && s.hash == s.stamp }

const readSiteScript = `f=` + SiteCnfPath + `
if systemctl is-active --quiet mariadb.service; then echo active=yes; else echo active=no; fi
echo "hash=$(` + configHash + `)"
echo "stamp=$(cat ` + configStamp + ` 2>/dev/null || true)"
echo "defaults=$(env HOME=/nonexistent mariadbd --print-defaults 2>/dev/null | tail -n +2 | tr '\n' ' ')"
if [ -f "$f" ]; then echo present=yes; echo ---; cat "$f"; else echo present=no; fi`

func readSite(ctx context.Context, h remote.Host) (siteState, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: readSiteScript, Desc: "read MariaDB's site options and whether the server runs with them"})
	if err != nil {
		return siteState{}, err
	}
	return parseSiteState(string(res.Stdout)), nil
}

func parseSiteState(out string) siteState {
	var s siteState
	head, content, _ := strings.Cut(out, "---\n")
	s.content = content
	for _, line := range strings.Split(head, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "active":
			s.active = v == "yes"
		case "hash":
			s.hash = strings.TrimSpace(v)
		case "stamp":
			s.stamp = strings.TrimSpace(v)
		case "defaults":
			s.defaults = parseDefaults(v)
		case "present":
			s.present = v == "yes"
		}
	}
	return s
}

// parseDefaults reads mariadbd --print-defaults' arguments: the last value of each option wins.
func parseDefaults(args string) map[string]string {
	out := map[string]string{}
	for _, a := range strings.Fields(args) {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		k, v, _ := strings.Cut(a[2:], "=")
		k = normKey(k)
		out[k] = normValue(k, v)
	}
	return out
}

// siteDiffs lists how the host differs from want: the file, the options on disk (a later file may override
// the site file) and the running server's values (read with SHOW GLOBAL VARIABLES: running).
func siteDiffs(st siteState, want siteConfig, running map[string]string) []string {
	var d []string
	switch {
	case !st.present:
		d = append(d, SiteCnfPath+" is missing")
	case st.content != string(want.render()):
		if old, _ := parseSite(st.content); len(changedKeys(old, want)) > 0 {
			d = append(d, fmt.Sprintf("%s differs from what MOHD writes (options %s)", SiteCnfPath, strings.Join(changedKeys(old, want), ", ")))
		} else {
			d = append(d, SiteCnfPath+" was edited (same options, other text)")
		}
	}
	if st.present {
		// An option whose effective value is not the site file's own is overridden by a later file.
		mine, _ := parseSite(st.content)
		for _, o := range want.opts {
			if v, in := st.defaults[o.key]; in && mine[o.key] != "" && v != mine[o.key] {
				d = append(d, fmt.Sprintf("%s is %s in the option files: a file read after %s overrides it (want %s)", o.key, v, SiteCnfPath, o.value))
			}
		}
	}
	if !st.active {
		return append(d, "MariaDB is not running")
	}
	if !st.inSync() {
		d = append(d, "the running server does not have the options on disk (a restart is pending)")
	}
	for _, o := range want.opts {
		if v, in := running[o.key]; in && normValue(o.key, v) != normValue(o.key, o.value) {
			d = append(d, fmt.Sprintf("the server runs with %s = %s, want %s", o.key, v, o.value))
		}
	}
	return d
}

// applyResult says what applySite did.
type applyResult struct {
	changed   bool
	restarted bool
	// dynamic lists the options set with SET GLOBAL on the running server.
	dynamic []string
}

// applySite writes want to the site file and makes the running server use it: nothing more when the
// server already runs with the options now on disk (a hand edit reverted, say); SET GLOBAL when the server
// ran with the options on disk before and only dynamic options of this file changed (the role's stamp is
// then brought up to date, so that the role does not restart it later); a restart otherwise (a start when
// the server is down). A running value changed by hand (SET GLOBAL read_only...) is set back.
func applySite(ctx context.Context, h remote.Host, want siteConfig) (applyResult, error) {
	var res applyResult
	before, err := readSite(ctx, h)
	if err != nil {
		return res, err
	}
	up, err := h.Upload(ctx, remote.File{Path: SiteCnfPath, Content: want.render(), Mode: 0o644, Owner: "root", Group: "root"})
	if err != nil {
		return res, err
	}
	res.changed = up
	after := before
	if up {
		if after, err = readSite(ctx, h); err != nil {
			return res, err
		}
	}
	old, parsed := parseSite(before.content)
	switch {
	case !after.active:
		err = systemctlMariaDB(ctx, h, "start")
		res.changed, res.restarted = true, true
	case after.inSync():
	case before.inSync() && parsed && before.present && allDynamic(changedKeys(old, want)):
		keys := changedKeys(old, want)
		if err = setGlobals(ctx, h, want, keys); err == nil {
			res.dynamic = keys
			err = updateStamp(ctx, h)
		}
	default:
		// The server started with other options than those on disk now, and not only dynamic ones of this
		// file differ (the bind address, another file, an unknown line): only a restart applies them.
		err = systemctlMariaDB(ctx, h, "restart")
		res.changed, res.restarted = true, true
	}
	if err != nil {
		return res, err
	}
	if res.restarted || res.dynamic != nil {
		if after, err = readSite(ctx, h); err != nil {
			return res, err
		}
	}
	for _, o := range want.opts {
		if v, in := after.defaults[o.key]; in && v != normValue(o.key, o.value) {
			return res, fmt.Errorf("%s: %s is %s in MariaDB's option files although %s sets %s: a file read after it overrides it (see mariadbd --print-defaults): remove that override", h.Name(), o.key, v, SiteCnfPath, o.value)
		}
	}
	running, err := showGlobals(ctx, h, "VARIABLES", want.keys()...)
	if err != nil {
		return res, err
	}
	var drift []string
	for _, o := range want.opts {
		if normValue(o.key, running[o.key]) == normValue(o.key, o.value) {
			continue
		}
		if !slices.Contains(dynamicOptions, o.key) {
			return res, fmt.Errorf("%s: the server runs with %s = %s, want %s, although its option files say so: restart it (systemctl restart mariadb)", h.Name(), o.key, running[o.key], o.value)
		}
		drift = append(drift, o.key)
	}
	if len(drift) > 0 {
		if err := setGlobals(ctx, h, want, drift); err != nil {
			return res, err
		}
		res.changed = true
		res.dynamic = append(res.dynamic, drift...)
	}
	return res, nil
}

func allDynamic(keys []string) bool {
	for _, k := range keys {
		if !slices.Contains(dynamicOptions, k) {
			return false
		}
	}
	return true
}

// setGlobals sets keys of want on the running server. read_only goes first when it turns ON and last when
// it turns OFF: a primary opens for writes only once semi-sync is set, a demoted one stops taking writes
// before anything else changes.
func setGlobals(ctx context.Context, h remote.Host, want siteConfig, keys []string) error {
	var first, rest, last []string
	for _, k := range keys {
		v := want.get(k)
		if v == "" {
			continue // a key only the old file had: the running value stays until the next restart
		}
		stmt := fmt.Sprintf("SET GLOBAL %s = %s;", k, v)
		switch {
		case k == "read_only" && normValue(k, v) == "ON":
			first = append(first, stmt)
		case k == "read_only":
			last = append(last, stmt)
		default:
			rest = append(rest, stmt)
		}
	}
	stmts := slices.Concat(first, rest, last)
	if len(stmts) == 0 {
		return nil
	}
	return runSQL(ctx, h, "set "+strings.Join(keys, ", ")+" on the running server", sessionMode+strings.Join(stmts, "\n")+"\n")
}

// updateStamp records that the running server has the options now on disk (after SET GLOBAL).
func updateStamp(ctx context.Context, h remote.Host) error {
	_, err := h.Run(ctx, remote.Cmd{
		Command: "set -e\ninstall -d -m 0755 /run/mohd\nh=$(" + configHash + ")\nprintf '%s\\n' \"$h\" >" + configStamp,
		Desc:    "record that the running MariaDB has the options on disk",
	})
	return err
}

// systemctlMariaDB starts, stops or restarts MariaDB, quoting its journal when that fails.
func systemctlMariaDB(ctx context.Context, h remote.Host, verb string) error {
	_, err := h.Run(ctx, remote.Cmd{
		Command: "systemctl " + verb + " mariadb.service || { rc=$?; journalctl -u mariadb.service -n 20 --no-pager -o cat >&2; exit $rc; }",
		Desc:    verb + " MariaDB",
	})
	return err
}

// siteBind reads the bind address of the host's current site file ("" when there is none).
func siteBind(st siteState) string {
	opts, _ := parseSite(st.content)
	return opts["bind_address"]
}
