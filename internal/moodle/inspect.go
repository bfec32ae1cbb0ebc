package moodle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// State is what Inspect sees on a web node.
type State struct {
	// ConfigPresent: SiteConfig exists. ConfigSHA256 is its sha256 on the host, WantConfigSHA256 that of
	// RenderConfig(s); ConfigInSync also needs its owner, group and mode (root:www-data 640).
	ConfigPresent    bool
	ConfigSHA256     string
	WantConfigSHA256 string
	ConfigOwnerMode  string // "root:www-data 640"
	ConfigInSync     bool

	// Release is the release current points at (ID Placeholder before the first deployment), Previous
	// the release Rollback would return to ("" when none), Releases every release directory.
	Release  Release
	Previous string
	Releases []string
	// ShimInSync: the current release's config.php is MOHD's shim.
	ShimInSync bool

	// CronInSync: the cron units are MOHD's; CronEnabled and CronActive describe the timer;
	// CronLastResult is systemd's Result of the last run ("success", "exit-code"...) and CronLastRun
	// when it ended ("" when systemd keeps no record: before the first run, or once it unloaded the
	// service after the timer stopped).
	CronInSync     bool
	CronEnabled    bool
	CronActive     bool
	CronLastResult string
	CronLastRun    string

	// Maintenance: CLI maintenance mode is on (dataroot/climaintenance.html exists).
	Maintenance bool

	// Diffs lists, in words, what differs from what MOHD writes; empty when the node is in sync.
	Diffs []string
}

// InSync reports whether the node is as MOHD leaves it (maintenance and the release in use aside).
func (st State) InSync() bool { return len(st.Diffs) == 0 }

// Inspect reads h's Moodle state without changing anything: SiteConfig against RenderConfig(s), the
// current release and its shim, the cron timer, maintenance mode.
func Inspect(ctx context.Context, h remote.Host, s Site) (State, error) {
	_, site, err := RenderConfig(s)
	if err != nil {
		return State{}, err
	}
	st := State{WantConfigSHA256: sha256hex(site)}
	shimSum := sha256hex(shimPHP)
	cron := cronFiles()
	script := fmt.Sprintf(`sum() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }
echo "config_sha=$(sum %[1]s)"
echo "config_stat=$(stat -c '%%U:%%G %%a' %[1]s 2>/dev/null)"
echo "current=$(readlink %[2]s)"
echo "previous=$(readlink %[3]s 2>/dev/null)"
echo "releases=$(cd %[4]s 2>/dev/null && for d in */; do [ -d "$d" ] && printf '%%s ' "${d%%/}"; done)"
echo "shim_sha=$(sum %[2]s/config.php)"
echo "service_sha=$(sum %[5]s)"
echo "timer_sha=$(sum %[6]s)"
echo "cron_enabled=$(systemctl is-enabled %[7]s 2>/dev/null)"
echo "cron_active=$(systemctl is-active %[7]s 2>/dev/null)"
echo "cron_result=$(systemctl show -p Result --value %[8]s 2>/dev/null)"
echo "cron_last=$(systemctl show -p ExecMainExitTimestamp --value %[8]s 2>/dev/null)"`,
		SiteConfig, CurrentLink, PreviousLink, Releases, cron[0].Path, cron[1].Path, CronTimer, CronService)
	res, err := h.Run(ctx, remote.Cmd{Command: script, Desc: "inspect Moodle on this node"})
	if err != nil {
		return st, err
	}
	kv := map[string]string{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = strings.TrimSpace(v)
		}
	}
	drift := func(format string, a ...any) { st.Diffs = append(st.Diffs, fmt.Sprintf(format, a...)) }

	st.ConfigSHA256, st.ConfigOwnerMode = kv["config_sha"], kv["config_stat"]
	st.ConfigPresent = st.ConfigSHA256 != ""
	wantStat := "root:" + WebUser + " 640"
	switch {
	case !st.ConfigPresent:
		drift("%s is missing", SiteConfig)
	case st.ConfigSHA256 != st.WantConfigSHA256:
		drift("%s differs from the site's configuration (edited by hand, or the settings changed)", SiteConfig)
	case st.ConfigOwnerMode != wantStat:
		drift("%s is %s, want %s", SiteConfig, st.ConfigOwnerMode, wantStat)
	default:
		st.ConfigInSync = true
	}

	st.Release = Release{ID: path.Base(kv["current"])}
	if kv["current"] == "" {
		drift("%s is missing (is this a web node?)", CurrentLink)
	}
	if p := kv["previous"]; p != "" {
		st.Previous = path.Base(p)
	}
	st.Releases = strings.Fields(kv["releases"])
	sort.Strings(st.Releases)
	if st.Release.Deployed() {
		st.ShimInSync = kv["shim_sha"] == shimSum
		if !st.ShimInSync {
			drift("%s/config.php is not MOHD's shim", Releases+"/"+st.Release.ID)
		}
		if st.Release, err = readRelease(ctx, h, st.Release.ID); err != nil {
			return st, err
		}
	}

	st.CronInSync = kv["service_sha"] == sha256hex(cron[0].Content) && kv["timer_sha"] == sha256hex(cron[1].Content)
	st.CronEnabled = kv["cron_enabled"] == "enabled"
	st.CronActive = kv["cron_active"] == "active"
	st.CronLastResult, st.CronLastRun = kv["cron_result"], kv["cron_last"]
	if st.CronLastRun == "n/a" {
		st.CronLastRun = ""
	}
	switch {
	case !st.CronInSync:
		drift("Moodle's cron units (%s, %s) are missing or differ from MOHD's", CronService, CronTimer)
	case !st.CronEnabled || !st.CronActive:
		drift("%s is %s and %s, want enabled and active", CronTimer, orUnknown(kv["cron_enabled"]), orUnknown(kv["cron_active"]))
	}

	if st.Maintenance, err = maintenanceOn(ctx, h); err != nil {
		return st, err
	}
	return st, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
