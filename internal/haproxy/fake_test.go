package haproxy

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mohd-dev/mohd/internal/remote"
)

// fakeFrontEnd plays a front end of the haproxy role image on a remote.Fake: files go to the Fake's file
// table, and a small model of HAProxy (master-worker, reloads with the saved server states, the runtime
// API) answers the package's scripts.
type fakeFrontEnd struct {
	t *testing.T
	f *remote.Fake

	mu          sync.Mutex
	clock       float64 // one tick per command
	active      bool
	enabled     bool
	workerPID   int
	workerStart float64
	rev         string                   // MOHD_SITE_REV of the running worker
	runtime     map[string]runtimeServer // the running backend
	mtimes      map[string]float64
	uploads     map[string]int    // uploads seen per path
	sums        map[string]string // content seen per path
	deleted     map[string]bool
	reloads     int
	checkFails  bool
	sessions    map[string][]int // successive answers of the session count, per server (the last repeats)
	apiCmds     []string         // runtime API commands received (set server, set weight)
	candidates  [][]byte         // 10-site.cfg candidates checked
}

const seedSiteCfg = "# the image's copy\n\nbackend moodle from moodle-web\n"

func newFakeFrontEnd(t *testing.T) *fakeFrontEnd {
	fe := &fakeFrontEnd{t: t, f: remote.NewFake("debian@lb1:22"), active: true, enabled: true, workerPID: 100, workerStart: 1,
		clock: 10, runtime: map[string]runtimeServer{}, mtimes: map[string]float64{SiteFile: 0.5}, uploads: map[string]int{},
		sums: map[string]string{}, deleted: map[string]bool{}, sessions: map[string][]int{}}
	fe.f.Strict = true
	fe.f.SetFile(remote.File{Path: SiteFile, Content: []byte(seedSiteCfg), Mode: 0o640, Owner: "root", Group: "root"})
	on := func(pattern string, fn func(remote.Cmd) (remote.Result, error)) {
		fe.f.OnFunc(pattern, func(c remote.Cmd) (remote.Result, error) {
			fe.mu.Lock()
			defer fe.mu.Unlock()
			fe.clock++
			fe.sync()
			return fn(c)
		})
	}
	on(`(?m)^sec registry$`, fe.stateOut)
	on(`mktemp -d /run/mohd-haproxy-check`, func(c remote.Cmd) (remote.Result, error) {
		fe.candidates = append(fe.candidates, c.Stdin)
		if fe.checkFails {
			return remote.Result{ExitCode: 1, Stderr: []byte("[ALERT] config : parsing [/etc/haproxy/conf.d/10-site.cfg:12] : unknown keyword\n")}, nil
		}
		return remote.Result{}, nil
	})
	on(regexp.QuoteMeta(certBackup), func(remote.Cmd) (remote.Result, error) { return remote.Result{}, nil })
	on(`^rm -f `+regexp.QuoteMeta(CertFile)+`$`, func(remote.Cmd) (remote.Result, error) {
		fe.deleted[CertFile] = true
		return remote.Result{}, nil
	})
	on(`^systemctl enable --quiet haproxy$`, func(remote.Cmd) (remote.Result, error) {
		fe.enabled = true
		return remote.Result{}, nil
	})
	on(`(?s)^set -- '([^']*)' (running|stopped)\n.*systemctl reload haproxy`, fe.reload)
	on(`^echo 'show servers state moodle' \| socat`, func(remote.Cmd) (remote.Result, error) {
		return remote.Result{Stdout: []byte(fe.serversState())}, nil
	})
	on(`^rc=0\n`, fe.api)
	on(`@!\$p show stat`, func(remote.Cmd) (remote.Result, error) {
		var b strings.Builder
		if fe.active {
			fmt.Fprintf(&b, "\n==== mohd:%d\n%s", fe.workerPID, fe.stat(true))
		}
		b.WriteString("\n==== mohd:end\n")
		return remote.Result{Stdout: []byte(b.String())}, nil
	})
	return fe
}

