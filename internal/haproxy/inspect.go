package haproxy

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// State is what Inspect found on a front end.
type State struct {
	// Registry reports whether the front end has a registry (false: the site was never configured here).
	Registry bool
	// TLS and CertificateSHA256 are the registry's (compare with Site.CertificateSHA256 to tell whether
	// the desired certificate is the one installed).
	TLS               bool
	CertificateSHA256 string

	// SiteFileInSync: 10-site.cfg is exactly what the registry renders.
	SiteFileInSync bool
	// CertificateInSync: the certificate file is the registry's (or absent without TLS).
	CertificateInSync bool
	// Active and Enabled: the haproxy service runs, and starts at boot.
	Active, Enabled bool
	// RunningInSync: the running HAProxy loaded the registry's rendering and every file it reads is
	// older than its configuration (no reload pending), and its servers are the registry's.
	RunningInSync bool

	// Servers: every server of the registry, then those only the running HAProxy has, by name.
	Servers []ServerState

	// InSync: everything above agrees with the registry, every server included.
	InSync bool
	// Diffs says what does not, one line each: SiteDiffs' lines, then one per server out of sync.
	Diffs []string
	// siteDiffs: the site-wide lines of Diffs (files, service, running configuration).
	siteDiffs []string
}

// ServerState is one server as the registry wants it and as the running HAProxy has it.
type ServerState struct {
	Name string
	// Desired is the registry's entry; InRegistry is false for a server only the running HAProxy has.
	Desired    Server
	InRegistry bool
	// Running: the running HAProxy has the server. The fields below are its runtime state.
	Running bool
	Address string
	Port    int
	// Admin is "ready", "drain" or "maintenance" (runtime admin state).
	Admin string
	// Weight is the weight in force.
	Weight int
	// Operational is "up", "down", "starting" or "stopping" (health checks).
	Operational string
	// Status is the statistics' status ("UP", "DOWN", "MAINT", "DRAIN", "UP 1/2"...).
	Status string
	// CheckStatus is the last health check's result ("L7OK", "L4CON", "L7STS"...), CheckCode its HTTP
	// status, CheckDesc its text.
	CheckStatus, CheckCode, CheckDesc string
	// Sessions is the number of requests the server has in progress (current worker).
	Sessions int
	// InSync: the runtime state is the registry's. Diffs says how it differs.
	InSync bool
	Diffs  []string
}

// Server returns the state of the server name.
func (st State) Server(name string) (ServerState, bool) {
	for _, s := range st.Servers {
		if s.Name == name {
			return s, true
		}
	}
	return ServerState{}, false
}

// Inspect reads a front end's site state and compares it with its registry. It changes nothing (it waits
// for the site's lock so that it never sees another apply half-way).
func Inspect(ctx context.Context, h remote.Host) (State, error) {
	unlock, err := h.Lock(ctx, LockName)
	if err != nil {
		return State{}, fmt.Errorf("haproxy: taking the site lock on %s: %w", h.Name(), err)
	}
	defer func() { _ = unlock() }()
	hs, err := readHostState(ctx, h)
	if err != nil {
		return State{}, err
	}
	if hs.regErr != nil {
		return State{}, fmt.Errorf("haproxy: %s: %w", h.Name(), hs.regErr)
	}
	return hs.state(), nil
}

