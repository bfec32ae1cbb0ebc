package monitoring

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// fileState is a file as the state script saw it.
type fileState struct {
	exists bool
	// mode, owner and group as stat prints them ("644", "root", "root").
	mode, owner, group string
	mtime              int64 // seconds since the epoch (0 when not read)
	sha256             string
	content            []byte // the registry only
}

// matches reports whether the file is f, content, mode and ownership.
func (fs fileState) matches(f remote.File) bool {
	return fs.exists && fs.sha256 == sha256Hex(f.Content) && fs.mode == remote.ModeOctal(f.FileMode()) &&
		fs.owner == f.Owner && fs.group == f.Group
}

// describe says how the file differs from f, for Diffs ("" when it does not).
func (fs fileState) describe(f remote.File, what string) string {
	switch {
	case !fs.exists:
		return f.Path + " is missing"
	case fs.sha256 != sha256Hex(f.Content):
		return f.Path + " differs from " + what + " (edited by hand?)"
	case fs.mode != remote.ModeOctal(f.FileMode()) || fs.owner != f.Owner || fs.group != f.Group:
		return fmt.Sprintf("%s is mode %s %s:%s, want %s %s:%s", f.Path, fs.mode, fs.owner, fs.group,
			remote.ModeOctal(f.FileMode()), f.Owner, f.Group)
	}
	return ""
}

// hostState is what one read-only script collects on the monitoring host.
type hostState struct {
	targetsDir bool // the role's targets directory exists
	regFile    fileState
	reg        registry
	regErr     error
	jobFiles   map[string]fileState
	// systemctl is-active / is-enabled of prometheus and prometheus-alertmanager.
	active, enabled map[string]string
	// Prometheus' /api/v1/targets answer, when asked for.
	targetsJSON []byte
	targetsErr  string
	// promSD is Prometheus' view of the job files (see readSD).
	promSD sdState
}

// sdState is whether Prometheus has read the job files as they are: its file discovery records the modification
// time of each file it read (prometheus_sd_file_mtime_seconds). A file changed while Prometheus was starting can
// be missed until its next periodic re-read (5 minutes): the discovery reads the files, then starts watching.
type sdState struct {
	ready  bool             // /-/ready answered 200
	mtimes map[string]int64 // file: the mtime Prometheus read; nil when its metrics did not answer
	files  map[string]int64 // job file: its mtime on disk (missing files are left out)
}

// unread lists the job files Prometheus has not read as they are on disk (nil when it cannot tell: Prometheus
// is not ready).
func (s sdState) unread() []string {
	if !s.ready || s.mtimes == nil {
		return nil
	}
	var out []string
	for _, j := range Jobs() {
		f := JobFile(j)
		mt, ok := s.files[f]
		if !ok {
			continue
		}
		if read, seen := s.mtimes[f]; !seen || read < mt {
			out = append(out, f)
		}
	}
	return out
}

const sectionMark = "\n==== mohd:"

// stateScript prints the sections parseHostState reads; with prom, Prometheus' view of its targets too. It changes
// nothing.
func stateScript(prom bool) string {
	var b strings.Builder
	b.WriteString(`sec() { printf '\n==== mohd:%s\n' "$1"; }
# stat's line, then the content's checksum, or nothing when the file is missing.
file() { if [ -e "$1" ]; then stat -c '%a %U %G %Y' "$1" && sha256sum < "$1" | cut -d' ' -f1; fi; }
sec targetsdir
if [ -d ` + TargetsDir + ` ]; then echo yes; fi
sec registry
file ` + RegistryFile + `
sec registry-content
if [ -e ` + RegistryFile + ` ]; then cat ` + RegistryFile + `; fi
`)
	for _, j := range Jobs() {
		b.WriteString("sec job:" + j + "\nfile " + JobFile(j) + "\n")
	}
	b.WriteString(sdScript)
	for _, u := range []string{prometheusUnit, alertmanagerUnit} {
		b.WriteString("sec active:" + u + "\nsystemctl is-active " + u + " 2>&1\n")
		b.WriteString("sec enabled:" + u + "\nsystemctl is-enabled " + u + " 2>&1\n")
	}
	if prom {
		// Only the active targets: the dropped ones are Prometheus' business.
		b.WriteString(`out=$(curl -sS --max-time 10 -w '\n%{http_code}' '` + prometheusAPI + `/api/v1/targets?state=active' 2>&1)
sec targets
printf '%s\n' "$out"
`)
	}
	b.WriteString("sec end\n")
	return b.String()
}