// sync records the files uploaded since the last command: their modification time, their existence.
func (fe *fakeFrontEnd) sync() {
	counts := map[string]int{}
	for _, u := range fe.f.Uploads() {
		counts[u.Path]++
	}
	// Upload leaves a file with the same content alone (unless it was deleted since).
	for p, n := range counts {
		if n > fe.uploads[p] {
			fe.uploads[p] = n
			f, _ := fe.f.File(p)
			if sum := sha256Hex(f.Content); sum != fe.sums[p] || fe.deleted[p] {
				fe.sums[p] = sum
				fe.mtimes[p] = fe.clock - 0.5
				fe.deleted[p] = false
			}
		}
	}
}

func (fe *fakeFrontEnd) file(path string) ([]byte, bool) {
	f, ok := fe.f.File(path)
	if !ok || fe.deleted[path] {
		return nil, false
	}
	return f.Content, true
}

// handEdit writes a file as an administrator would.
func (fe *fakeFrontEnd) handEdit(path string, content []byte) {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	fe.clock++
	fe.f.SetFile(remote.File{Path: path, Content: content, Mode: 0o640, Owner: "root", Group: "root"})
	fe.mtimes[path] = fe.clock
	fe.sums[path] = sha256Hex(content)
	fe.deleted[path] = false
}

