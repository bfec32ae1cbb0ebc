// Package moodle deploys and runs Moodle on a web node prepared by the web role (internal/roles/web.go):
// the code as read-only releases under Root with an atomic switch of Root/current, the site's
// configuration in SiteConfig, Moodle's own CLI (install, upgrade, maintenance, caches, settings) run as the
// web server's user, and cron on every node. It has no Terraform types; it talks to hosts only through
// remote.Host, and Inspect reads a node's state without changing it.
//
// Layout on a web node:
//
//	/etc/moodle/config.php               SiteConfig: $CFG with the secrets, 0640 root:www-data
//	/var/www/moodle/releases/<id>/       a release, root-owned, read-only for www-data
//	/var/www/moodle/releases/<id>/config.php   the shim: requires SiteConfig, then lib/setup.php
//	/var/www/moodle/current  -> releases/<id>  Apache's DocumentRoot (role web)
//	/var/www/moodle/previous -> releases/<id>  the release Rollback returns to
//	/var/www/moodle/repo.git             cache of a git source (bare)
//	/var/www/moodledata                  $CFG->dataroot, the shared NFS mount
//	/var/cache/moodle                    $CFG->localcachedir, on the node's own disk
//
// Moodle's contract that this package relies on (Moodle 4.5, checked against its code): config.php sets
// $CFG and requires lib/setup.php from the same directory; admin/cli scripts run as the web server's user,
// read their options from $_SERVER['argv'] (cli_get_params) and exit 0 on success; cfg.php exits 4 when
// a setting is forced in config.php; upgrade.php --is-pending exits 2 when an upgrade is pending;
// maintenance.php --enable writes dataroot/climaintenance.html, which every node sharing dataroot obeys;
// the database holds Moodle when the table {prefix}config has a row "version".
package moodle

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Paths on a web node. The role web creates Root, Root/releases/placeholder, Root/current, DataRoot (the
// NFS mount point) and LocalCacheDir.
const (
	Root          = "/var/www/moodle"
	Releases      = Root + "/releases"
	CurrentLink   = Root + "/current"
	PreviousLink  = Root + "/previous"
	GitCache      = Root + "/repo.git"
	DataRoot      = "/var/www/moodledata"
	LocalCacheDir = "/var/cache/moodle"
	SiteConfig    = "/etc/moodle/config.php"
	SiteConfigDir = "/etc/moodle"

	// Placeholder is the empty release the role points current at until a deployment.
	Placeholder = "placeholder"
	// KeepReleases is how many releases a deployment keeps: the current one, the previous one (for
	// Rollback) and the newest other.
	KeepReleases = 3

	// WebUser runs PHP-FPM's Moodle pool, cron and every Moodle CLI script.
	WebUser = "www-data"
	// PHP is the CLI Moodle's scripts run with.
	PHP = "/usr/bin/php"
	// FPMService is reloaded (gracefully) when the code or SiteConfig change, so OPcache and PHP's
	// realpath cache let go of the old files at once.
	FPMService = "php8.2-fpm"
)

// ErrNoRelease: current is the role's placeholder, no Moodle code is deployed.
var ErrNoRelease = errors.New("no Moodle release is deployed (current is the role's placeholder): deploy one first")

// phpString returns s as a PHP single-quoted string literal. Inside single quotes PHP only interprets \\
// and \', so escaping those two makes any byte sequence safe.
func phpString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// reloadFPM reloads PHP-FPM gracefully when it runs (its drop-in checks the configuration first).
func reloadFPM(ctx context.Context, h remote.Host) error {
	_, err := h.Run(ctx, remote.Cmd{
		Command: "if systemctl is-active --quiet " + FPMService + "; then systemctl reload " + FPMService + "; fi",
		Desc:    "reload PHP-FPM (OPcache and the realpath cache drop the old files)",
	})
	return err
}

// exitCode returns the exit code of a failed remote command, or -1 when err is not an exit error.
func exitCode(err error) int {
	var ee *remote.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode
	}
	return -1
}

// lastLine is the last non-empty line of out, for messages.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func wrap(h remote.Host, format string, a ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{h.Name()}, a...)...)
}
