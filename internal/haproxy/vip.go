package haproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// keepalived's files on a front end. The role installs keepalived, enabled, with a unit condition that
// skips it until KeepalivedConf is not empty.
const (
	KeepalivedConf = "/etc/keepalived/keepalived.conf"
	// keepalivedAuth holds the VRRP password (root only); keepalived.conf includes it.
	keepalivedAuth = "/etc/keepalived/mohd-vrrp-auth.conf"
	// keepalivedCheck is the health check of HAProxy keepalived runs every second.
	keepalivedCheck = "/etc/keepalived/mohd-check-haproxy"
	// keepalivedApplied holds the digest of the files keepalived last (re)loaded through ConfigureVIP.
	keepalivedApplied = "/run/mohd-keepalived.applied"
)

// VIP is the virtual address two (or more) front ends share with keepalived (VRRP v2). The node with the
// highest priority whose HAProxy answers holds it; when its HAProxy stops answering (or the node dies) a
// peer takes it within about three seconds.
type VIP struct {
	// Address is the virtual IPv4 address, PrefixLen its prefix length on the interface (0: 32).
	Address   string
	PrefixLen int
	// Interface carries the address; empty: the interface this host reaches its peers through (or, with
	// no peer, the one whose network holds Address).
	Interface string
	// Peers are the other front ends' addresses, for unicast VRRP (clouds often drop multicast); this
	// host's own addresses are left out, so every front end can be given the same list. None: multicast
	// adverts.
	Peers []string
	// Priority 1-254: the highest wins (and takes the address back when it returns).
	Priority int
	// RouterID is VRRP's virtual_router_id, 1-255, the same on every peer and unique on the network.
	RouterID int
	// Password (optional, at most 8 characters: VRRP v2) authenticates the adverts.
	Password string
}

func (v VIP) normalized() (VIP, error) {
	ip := net.ParseIP(v.Address)
	if ip == nil || ip.To4() == nil {
		return v, fmt.Errorf("haproxy: virtual address %q is not an IPv4 address (VRRP v2)", v.Address)
	}
	v.Address = ip.To4().String()
	if v.PrefixLen == 0 {
		v.PrefixLen = 32
	}
	if v.PrefixLen < 1 || v.PrefixLen > 32 {
		return v, fmt.Errorf("haproxy: virtual address prefix length %d is out of range 1-32", v.PrefixLen)
	}
	if v.Interface != "" && !regexpIface(v.Interface) {
		return v, fmt.Errorf("haproxy: interface name %q is not valid", v.Interface)
	}
	peers := make([]string, 0, len(v.Peers))
	for _, p := range v.Peers {
		pip := net.ParseIP(p)
		if pip == nil || pip.To4() == nil {
			return v, fmt.Errorf("haproxy: keepalived peer %q is not an IPv4 address", p)
		}
		if pip.Equal(ip) {
			return v, fmt.Errorf("haproxy: keepalived peer %s is the virtual address itself", p)
		}
		peers = append(peers, pip.To4().String())
	}
	slices.Sort(peers)
	v.Peers = slices.Compact(peers)
	if v.Priority < 1 || v.Priority > 254 {
		return v, fmt.Errorf("haproxy: keepalived priority %d is out of range 1-254", v.Priority)
	}
	if v.RouterID < 1 || v.RouterID > 255 {
		return v, fmt.Errorf("haproxy: VRRP router id %d is out of range 1-255", v.RouterID)
	}
	if len(v.Password) > 8 {
		return v, fmt.Errorf("haproxy: the VRRP password has %d characters: VRRP v2 uses at most 8", len(v.Password))
	}
	for _, r := range v.Password {
		if r <= ' ' || r > '~' || strings.ContainsRune(`"'\#!`, r) {
			return v, errors.New("haproxy: the VRRP password may only hold printable ASCII characters other than space, quotes, '\\', '#' and '!'")
		}
	}
	return v, nil
}

func regexpIface(s string) bool {
	if len(s) == 0 || len(s) > 15 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return false
		}
	}
	return true
}

// vipNet is where the address goes on this host.
type vipNet struct {
	Interface string
	Source    string   // this host's own address on Interface, VRRP's unicast source
	Peers     []string // the peers less this host
}