func (fe *fakeFrontEnd) stateOut(remote.Cmd) (remote.Result, error) {
	var b strings.Builder
	sec := func(name string) { b.WriteString("\n==== mohd:" + name + "\n") }
	sec("registry")
	if c, ok := fe.file(RegistryFile); ok {
		b.Write(c)
	}
	sec("sitecfg")
	if c, ok := fe.file(SiteFile); ok {
		b.Write(c)
	}
	sec("cert")
	if c, ok := fe.file(CertFile); ok {
		b.WriteString(sha256Hex(c) + "\n")
	}
	sec("active")
	b.WriteString(map[bool]string{true: "active\n", false: "inactive\n"}[fe.active])
	sec("enabled")
	b.WriteString(map[bool]string{true: "enabled\n", false: "disabled\n"}[fe.enabled])
	sec("mtimes")
	var paths []string
	for p := range fe.mtimes {
		if _, ok := fe.file(p); ok && p != RegistryFile {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(&b, "%.10f %s\n", fe.mtimes[p], p)
	}
	if fe.active {
		sec("info")
		fmt.Fprintf(&b, "Name: HAProxy\nVersion: 2.6.12\nPid: %d\n", fe.workerPID)
		sec("clock")
		// Booted at 0: uptime = now.
		fmt.Fprintf(&b, "%.9f %.2f %d 100\n", fe.clock, fe.clock, int(fe.workerStart*100))
		sec("env")
		if fe.rev != "" {
			b.WriteString(revMarker + "=" + fe.rev + "\n")
		} else {
			b.WriteString("Variable not found\n")
		}
		sec("servers")
		b.WriteString(fe.serversState())
		sec("stat")
		b.WriteString(fe.stat(false))
	}
	sec("end")
	return remote.Result{Stdout: []byte(b.String())}, nil
}

func (fe *fakeFrontEnd) serversState() string {
	var b strings.Builder
	b.WriteString("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n")
	for i, n := range fe.names() {
		r := fe.runtime[n]
		fmt.Fprintf(&b, "2 moodle %d %s %s %d %d %d %d 5 15 3 4 6 0 0 0 - %d - 0 0 - - 0\n", i+1, n, r.Addr, r.OpState, r.Admin, r.UWeight, r.IWeight, r.Port)
	}
	return b.String() + "\n"
}

func (fe *fakeFrontEnd) names() []string {
	var names []string
	for n := range fe.runtime {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// stat answers show stat; pop takes the next session count of each server.
func (fe *fakeFrontEnd) stat(pop bool) string {
	var b strings.Builder
	b.WriteString("# pxname,svname,qcur,qmax,scur,smax,status,weight,check_status,check_code,check_desc,\n")
	for _, n := range fe.names() {
		scur := 0
		if q := fe.sessions[n]; len(q) > 0 {
			scur = q[0]
			if pop && len(q) > 1 {
				fe.sessions[n] = q[1:]
			}
		}
		status := "UP"
		if fe.runtime[n].Admin&admMaint != 0 {
			status = "MAINT"
		}
		fmt.Fprintf(&b, "moodle,%s,0,0,%d,0,%s,%d,L7OK,200,Layer7 check passed,\n", n, scur, status, fe.runtime[n].UWeight)
	}
	b.WriteString("moodle,BACKEND,0,0,0,0,UP,1,,,,\n\n")
	return b.String()
}

var fakeServerLine = regexp.MustCompile(`(?m)^\tserver (\S+) (\S+):(\d+) weight (\d+)( disabled)?`)

// reload loads the site file like HAProxy: servers from the configuration, then what the saved states
// carry over (HAProxy's rules, the port included), except for the servers the caller asked to forget.
func (fe *fakeFrontEnd) reload(c remote.Cmd) (remote.Result, error) {
	m := regexp.MustCompile(`^set -- '([^']*)' (running|stopped)`).FindStringSubmatch(c.Command)
	skip := strings.Fields(m[1])
	cfg, _ := fe.file(SiteFile)
	prev := fe.runtime
	saved := fe.active && m[2] == "running"
	fe.runtime = map[string]runtimeServer{}
	for _, sm := range fakeServerLine.FindAllStringSubmatch(string(cfg), -1) {
		port, _ := strconv.Atoi(sm[3])
		w, _ := strconv.Atoi(sm[4])
		r := runtimeServer{Name: sm[1], Addr: sm[2], Port: port, OpState: opRunning, UWeight: w, IWeight: w}
		if sm[5] != "" {
			r.Admin, r.OpState = admCMaint|admFMaint, opStopped
		}
		if old, ok := prev[r.Name]; ok && saved && !slices.Contains(skip, r.Name) {
			if old.IWeight == r.IWeight {
				r.UWeight = old.UWeight
			}
			if old.Admin&admCMaint == r.Admin&admCMaint {
				if old.Admin&admFMaint != 0 {
					r.Admin |= admFMaint
				} else {
					r.Admin &^= admFMaint
				}
			}
			if r.Admin&admFMaint == 0 && old.Admin&admFDrain != 0 && (old.IWeight > 0 || r.IWeight == 0) {
				r.Admin |= admFDrain
			}
			r.Port = old.Port
		}
		fe.runtime[r.Name] = r
	}
	fe.rev = ""
	if mm := regexp.MustCompile(`setenv ` + revMarker + ` (\S+)`).FindSubmatch(cfg); mm != nil {
		fe.rev = string(mm[1])
	}
	fe.active = true
	fe.workerPID++
	fe.workerStart = fe.clock
	fe.reloads++
	return remote.Result{}, nil
}

var fakeAPICmd = regexp.MustCompile(`echo '([^']*)' \| socat`)

func (fe *fakeFrontEnd) api(c remote.Cmd) (remote.Result, error) {
	for _, m := range fakeAPICmd.FindAllStringSubmatch(c.Command, -1) {
		cmd := m[1]
		fe.apiCmds = append(fe.apiCmds, cmd)
		f := strings.Fields(cmd)
		name := strings.TrimPrefix(f[2], "moodle/")
		r, ok := fe.runtime[name]
		if !ok {
			return remote.Result{ExitCode: 1, Stderr: []byte("No such server.\n")}, nil
		}
		switch {
		case f[1] == "server" && f[4] == "ready":
			r.Admin &^= admFMaint | admFDrain
		case f[1] == "server" && f[4] == "drain":
			r.Admin = r.Admin&^admFMaint | admFDrain
		case f[1] == "server" && f[4] == "maint":
			r.Admin = r.Admin&^admFDrain | admFMaint
		case f[1] == "weight":
			r.UWeight, _ = strconv.Atoi(f[3])
		default:
			fe.t.Errorf("unexpected runtime API command %q", cmd)
		}
		fe.runtime[name] = r
	}
	return remote.Result{}, nil
}

// registry returns the registry the fake holds.
func (fe *fakeFrontEnd) registry() registry {
	b, _ := fe.file(RegistryFile)
	r, err := parseRegistry(b)
	if err != nil {
		fe.t.Fatal(err)
	}
	return r
}

func (fe *fakeFrontEnd) counts() (reloads int, apiCmds []string) {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	return fe.reloads, slices.Clone(fe.apiCmds)
}