func (hs *hostState) state() State {
	reg := hs.reg
	st := State{Registry: hs.regFound, TLS: reg.TLS, CertificateSHA256: reg.CertificateSHA256,
		Active: hs.active == "active", Enabled: hs.enabled == "enabled"}
	drift := func(format string, a ...any) { st.siteDiffs = append(st.siteDiffs, fmt.Sprintf(format, a...)) }
	if !hs.regFound {
		drift("the site was never configured on this front end (no %s)", RegistryFile)
	}
	cfg, rev := renderSite(reg)
	st.SiteFileInSync = bytes.Equal(hs.siteCfg, cfg)
	switch {
	case !hs.siteFound:
		drift("%s is missing", SiteFile)
	case !st.SiteFileInSync:
		drift("%s differs from the registry's rendering (edited by hand?)", SiteFile)
	}
	switch {
	case reg.TLS && hs.certSHA == "":
		drift("the site's certificate %s is missing", CertFile)
	case reg.TLS && hs.certSHA != reg.CertificateSHA256:
		drift("the site's certificate %s is not the registry's", CertFile)
	case !reg.TLS && hs.certSHA != "":
		drift("%s exists but the site has no TLS", CertFile)
	default:
		st.CertificateInSync = true
	}
	if !st.Enabled {
		drift("haproxy is %s at boot, want enabled", orUnknown(hs.enabled))
	}
	rd := hs.runningDrift(rev, reg)
	st.RunningInSync = len(rd) == 0
	st.siteDiffs = append(st.siteDiffs, rd...)
	st.Diffs = slices.Clone(st.siteDiffs)

	names := map[string]bool{}
	for _, s := range reg.Servers {
		names[s.Name] = true
	}
	for n := range hs.runtime {
		names[n] = true
	}
	all := make([]string, 0, len(names))
	for n := range names {
		all = append(all, n)
	}
	sort.Strings(all)
	serversInSync := true
	for _, n := range all {
		ss := ServerState{Name: n}
		ss.Desired, ss.InRegistry = reg.server(n)
		rt, running := hs.runtime[n]
		ss.Running = running
		if running {
			ss.Address, ss.Port, ss.Admin, ss.Weight, ss.Operational = rt.Addr, rt.Port, rt.adminState(), rt.UWeight, rt.opState()
		}
		if row, ok := hs.stat[n]; ok {
			ss.Status, ss.CheckStatus, ss.CheckCode, ss.CheckDesc, ss.Sessions = row.Status, row.CheckStatus, row.CheckCode, row.CheckDesc, row.Sessions
		}
		switch {
		case !ss.InRegistry:
			ss.Diffs = []string{"runs in HAProxy but is not in the registry"}
		case !running:
			ss.Diffs = []string{"is not in the running HAProxy"}
		default:
			ss.Diffs = runtimeDrift(ss.Desired, rt)
		}
		ss.InSync = len(ss.Diffs) == 0
		if !ss.InSync {
			serversInSync = false
			if ss.InRegistry && running {
				st.Diffs = append(st.Diffs, "server "+n+" "+strings.Join(ss.Diffs, "; "))
			}
		}
		st.Servers = append(st.Servers, ss)
	}
	st.InSync = hs.regFound && st.SiteFileInSync && st.CertificateInSync && st.Enabled && st.RunningInSync && serversInSync
	return st
}

// SiteDiffs lists how the front end differs from the site-wide desired state: site (TLS and certificate,
// against the registry's checksum), the files, the haproxy service, the running configuration (empty: in
// sync). Servers are left to ServerDiffs.
func (st State) SiteDiffs(site Site) []string {
	d := slices.Clone(st.siteDiffs)
	sum, err := site.CertificateSHA256()
	switch {
	case err != nil:
		d = append(d, "the desired certificate cannot be used: "+err.Error())
	case site.TLS() && !st.TLS:
		d = append(d, "the site has no TLS here, want TLS")
	case !site.TLS() && st.TLS:
		d = append(d, "the site has TLS here, want plain HTTP")
	case site.TLS() && st.CertificateSHA256 != sum:
		d = append(d, "the site's certificate is not the desired one")
	}
	return d
}

// ServerDiffs lists how the server want (as PutServer takes it) differs from what the front end has: its
// registry entry and its runtime state (empty: in sync). state sums the server up for people: "absent", or
// its operational and admin states and weight ("up, ready, weight 100").
func (st State) ServerDiffs(want Server) (diffs []string, state string) {
	want, err := want.normalized()
	if err != nil {
		return []string{err.Error()}, "invalid"
	}
	ss, ok := st.Server(want.Name)
	if !ok || !ss.InRegistry {
		diffs = append(diffs, "server "+want.Name+" is not registered on this front end")
	} else if ss.Desired != want {
		diffs = append(diffs, fmt.Sprintf("server %s is registered as %s, want %s", want.Name, describe(ss.Desired), describe(want)))
	}
	if ok && ss.InRegistry {
		for _, d := range ss.Diffs {
			diffs = append(diffs, "server "+want.Name+" "+d)
		}
	}
	state = "absent"
	if ok && ss.Running {
		state = fmt.Sprintf("%s, %s, weight %d", ss.Operational, ss.Admin, ss.Weight)
	}
	return diffs, state
}

func describe(s Server) string {
	return fmt.Sprintf("%s %s weight %d", s.hostPort(), s.State, s.Weight)
}
