package haproxy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// hostState is what one read-only script collects on a front end.
type hostState struct {
	regFound bool
	reg      registry
	regErr   error // the registry file exists but cannot be read

	siteFound bool
	siteCfg   []byte
	certSHA   string // "" when CertFile is missing

	active, enabled string // systemctl is-active / is-enabled haproxy

	// mtimes of the files HAProxy loads (conf.d/*, certs/*), seconds since the epoch.
	mtimes map[string]float64

	workerPID   string  // the current worker (show info), "" when the runtime API does not answer
	workerStart float64 // seconds since the epoch, 0 when unknown
	runningRev  string  // MOHD_SITE_REV in the worker's environment

	runtime    map[string]runtimeServer // show servers state moodle
	runtimeErr error
	stat       map[string]statRow // show stat
}

const sectionMark = "\n==== mohd:"

// stateScript prints the sections parseHostState reads. It changes nothing.
var stateScript = `sock=` + AdminSocket + `
sec() { printf '\n==== mohd:%s\n' "$1"; }
api() { echo "$1" | socat -t 5 stdio "unix-connect:$sock" 2>&1; }
sec registry
if [ -e ` + RegistryFile + ` ]; then cat ` + RegistryFile + `; fi
sec sitecfg
if [ -e ` + SiteFile + ` ]; then cat ` + SiteFile + `; fi
sec cert
if [ -e ` + CertFile + ` ]; then sha256sum ` + CertFile + ` | cut -d' ' -f1; fi
sec active
systemctl is-active haproxy 2>&1
sec enabled
systemctl is-enabled haproxy 2>&1
sec mtimes
find ` + ConfDir + ` -maxdepth 1 -type f -name '*.cfg' -printf '%T@ %p\n' 2>/dev/null
find ` + CertDir + ` -maxdepth 1 -type f -printf '%T@ %p\n' 2>/dev/null
if systemctl is-active --quiet haproxy && [ -S "$sock" ]; then
	info=$(api 'show info')
	sec info
	printf '%s\n' "$info"
	pid=$(printf '%s\n' "$info" | sed -n 's/^Pid: //p')
	if [ -n "$pid" ] && [ -r "/proc/$pid/stat" ]; then
		sec clock
		# now, uptime and the worker's start in clock ticks after boot: its start time, to the tick
		echo "$(date +%s.%N) $(cut -d' ' -f1 /proc/uptime) $(awk '{print $22}' "/proc/$pid/stat") $(getconf CLK_TCK)"
	fi
	sec env
	api 'show env ` + revMarker + `'
	sec servers
	api 'show servers state ` + Backend + `'
	sec stat
	api 'show stat ` + Backend + ` 4 -1'
fi
sec end
`

func readHostState(ctx context.Context, h remote.Host) (*hostState, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: stateScript, Desc: "read the front end's site state"})
	if err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	hs, err := parseHostState(string(res.Stdout))
	if err != nil {
		return nil, fmt.Errorf("haproxy: %s: %w", h.Name(), err)
	}
	return hs, nil
}

func splitSections(out string) map[string]string {
	secs := map[string]string{}
	parts := strings.Split(out, sectionMark)
	for _, p := range parts[1:] {
		name, content, _ := strings.Cut(p, "\n")
		secs[name] = content
	}
	return secs
}

func parseHostState(out string) (*hostState, error) {
	secs := splitSections(out)
	if _, ok := secs["end"]; !ok {
		return nil, fmt.Errorf("the state script's output is incomplete: %q", remote.Tail(out))
	}
	hs := &hostState{mtimes: map[string]float64{}}
	if raw := secs["registry"]; raw != "" {
		hs.regFound = true
		hs.reg, hs.regErr = parseRegistry([]byte(raw))
	} else {
		hs.reg = registry{Version: registryVersion}
	}
	if s, ok := secs["sitecfg"]; ok && s != "" {
		hs.siteFound, hs.siteCfg = true, []byte(s)
	}
	hs.certSHA = strings.TrimSpace(secs["cert"])
	hs.active = strings.TrimSpace(secs["active"])
	hs.enabled = strings.TrimSpace(secs["enabled"])
	for _, l := range strings.Split(secs["mtimes"], "\n") {
		t, path, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(t, 64); err == nil {
			hs.mtimes[path] = f
		}
	}
	for _, l := range strings.Split(secs["info"], "\n") {
		if v, ok := strings.CutPrefix(l, "Pid: "); ok {
			hs.workerPID = strings.TrimSpace(v)
		}
	}
	hs.workerStart = processStart(secs["clock"])
	for _, l := range strings.Split(secs["env"], "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), revMarker+"="); ok {
			hs.runningRev = v
		}
	}
	if s, ok := secs["servers"]; ok {
		hs.runtime, hs.runtimeErr = parseServersState(s)
	} else {
		hs.runtimeErr = errors.New("the runtime API was not queried (HAProxy is not running)")
	}
	if s, ok := secs["stat"]; ok {
		// Only informative (sessions, check results): a failure leaves it empty.
		hs.stat, _ = parseStat(s)
	}
	return hs, nil
}

// runningDrift lists why the running HAProxy does not run the site's configuration as rendered with
// revision rev (empty: it does).
func (hs *hostState) runningDrift(rev string, reg registry) []string {
	var d []string
	if hs.active != "active" {
		d = append(d, "haproxy is "+orUnknown(hs.active))
		return d
	}
	if hs.workerPID == "" {
		return append(d, "HAProxy's runtime API ("+AdminSocket+") does not answer")
	}
	if hs.runningRev != rev {
		d = append(d, fmt.Sprintf("the running HAProxy loaded another 10-site.cfg (revision %s, want %s)", orUnknown(hs.runningRev), rev))
	}
	if hs.workerStart > 0 {
		var newer []string
		for p, t := range hs.mtimes {
			if t > hs.workerStart {
				newer = append(newer, p)
			}
		}
		sort.Strings(newer)
		if len(newer) > 0 {
			d = append(d, "changed since HAProxy loaded its configuration (no reload since): "+strings.Join(newer, ", "))
		}
	}
	if hs.runtimeErr != nil {
		return append(d, hs.runtimeErr.Error())
	}
	var unknown []string
	for name := range hs.runtime {
		if _, ok := reg.server(name); !ok {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		d = append(d, "the running HAProxy has servers the registry does not: "+strings.Join(unknown, ", "))
	}
	for _, s := range reg.Servers {
		if _, ok := hs.runtime[s.Name]; !ok {
			d = append(d, "the running HAProxy has no server "+s.Name)
		}
	}
	return d
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
