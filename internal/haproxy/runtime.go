package haproxy

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// Server admin state flags of the runtime API (`show servers state`, srv_admin_state), HAProxy's
// SRV_ADMF_*. "disabled" in the configuration sets CMAINT|FMAINT; `disable server` and `set server ...
// state maint` set FMAINT; `set server ... state drain` sets FDRAIN.
const (
	admFMaint = 0x01 // forced maintenance (configuration or runtime API)
	admIMaint = 0x02 // inherited from a tracked server
	admCMaint = 0x04 // "disabled" in the configuration (a marker: FMAINT is what stops traffic)
	admFDrain = 0x08 // forced drain (runtime API)
	admIDrain = 0x10 // inherited drain
	admRMaint = 0x20 // address resolution failed
	admHMaint = 0x40 // FQDN set from the runtime API
	admMaint  = admFMaint | admIMaint | admRMaint | admHMaint
	admDrain  = admFDrain | admIDrain
)

// Operational states (srv_op_state).
const (
	opStopped  = 0
	opStarting = 1
	opRunning  = 2
	opStopping = 3
)

// runtimeServer is one line of `show servers state <backend>`.
type runtimeServer struct {
	Name    string
	Addr    string
	Port    int
	OpState int
	Admin   int
	UWeight int // the weight in force (user weight)
	IWeight int // the weight of the configuration
}

// adminState names the admin flags: "maintenance", "drain" or "ready".
func (r runtimeServer) adminState() string {
	switch {
	case r.Admin&admMaint != 0:
		return "maintenance"
	case r.Admin&admDrain != 0:
		return "drain"
	}
	return "ready"
}

func (r runtimeServer) opState() string {
	switch r.OpState {
	case opStopped:
		return "down"
	case opStarting:
		return "starting"
	case opRunning:
		return "up"
	case opStopping:
		return "stopping"
	}
	return strconv.Itoa(r.OpState)
}

var errNoBackend = errors.New("the running HAProxy has no backend " + Backend)

// parseServersState parses `show servers state <backend>` (format version 1), keyed by server name.
func parseServersState(out string) (map[string]runtimeServer, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) == "" {
		return nil, errors.New("show servers state: empty answer")
	}
	first := strings.TrimSpace(lines[0])
	if strings.HasPrefix(first, "Can't find backend") {
		return nil, errNoBackend
	}
	if first != "1" {
		return nil, fmt.Errorf("show servers state: unknown format %q (MOHD reads version 1)", first)
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "#") {
		return nil, fmt.Errorf("show servers state: no header line: %q", out)
	}
	col := map[string]int{}
	for i, f := range strings.Fields(strings.TrimPrefix(lines[1], "#")) {
		col[f] = i
	}
	for _, c := range []string{"be_name", "srv_name", "srv_addr", "srv_op_state", "srv_admin_state", "srv_uweight", "srv_iweight", "srv_port"} {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("show servers state: header has no %s: %q", c, lines[1])
		}
	}
	res := map[string]runtimeServer{}
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < len(col) {
			return nil, fmt.Errorf("show servers state: short line %q", l)
		}
		if f[col["be_name"]] != Backend {
			continue
		}
		num := func(c string) (int, error) {
			n, err := strconv.Atoi(f[col[c]])
			if err != nil {
				return 0, fmt.Errorf("show servers state: %s %q in line %q", c, f[col[c]], l)
			}
			return n, nil
		}
		var s runtimeServer
		var err error
		s.Name, s.Addr = f[col["srv_name"]], f[col["srv_addr"]]
		for _, p := range []struct {
			c string
			v *int
		}{{"srv_op_state", &s.OpState}, {"srv_admin_state", &s.Admin}, {"srv_uweight", &s.UWeight}, {"srv_iweight", &s.IWeight}, {"srv_port", &s.Port}} {
			if *p.v, err = num(p.c); err != nil {
				return nil, err
			}
		}
		res[s.Name] = s
	}
	return res, nil
}

// statRow is one server line of `show stat` (CSV).
type statRow struct {
	Proxy, Server string
	Status        string // "UP", "DOWN", "MAINT", "DRAIN", "no check", "UP 1/2"...
	CheckStatus   string // "L7OK", "L4CON", "L7STS"...
	CheckCode     string // the HTTP status of the last check
	CheckDesc     string
	Sessions      int // scur: current sessions
	Queued        int // qcur: requests queued for this server
	Weight        int
}