// netScript prints the route towards each of its arguments and this host's IPv4 addresses; it changes
// nothing.
const netScript = `for t in "$@"; do echo "$t $(ip -4 -o route get "$t" 2>&1 | head -n 1)"; done
echo '===='
ip -4 -o addr show`

func discoverNet(ctx context.Context, h remote.Host, v VIP) (vipNet, error) {
	args := append([]string{v.Address}, v.Peers...)
	for i := range args {
		args[i] = remote.Quote(args[i])
	}
	res, err := h.Run(ctx, remote.Cmd{Command: "set -- " + strings.Join(args, " ") + "\n" + netScript, Desc: "find the interface for the virtual address"})
	if err != nil {
		return vipNet{}, fmt.Errorf("haproxy: %w", err)
	}
	n, err := parseNet(string(res.Stdout), v)
	if err != nil {
		return n, fmt.Errorf("haproxy: %s: %w", h.Name(), err)
	}
	return n, nil
}

type ifAddr struct {
	iface string
	ip    net.IP
	net   *net.IPNet
}

// parseNet picks the interface and the unicast source address from netScript's output, and the peers:
// v.Peers less this host's own addresses (every front end may be given the same list).
func parseNet(out string, v VIP) (vipNet, error) {
	routeOut, addrs, _ := strings.Cut(out, "====\n")
	var list []ifAddr
	for _, l := range strings.Split(addrs, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[2] != "inet" {
			continue
		}
		ip, ipn, err := net.ParseCIDR(f[3])
		if err != nil {
			continue
		}
		list = append(list, ifAddr{iface: strings.TrimSuffix(f[1], ":"), ip: ip, net: ipn})
	}
	own := func(ip string) bool {
		return slices.ContainsFunc(list, func(a ifAddr) bool { return a.ip.Equal(net.ParseIP(ip)) })
	}
	type route struct{ dev, src string }
	routes := map[string]route{}
	for _, l := range strings.Split(routeOut, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		var r route
		for i := 1; i+1 < len(f); i++ {
			switch f[i] {
			case "dev":
				r.dev = f[i+1]
			case "src":
				r.src = f[i+1]
			}
		}
		routes[f[0]] = r
	}
	vip := net.ParseIP(v.Address)
	n := vipNet{Interface: v.Interface}
	for _, p := range v.Peers {
		if !own(p) {
			n.Peers = append(n.Peers, p)
		}
	}
	var rt route
	if len(n.Peers) > 0 {
		rt = routes[n.Peers[0]]
	}
	if n.Interface == "" {
		if len(n.Peers) > 0 {
			if rt.dev == "" || rt.dev == "lo" {
				return n, fmt.Errorf("no route to the keepalived peer %s", n.Peers[0])
			}
			n.Interface = rt.dev
		} else {
			for _, a := range list {
				if a.iface != "lo" && !a.ip.Equal(vip) && a.net.Contains(vip) {
					n.Interface = a.iface
					break
				}
			}
			if n.Interface == "" {
				return n, fmt.Errorf("no interface has a network holding the virtual address %s: set the interface", v.Address)
			}
		}
	}
	if rt.dev == n.Interface && rt.src != "" && !net.ParseIP(rt.src).Equal(vip) {
		n.Source = rt.src
	} else {
		for _, a := range list {
			if a.iface == n.Interface && !a.ip.Equal(vip) {
				n.Source = a.ip.String()
				break
			}
		}
	}
	if n.Source == "" {
		return n, fmt.Errorf("interface %s has no IPv4 address of its own (for the virtual address %s)", n.Interface, v.Address)
	}
	return n, nil
}