func readHostState(ctx context.Context, h remote.Host, prom bool) (*hostState, error) {
	desc := "read the monitoring host's scrape targets"
	if prom {
		desc += " and Prometheus' view of them"
	}
	res, err := h.Run(ctx, remote.Cmd{Command: stateScript(prom), Desc: desc})
	if err != nil {
		return nil, fmt.Errorf("monitoring: %w", err)
	}
	hs, err := parseHostState(string(res.Stdout))
	if err != nil {
		return nil, fmt.Errorf("monitoring: %s: %w", h.Name(), err)
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

// parseFile reads file()'s output (the mtime is optional).
func parseFile(s string) fileState {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) < 2 {
		return fileState{}
	}
	f := strings.Fields(lines[0])
	if len(f) != 3 && len(f) != 4 {
		return fileState{}
	}
	fs := fileState{exists: true, mode: f[0], owner: f[1], group: f[2], sha256: strings.TrimSpace(lines[1])}
	if len(f) == 4 {
		fs.mtime, _ = strconv.ParseInt(f[3], 10, 64)
	}
	return fs
}

// sdScript prints the job files' mtimes and what Prometheus read (parseSD).
var sdScript = func() string {
	var b strings.Builder
	b.WriteString("sec sd-files\n")
	for _, j := range Jobs() {
		b.WriteString("if [ -e " + JobFile(j) + " ]; then stat -c '%Y %n' " + JobFile(j) + "; fi\n")
	}
	b.WriteString(`sec sd-ready
curl -s -o /dev/null --max-time 5 -w '%{http_code}\n' ` + prometheusAPI + `/-/ready
sec sd-read
m=$(curl -sS --max-time 10 ` + prometheusAPI + `/metrics 2>&1) && { echo ok; printf '%s\n' "$m" | grep '^prometheus_sd_file_mtime_seconds{'; }
`)
	return b.String()
}()

func parseSD(secs map[string]string) sdState {
	s := sdState{ready: strings.TrimSpace(secs["sd-ready"]) == "200", files: map[string]int64{}}
	for _, l := range strings.Split(secs["sd-files"], "\n") {
		if t, f, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			if n, err := strconv.ParseInt(t, 10, 64); err == nil {
				s.files[f] = n
			}
		}
	}
	lines := strings.Split(strings.TrimSpace(secs["sd-read"]), "\n")
	if lines[0] != "ok" {
		return s
	}
	s.mtimes = map[string]int64{}
	for _, l := range lines[1:] {
		// prometheus_sd_file_mtime_seconds{filename="/etc/prometheus/targets/node.yml"} 1.735000123e+09
		rest, ok := strings.CutPrefix(l, `prometheus_sd_file_mtime_seconds{filename="`)
		if !ok {
			continue
		}
		f, v, ok := strings.Cut(rest, `"} `)
		if n, err := strconv.ParseFloat(strings.TrimSpace(v), 64); ok && err == nil {
			s.mtimes[f] = int64(n)
		}
	}
	return s
}

func parseHostState(out string) (*hostState, error) {
	secs := splitSections(out)
	if _, ok := secs["end"]; !ok {
		return nil, fmt.Errorf("the state script's output is incomplete: %q", remote.Tail(out))
	}
	hs := &hostState{jobFiles: map[string]fileState{}, active: map[string]string{}, enabled: map[string]string{}}
	hs.targetsDir = strings.TrimSpace(secs["targetsdir"]) == "yes"
	hs.regFile = parseFile(secs["registry"])
	if hs.regFile.exists {
		hs.regFile.content = []byte(secs["registry-content"])
		hs.reg, hs.regErr = parseRegistry(hs.regFile.content)
	} else {
		hs.reg, _ = parseRegistry(nil)
	}
	for _, j := range Jobs() {
		hs.jobFiles[j] = parseFile(secs["job:"+j])
	}
	hs.promSD = parseSD(secs)
	for _, u := range []string{prometheusUnit, alertmanagerUnit} {
		hs.active[u] = strings.TrimSpace(secs["active:"+u])
		hs.enabled[u] = strings.TrimSpace(secs["enabled:"+u])
	}
	if t, ok := secs["targets"]; ok {
		body, code, _ := cutLast(strings.TrimRight(t, "\n"), "\n")
		if code == "200" {
			hs.targetsJSON = []byte(body)
		} else {
			hs.targetsErr = fmt.Sprintf("Prometheus' API %s/api/v1/targets did not answer (HTTP %s): %s", prometheusAPI, code, remote.Tail(body))
		}
	}
	return hs, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return "", s, false
}

// running reports whether unit runs ("reloading" counts) and starts at boot.
func (hs *hostState) running(unit string) bool {
	return (hs.active[unit] == "active" || hs.active[unit] == "reloading") && hs.enabled[unit] == "enabled"
}

// serviceDiff says how unit is not running as the role wants it ("" when it is).
func (hs *hostState) serviceDiff(unit string) string {
	a, e := orUnknown(hs.active[unit]), orUnknown(hs.enabled[unit])
	switch {
	case hs.running(unit):
		return ""
	case hs.enabled[unit] != "enabled":
		return fmt.Sprintf("%s is %s and %s at boot, want active and enabled", unit, a, e)
	default:
		return fmt.Sprintf("%s is %s, want active", unit, a)
	}
}

// ensureRunning enables and starts unit when it does not run, and says whether it did.
func ensureRunning(ctx context.Context, h remote.Host, hs *hostState, unit string) (bool, error) {
	if hs.running(unit) {
		return false, nil
	}
	if _, err := h.Run(ctx, remote.Cmd{Desc: "enable and start " + unit,
		Command: "systemctl enable --quiet " + unit + " && systemctl start " + unit + " && systemctl is-active --quiet " + unit}); err != nil {
		return false, fmt.Errorf("monitoring: %w\n(%s does not start: see journalctl -u %s on the monitoring host)", err, unit, unit)
	}
	return true, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (hs *hostState) anyJobFile() bool {
	for _, f := range hs.jobFiles {
		if f.exists {
			return true
		}
	}
	return false
}