// parseStat parses `show stat` CSV output, keeping server rows of the site's backend.
func parseStat(out string) (map[string]statRow, error) {
	out = strings.TrimSpace(out)
	if !strings.HasPrefix(out, "# ") {
		return nil, fmt.Errorf("show stat: unexpected answer %q", firstLine(out))
	}
	r := csv.NewReader(strings.NewReader(out[2:]))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("show stat: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, c := range []string{"pxname", "svname", "scur", "qcur", "status", "weight", "check_status"} {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("show stat: header has no %s", c)
		}
	}
	get := func(rec []string, c string) string {
		i, ok := col[c]
		if !ok || i >= len(rec) {
			return ""
		}
		return rec[i]
	}
	res := map[string]statRow{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("show stat: %w", err)
		}
		sv := get(rec, "svname")
		if get(rec, "pxname") != Backend || sv == "BACKEND" || sv == "FRONTEND" {
			continue
		}
		row := statRow{Proxy: Backend, Server: sv, Status: get(rec, "status"), CheckStatus: get(rec, "check_status"),
			CheckCode: get(rec, "check_code"), CheckDesc: get(rec, "check_desc")}
		row.Sessions, _ = strconv.Atoi(get(rec, "scur"))
		row.Queued, _ = strconv.Atoi(get(rec, "qcur"))
		row.Weight, _ = strconv.Atoi(get(rec, "weight"))
		res[sv] = row
	}
	return res, nil
}

// parseWorkers returns the PIDs of the workers (current and old) in the master CLI's `show proc`.
func parseWorkers(out string) []string {
	var pids []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && f[1] == "worker" {
			pids = append(pids, f[0])
		}
	}
	return pids
}

// runtimeDrift lists how the running server rt differs from the desired one (empty: in sync).
func runtimeDrift(want Server, rt runtimeServer) []string {
	var d []string
	if addrDiffers(want, rt) {
		d = append(d, fmt.Sprintf("runs with address %s:%d, want %s", rt.Addr, rt.Port, want.hostPort()))
	}
	switch want.State {
	case StateActive:
		if rt.Admin&admMaint != 0 {
			d = append(d, "is in maintenance at run time, want active")
		} else if rt.Admin&admDrain != 0 {
			d = append(d, "is drained at run time, want active")
		}
		if rt.UWeight != want.Weight {
			d = append(d, fmt.Sprintf("runs with weight %d, want %d", rt.UWeight, want.Weight))
		}
	case StateDrain:
		if rt.Admin&admMaint != 0 {
			d = append(d, "is in maintenance at run time, want drain")
		} else if rt.Admin&admFDrain == 0 && rt.UWeight != 0 {
			d = append(d, fmt.Sprintf("runs with weight %d, want 0 (drain)", rt.UWeight))
		}
	case StateMaintenance:
		if rt.Admin&admMaint == 0 {
			d = append(d, "is not in maintenance at run time, want maintenance")
		}
	}
	return d
}

// runtimeFixes returns the runtime API commands that bring rt to the desired state (address changes are
// left to a reload).
func runtimeFixes(want Server, rt runtimeServer) []string {
	id := Backend + "/" + want.Name
	var c []string
	switch want.State {
	case StateActive:
		if rt.Admin&(admFMaint|admFDrain) != 0 {
			c = append(c, "set server "+id+" state ready")
		}
		if rt.UWeight != want.Weight {
			c = append(c, fmt.Sprintf("set weight %s %d", id, want.Weight))
		}
	case StateDrain:
		if rt.Admin&admMaint != 0 {
			c = append(c, "set server "+id+" state drain")
		} else if rt.Admin&admFDrain == 0 && rt.UWeight != 0 {
			c = append(c, "set weight "+id+" 0")
		}
	case StateMaintenance:
		if rt.Admin&admMaint == 0 {
			c = append(c, "set server "+id+" state maint")
		}
	}
	return c
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// addrDiffers reports whether the running server has another address than want (a host name is resolved
// by HAProxy: only its port is compared).
func addrDiffers(want Server, rt runtimeServer) bool {
	if ip := net.ParseIP(want.Address); ip != nil && !ip.Equal(net.ParseIP(rt.Addr)) {
		return true
	}
	return rt.Port != want.Port
}