// vipFiles renders keepalived's files for v on a host whose network is n.
func vipFiles(v VIP, n vipNet) (conf, auth, check []byte) {
	var b strings.Builder
	b.WriteString(`# Managed by MOHD: the front ends' virtual address. Do not edit: a change by hand shows as drift and the
# next apply undoes it.
global_defs {
	# Scripts run only when no one but root can write them. They run as root: HAProxy's runtime API is
	# root's and haproxy's (and keepalived 2.2.7's --config-test dies with another script user).
	enable_script_security
	script_user root
}

# HAProxy must answer on its runtime API; otherwise this node gives the address up (FAULT state).
vrrp_script mohd_haproxy {
	script "` + keepalivedCheck + `"
	interval 1
	timeout 3
	fall 2
	rise 2
}

vrrp_instance mohd_vip {
	# Every node starts as a backup: the highest priority among those whose HAProxy answers wins.
	state BACKUP
	interface ` + n.Interface + `
	virtual_router_id ` + strconv.Itoa(v.RouterID) + `
	priority ` + strconv.Itoa(v.Priority) + `
	advert_int 1
`)
	if len(n.Peers) > 0 {
		b.WriteString("\tunicast_src_ip " + n.Source + "\n\tunicast_peer {\n")
		for _, p := range n.Peers {
			b.WriteString("\t\t" + p + "\n")
		}
		b.WriteString("\t}\n")
	}
	if v.Password != "" {
		b.WriteString("\t# The VRRP password, readable by root only.\n\tinclude " + keepalivedAuth + "\n")
		auth = []byte("# Managed by MOHD: the VRRP password of the front ends' virtual address (a secret).\nauthentication {\n\tauth_type PASS\n\tauth_pass " + v.Password + "\n}\n")
	}
	fmt.Fprintf(&b, "\tvirtual_ipaddress {\n\t\t%s/%d dev %s\n\t}\n", v.Address, v.PrefixLen, n.Interface)
	b.WriteString("\ttrack_script {\n\t\tmohd_haproxy\n\t}\n}\n")
	check = []byte(`#!/bin/sh
# Managed by MOHD: keepalived's health check of HAProxy. Healthy when a worker answers on the runtime API
# within 2 s: a stopped, crashed or frozen HAProxy makes this node give up the virtual address.
out=$(echo 'show info' | timeout 3 socat -t 2 stdio unix-connect:` + AdminSocket + ` 2>/dev/null) || exit 1
case "$out" in *"Name: HAProxy"*) exit 0 ;; esac
exit 1
`)
	return []byte(b.String()), auth, check
}

// vipDigest identifies a set of keepalived files (keepalivedApplied).
func vipDigest(conf, auth, check []byte) string {
	return sha256Hex([]byte(sha256Hex(conf) + " " + sha256Hex(auth) + " " + sha256Hex(check)))[:32]
}

