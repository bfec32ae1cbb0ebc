package moodle

import (
	"context"
	"fmt"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Cron runs on every web node, every minute: Moodle's task locks (in the database, lock_factory) make each
// scheduled task run on one node at a time and its next-run time makes it run once per period across the
// cluster, so a dead node never stops cron and no node is special.
const (
	CronService = "mohd-moodle-cron.service"
	CronTimer   = "mohd-moodle-cron.timer"
	cronUnitDir = "/etc/systemd/system"
)

// cronServiceUnit runs cron.php of the current release as the web server's user. A oneshot service is
// never started twice at once, so a long cron run on this node makes the timer skip, not pile up.
var cronServiceUnit = []byte(`# Managed by MOHD (moodle_backend): Moodle's cron on this web node.
[Unit]
Description=MOHD: Moodle cron (admin/cli/cron.php)
After=network-online.target php8.2-fpm.service
Wants=network-online.target
# Nothing to run before Moodle is deployed and configured (a skipped start is not a failure).
ConditionPathExists=` + CurrentLink + `/admin/cli/cron.php
ConditionPathExists=` + SiteConfig + `

[Service]
Type=oneshot
User=` + WebUser + `
Group=` + WebUser + `
# PHP resolves the script's path through current: the whole run uses one release, even across a switch.
ExecStart=` + PHP + ` ` + CurrentLink + `/admin/cli/cron.php
# A task may run long (backups, reports): one run may take hours, never forever.
TimeoutStartSec=6h
Nice=5
IOSchedulingClass=best-effort
IOSchedulingPriority=6
NoNewPrivileges=yes
PrivateTmp=yes
ProtectHome=yes
ProtectSystem=full
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
`)

var cronTimerUnit = []byte(`# Managed by MOHD (moodle_backend): Moodle's cron every minute on every web node.
[Unit]
Description=MOHD: Moodle cron every minute

[Timer]
OnCalendar=*-*-* *:*:00
AccuracySec=1s
Persistent=false

[Install]
WantedBy=timers.target
`)

func cronFiles() []remote.File {
	return []remote.File{
		{Path: cronUnitDir + "/" + CronService, Content: cronServiceUnit, Mode: 0o644, Owner: "root", Group: "root"},
		{Path: cronUnitDir + "/" + CronTimer, Content: cronTimerUnit, Mode: 0o644, Owner: "root", Group: "root"},
	}
}

// EnsureCron installs Moodle's cron timer on h and has it enabled and running. Call it once Moodle is
// installed: before, each run would fail (the timer skips runs only while no release or no SiteConfig
// exists).
func EnsureCron(ctx context.Context, h remote.Host) (bool, error) {
	changed := false
	for _, f := range cronFiles() {
		up, err := h.Upload(ctx, f)
		if err != nil {
			return changed, err
		}
		changed = changed || up
	}
	reload := ""
	if changed {
		// New unit files: systemd reads them, and an active timer picks up a changed schedule.
		reload = "systemctl daemon-reload\nif systemctl is-active --quiet " + CronTimer + "; then systemctl restart " + CronTimer + "; fi\nchanged=1\n"
	}
	script := fmt.Sprintf(`set -e
changed=
%s
if ! systemctl is-enabled --quiet %[2]s; then systemctl enable --quiet %[2]s; changed=1; fi
if ! systemctl is-active --quiet %[2]s; then systemctl start %[2]s; changed=1; fi
[ -z "$changed" ] || echo changed`, reload, CronTimer)
	res, err := h.Run(ctx, remote.Cmd{Command: script, Desc: "enable and start " + CronTimer})
	if err != nil {
		return changed, err
	}
	return changed || strings.TrimSpace(string(res.Stdout)) == "changed", nil
}

// StopCronCommand stops and disables Moodle's cron timer (a run in progress finishes), for a node leaving
// the site; it succeeds on a node without the timer. Run it as root.
const StopCronCommand = "if systemctl cat " + CronTimer + " >/dev/null 2>&1; then systemctl disable --now --quiet " + CronTimer + "; fi"

// StopCron runs StopCronCommand when the timer is enabled or active.
func StopCron(ctx context.Context, h remote.Host) (bool, error) {
	res, err := h.Run(ctx, remote.Cmd{
		Command: "if systemctl is-enabled --quiet " + CronTimer + " 2>/dev/null || systemctl is-active --quiet " + CronTimer + "; then " +
			StopCronCommand + "; echo changed; fi",
		Desc: "stop " + CronTimer,
	})
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(res.Stdout)) == "changed", nil
}