// ConfigureVIP writes keepalived's configuration for v on a front end (unicast VRRP, HAProxy tracked, the
// password in a root-only file), checks it, and enables and (re)loads keepalived when anything differs from
// what it runs. changed reports whether anything on the host changed.
func ConfigureVIP(ctx context.Context, h remote.Host, v VIP) (changed bool, err error) {
	v, err = v.normalized()
	if err != nil {
		return false, err
	}
	n, err := discoverNet(ctx, h, v)
	if err != nil {
		return false, err
	}
	conf, auth, check := vipFiles(v, n)
	st, err := readVIPState(ctx, h, n)
	if err != nil {
		return false, err
	}
	digest := vipDigest(conf, auth, check)
	c, err := h.Upload(ctx, remote.File{Path: keepalivedCheck, Content: check, Mode: 0o755, Owner: "root", Group: "root"})
	if err != nil {
		return false, fmt.Errorf("haproxy: installing keepalived's check: %w", err)
	}
	changed = c
	if auth != nil {
		c, err = h.Upload(ctx, remote.File{Path: keepalivedAuth, Content: auth, Mode: 0o600, Owner: "root", Group: "root"})
		if err != nil {
			return false, fmt.Errorf("haproxy: installing keepalived's password file: %w", err)
		}
		changed = changed || c
	}
	if st.sha[KeepalivedConf] != sha256Hex(conf) {
		// keepalived checks the candidate before it replaces the file keepalived loads.
		if _, err := h.Run(ctx, remote.Cmd{Desc: "check the new keepalived configuration", Stdin: conf, Command: `set -e
f=$(mktemp /run/mohd-keepalived-check.XXXXXX)
trap 'rm -f "$f"' EXIT
cat > "$f"
if ! out=$(keepalived --config-test -f "$f" 2>&1); then printf '%s\n' "$out" >&2; exit 1; fi`}); err != nil {
			return changed, fmt.Errorf("haproxy: keepalived refuses the new configuration; it was not installed: %w", err)
		}
		if _, err := h.Upload(ctx, remote.File{Path: KeepalivedConf, Content: conf, Mode: 0o644, Owner: "root", Group: "root"}); err != nil {
			return changed, fmt.Errorf("haproxy: installing %s: %w", KeepalivedConf, err)
		}
		changed = true
	}
	if auth == nil && st.sha[keepalivedAuth] != "" {
		if _, err := h.Run(ctx, remote.Cmd{Desc: "remove keepalived's password file (no password)", Command: "rm -f " + keepalivedAuth}); err != nil {
			return changed, fmt.Errorf("haproxy: %w", err)
		}
		changed = true
	}
	if st.enabled != "enabled" {
		if _, err := h.Run(ctx, remote.Cmd{Desc: "enable keepalived at boot", Command: "systemctl enable --quiet keepalived"}); err != nil {
			return changed, fmt.Errorf("haproxy: %w", err)
		}
		changed = true
	}
	if changed || st.active != "active" || st.applied != digest {
		// A reload (SIGHUP) keeps the VRRP state: a node holding the address keeps it.
		if _, err := h.Run(ctx, remote.Cmd{Desc: "(re)load keepalived", Command: `set -e
if systemctl is-active --quiet keepalived; then systemctl reload keepalived; else systemctl reset-failed keepalived 2>/dev/null || true; systemctl start keepalived; fi
sleep 1
if ! systemctl is-active --quiet keepalived; then
	echo "keepalived is $(systemctl is-active keepalived) after its start" >&2
	journalctl -u keepalived -n 20 --no-pager >&2 || true
	exit 1
fi
echo ` + digest + ` > ` + keepalivedApplied}); err != nil {
			return changed, fmt.Errorf("haproxy: %w", err)
		}
		changed = true
	}
	return changed, nil
}

// VIPState is what InspectVIP found on a front end.
type VIPState struct {
	// InSync: the files are v's, keepalived is enabled, runs and loaded them. Diffs says what differs.
	InSync bool
	Diffs  []string
	// Master: this front end holds the virtual address now.
	Master bool
	// Active and Enabled: the keepalived service runs, and starts at boot.
	Active, Enabled bool
	// FilesInSync: keepalived.conf, the password file and the HAProxy check are v's.
	FilesInSync bool
	// RunningInSync: keepalived loaded the files as they are.
	RunningInSync bool
	// Interface and SourceAddress: where the address goes, and this host's own address there.
	Interface, SourceAddress string
}

type vipHostState struct {
	sha             map[string]string
	mtimes          map[string]float64
	active, enabled string
	applied         string
	start           float64 // keepalived's main process start, seconds since the epoch (0: unknown)
	addrs           string  // ip -4 -o addr show dev <interface>
}

func vipStateScript(iface string) string {
	return `for f in ` + KeepalivedConf + ` ` + keepalivedAuth + ` ` + keepalivedCheck + `; do
	if [ -e "$f" ]; then echo "$(sha256sum < "$f" | cut -d' ' -f1) $(stat -c %.9Y "$f") $f"; fi
done
printf '\n==== mohd:active\n'; systemctl is-active keepalived 2>&1
printf '\n==== mohd:enabled\n'; systemctl is-enabled keepalived 2>&1
printf '\n==== mohd:applied\n'; cat ` + keepalivedApplied + ` 2>/dev/null
pid=$(systemctl show -p MainPID --value keepalived)
if [ -n "$pid" ] && [ "$pid" != 0 ] && [ -r "/proc/$pid/stat" ]; then
	printf '\n==== mohd:clock\n'
	echo "$(date +%s.%N) $(cut -d' ' -f1 /proc/uptime) $(awk '{print $22}' "/proc/$pid/stat") $(getconf CLK_TCK)"
fi
printf '\n==== mohd:addrs\n'; ip -4 -o addr show dev ` + remote.Quote(iface) + ` 2>&1
printf '\n==== mohd:end\n'`
}

func readVIPState(ctx context.Context, h remote.Host, n vipNet) (*vipHostState, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: vipStateScript(n.Interface), Desc: "read keepalived's state"})
	if err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	out := "\n==== mohd:files\n" + string(res.Stdout)
	secs := splitSections(out)
	if _, ok := secs["end"]; !ok {
		return nil, fmt.Errorf("haproxy: %s: keepalived's state script output is incomplete: %q", h.Name(), remote.Tail(out))
	}
	st := &vipHostState{sha: map[string]string{}, mtimes: map[string]float64{},
		active: strings.TrimSpace(secs["active"]), enabled: strings.TrimSpace(secs["enabled"]),
		applied: strings.TrimSpace(secs["applied"]), addrs: secs["addrs"]}
	for _, l := range strings.Split(secs["files"], "\n") {
		f := strings.Fields(l)
		if len(f) == 3 {
			st.sha[f[2]] = f[0]
			st.mtimes[f[2]], _ = strconv.ParseFloat(f[1], 64)
		}
	}
	st.start = processStart(secs["clock"])
	return st, nil
}

// processStart computes a process's start time from "now uptime start-ticks ticks-per-second".
func processStart(clock string) float64 {
	f := strings.Fields(clock)
	if len(f) != 4 {
		return 0
	}
	var v [4]float64
	for i := range f {
		x, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return 0
		}
		v[i] = x
	}
	if v[3] <= 0 {
		return 0
	}
	return v[0] - (v[1] - v[2]/v[3])
}

// InspectVIP compares a front end's keepalived with v. It changes nothing.
func InspectVIP(ctx context.Context, h remote.Host, v VIP) (VIPState, error) {
	v, err := v.normalized()
	if err != nil {
		return VIPState{}, err
	}
	n, err := discoverNet(ctx, h, v)
	if err != nil {
		return VIPState{}, err
	}
	conf, auth, check := vipFiles(v, n)
	hs, err := readVIPState(ctx, h, n)
	if err != nil {
		return VIPState{}, err
	}
	st := VIPState{Interface: n.Interface, SourceAddress: n.Source, Active: hs.active == "active", Enabled: hs.enabled == "enabled"}
	drift := func(format string, a ...any) { st.Diffs = append(st.Diffs, fmt.Sprintf(format, a...)) }
	want := map[string][]byte{KeepalivedConf: conf, keepalivedCheck: check, keepalivedAuth: auth}
	st.FilesInSync = true
	for _, p := range []string{KeepalivedConf, keepalivedAuth, keepalivedCheck} {
		got, ok := hs.sha[p]
		switch {
		case want[p] == nil && ok:
			drift("%s exists but the virtual address has no password", p)
		case want[p] == nil:
			continue
		case !ok:
			drift("%s is missing", p)
		case got != sha256Hex(want[p]):
			drift("%s differs from MOHD's rendering (edited by hand?)", p)
		default:
			continue
		}
		st.FilesInSync = false
	}
	if !st.Enabled {
		drift("keepalived is %s at boot, want enabled", orUnknown(hs.enabled))
	}
	if !st.Active {
		drift("keepalived is %s", orUnknown(hs.active))
	} else {
		// Loaded as they are: ConfigureVIP recorded these files' digest when it (re)loaded keepalived, or
		// keepalived started after they were last written (after a reboot the record is gone).
		st.RunningInSync = hs.applied == vipDigest(conf, auth, check)
		if !st.RunningInSync && hs.applied == "" && hs.start > 0 {
			st.RunningInSync = true
			for _, t := range hs.mtimes {
				if t > hs.start {
					st.RunningInSync = false
				}
			}
		}
		if !st.RunningInSync {
			drift("keepalived has not loaded the current configuration (no reload since it changed)")
		}
	}
	for _, l := range strings.Split(hs.addrs, "\n") {
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" && strings.HasPrefix(f[i+1], v.Address+"/") {
				st.Master = true
			}
		}
	}
	st.InSync = st.FilesInSync && st.Enabled && st.Active && st.RunningInSync
	return st, nil
}
