package moodle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Moodle's CLI scripts, run as WebUser with PHP from the current release.

// noReleaseExit is the exit code of a CLI command that found no Moodle in current.
const noReleaseExit = 125

// cliPrologue resolves current once (a deployment may switch it meanwhile) and refuses the placeholder.
func cliPrologue(script string) string {
	return fmt.Sprintf(`rel=$(readlink -e %[1]s) || { echo "%[1]s is missing" >&2; exit %[3]d; }
if [ ! -f "$rel/admin/cli/%[2]s" ]; then echo "$rel has no admin/cli/%[2]s" >&2; exit %[3]d; fi
cd "$rel"
`, CurrentLink, script, noReleaseExit)
}

// runCLI runs admin/cli/script with args (visible to other users in the process list: no secrets).
func runCLI(ctx context.Context, h remote.Host, desc, script string, args ...string) error {
	var b strings.Builder
	b.WriteString(cliPrologue(script))
	b.WriteString("exec " + PHP + ` "$rel/admin/cli/` + script + `"`)
	for _, a := range args {
		b.WriteString(" " + remote.Quote(a))
	}
	res, err := h.Run(ctx, remote.Cmd{Command: b.String(), AsUser: WebUser, Desc: desc})
	return cliErr(err, res)
}

// runCLIStdin runs admin/cli/script with args that must stay out of the process list (passwords): PHP
// reads a small script from its standard input that sets $_SERVER['argv'], where Moodle's cli_get_params
// reads options, and then runs the CLI script in the same process.
func runCLIStdin(ctx context.Context, h remote.Host, desc, script string, args, secrets []string) error {
	var in strings.Builder
	// PHP defines STDIN, STDOUT and STDERR only for a script read from a file; Moodle's CLI writes to them.
	in.WriteString("<?php\nif (!defined('STDIN')) {\n    define('STDIN', fopen('php://stdin', 'r'));\n" +
		"    define('STDOUT', fopen('php://stdout', 'w'));\n    define('STDERR', fopen('php://stderr', 'w'));\n}\n")
	in.WriteString("$_SERVER['argv'] = [getcwd() . " + phpString("/admin/cli/"+script))
	for _, a := range args {
		in.WriteString(", " + phpString(a))
	}
	in.WriteString("];\n$_SERVER['argc'] = count($_SERVER['argv']);\n$argv = $_SERVER['argv'];\n$argc = $_SERVER['argc'];\n")
	in.WriteString("require $_SERVER['argv'][0];\n")
	res, err := h.Run(ctx, remote.Cmd{
		Command: cliPrologue(script) + "exec " + PHP,
		Stdin:   []byte(in.String()),
		AsUser:  WebUser,
		Desc:    desc,
		Secrets: secrets,
	})
	return cliErr(err, res)
}

// cliErr turns "no release" into ErrNoRelease and adds the last lines of standard output (where Moodle's
// CLI prints many of its problems) to other failures.
func cliErr(err error, res remote.Result) error {
	if err == nil {
		return nil
	}
	if exitCode(err) == noReleaseExit {
		return fmt.Errorf("%w: %w", ErrNoRelease, err)
	}
	if out := strings.TrimSpace(string(res.Stdout)); out != "" {
		return fmt.Errorf("%w\nstdout (last lines):\n%s", err, remote.Tail(out))
	}
	return err
}

// dbProbe reads, with SiteConfig's credentials and nothing of Moodle's code, what Moodle itself checks to
// know whether it is installed: the table {prefix}config and its row "version" (lib/setup.php,
// moodle_needs_upgrading). It works before any release is deployed and for any Moodle version.
const dbProbe = `<?php
define('CLI_SCRIPT', true);
define('MOODLE_INTERNAL', true);
if (!is_readable(` + "'" + SiteConfig + "'" + `)) {
    fwrite(STDERR, "` + SiteConfig + ` is missing or unreadable: write the site configuration first\n");
    exit(4);
}
require ` + "'" + SiteConfig + "'" + `;
mysqli_report(MYSQLI_REPORT_OFF);
$port = !empty($CFG->dboptions['dbport']) ? (int) $CFG->dboptions['dbport'] : 3306;
$db = mysqli_init();
$db->options(MYSQLI_OPT_CONNECT_TIMEOUT, 10);
if (!@$db->real_connect($CFG->dbhost, $CFG->dbuser, $CFG->dbpass, $CFG->dbname, $port)) {
    fwrite(STDERR, sprintf("cannot connect to database %s on %s:%d as %s: error %d: %s\n",
        $CFG->dbname, $CFG->dbhost, $port, $CFG->dbuser, $db->connect_errno, $db->connect_error));
    exit(3);
}
$like = $db->real_escape_string(addcslashes($CFG->prefix, '\\_%')) . '%';
$tables = [];
$result = $db->query("SHOW TABLES LIKE '$like'");
while ($row = $result->fetch_row()) {
    $tables[] = $row[0];
}
$out = ['tables' => count($tables), 'config' => in_array($CFG->prefix . 'config', $tables, true)];
if ($out['config']) {
    $result = $db->query("SELECT name, value FROM ` + "`" + `{$CFG->prefix}config` + "`" + ` WHERE name IN ('version', 'release', 'branch')");
    while ($row = $result->fetch_assoc()) {
        $out[$row['name']] = $row['value'];
    }
}
echo json_encode($out), "\n";
`

type probeResult struct {
	Tables  int    `json:"tables"`
	Config  bool   `json:"config"`
	Version string `json:"version"`
	Release string `json:"release"`
	Branch  string `json:"branch"`
}

func probeDB(ctx context.Context, h remote.Host) (probeResult, error) {
	res, err := h.Run(ctx, remote.Cmd{
		Command: "cd / && exec " + PHP,
		Stdin:   []byte(dbProbe),
		AsUser:  WebUser,
		Desc:    "read Moodle's version from the database",
	})
	if err != nil {
		return probeResult{}, err
	}
	var p probeResult
	if err := json.Unmarshal(res.Stdout, &p); err != nil {
		return probeResult{}, wrap(h, "reading Moodle's version from the database: unexpected output %q", lastLine(res.Stdout))
	}
	return p, nil
}

// Installed reports whether the site's database holds Moodle: {prefix}config exists and has a version.
// A database with Moodle's tables but no version (an interrupted installation) is an error, as
// install_database.php would refuse it.
func Installed(ctx context.Context, h remote.Host) (bool, error) {
	p, err := probeDB(ctx, h)
	if err != nil {
		return false, err
	}
	return p.installed(h)
}

func (p probeResult) installed(h remote.Host) (bool, error) {
	switch {
	case p.Config && p.Version != "":
		return true, nil
	case p.Config:
		return false, wrap(h, "the database has Moodle's config table but no version in it: an interrupted installation? "+
			"Drop its tables (or use another prefix) and install again")
	case p.Tables > 0:
		return false, wrap(h, "the database holds %d tables with Moodle's prefix but no config table: an interrupted installation "+
			"or another application? Drop them (or use another prefix) and install again", p.Tables)
	}
	return false, nil
}

// Admin is the site's first administrator and the site's names, given to install_database.php.
type Admin struct {
	User     string // default "admin"
	Password string
	Email    string
	// FullName and ShortName name the site (front page, emails).
	FullName  string
	ShortName string
}

var moodleUserRe = regexp.MustCompile(`^[a-z0-9_.@-]{1,100}$`)

// Validate checks a (with its default user name) the way Moodle would, and refuses what would leave clicks
// to do after the installation (no email, no site name).
func (a Admin) Validate() error {
	if a.User == "" {
		a.User = "admin"
	}
	var errs []error
	if !moodleUserRe.MatchString(a.User) {
		errs = append(errs, fmt.Errorf("admin user %q: Moodle user names are lowercase letters, digits, '_', '.', '@' and '-'", a.User))
	}
	if a.Password == "" {
		errs = append(errs, errors.New("admin password: must not be empty"))
	}
	if at := strings.LastIndexByte(a.Email, '@'); at < 1 || at == len(a.Email)-1 || strings.ContainsAny(a.Email, " \t\n") {
		errs = append(errs, fmt.Errorf("admin email %q: not an email address (Moodle would ask for one at the first login)", a.Email))
	}
	if strings.TrimSpace(a.FullName) == "" || strings.TrimSpace(a.ShortName) == "" {
		errs = append(errs, errors.New("site full name and short name: must not be empty (Moodle would ask for them at the first login)"))
	}
	return errors.Join(errs...)
}

// Install installs Moodle into the site's empty database with admin/cli/install_database.php, as the web
// server's user, with the code of the current release and SiteConfig. On an installed database it does
// nothing. The admin password never appears in a command line.
func Install(ctx context.Context, h remote.Host, a Admin) error {
	if err := a.Validate(); err != nil {
		return err
	}
	if a.User == "" {
		a.User = "admin"
	}
	done, err := Installed(ctx, h)
	if err != nil || done {
		return err
	}
	args := []string{"--agree-license", "--adminuser=" + a.User, "--adminpass=" + a.Password, "--adminemail=" + a.Email,
		"--fullname=" + a.FullName, "--shortname=" + a.ShortName}
	if err := runCLIStdin(ctx, h, "install Moodle's database (admin/cli/install_database.php)", "install_database.php", args, []string{a.Password}); err != nil {
		return err
	}
	done, err = Installed(ctx, h)
	if err == nil && !done {
		err = wrap(h, "install_database.php succeeded but the database holds no Moodle version")
	}
	return err
}

// Upgrade runs admin/cli/upgrade.php --non-interactive: the database to the current release's version
// (core and plugins). With nothing to upgrade it changes nothing. Put the site in maintenance first, and
// purge the caches after.
func Upgrade(ctx context.Context, h remote.Host) error {
	return runCLI(ctx, h, "upgrade Moodle's database (admin/cli/upgrade.php)", "upgrade.php", "--non-interactive")
}

// SetMaintenance turns CLI maintenance mode on or off (admin/cli/maintenance.php --enable or --disable).
// It lives in moodledata (climaintenance.html), so it applies to every web node sharing it. Nothing runs
// when the mode already is as asked.
func SetMaintenance(ctx context.Context, h remote.Host, on bool) error {
	cur, err := maintenanceOn(ctx, h)
	if err != nil || cur == on {
		return err
	}
	opt, desc := "--disable", "leave maintenance mode"
	if on {
		opt, desc = "--enable", "enter maintenance mode"
	}
	return runCLI(ctx, h, desc+" (admin/cli/maintenance.php)", "maintenance.php", opt)
}

// maintenanceOn reads whether dataroot/climaintenance.html exists, as the web server's user (root may be
// squashed on NFS).
func maintenanceOn(ctx context.Context, h remote.Host) (bool, error) {
	res, err := h.Run(ctx, remote.Cmd{
		Command: fmt.Sprintf("if [ -e %s/climaintenance.html ]; then echo on; else echo off; fi", DataRoot),
		AsUser:  WebUser,
		Desc:    "read the maintenance mode",
	})
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(res.Stdout)) == "on", nil
}

// PurgeCaches runs admin/cli/purge_caches.php.
func PurgeCaches(ctx context.Context, h remote.Host) error {
	return runCLI(ctx, h, "purge Moodle's caches (admin/cli/purge_caches.php)", "purge_caches.php")
}

// ErrForced: cfg.php refused to change a setting that config.php sets (its exit code 4).
var ErrForced = errors.New("the setting is forced in config.php")

var cfgNameRe = regexp.MustCompile(`^[a-z0-9_]{1,100}$`)

// SetConfig sets one setting in the database with admin/cli/cfg.php (component "" or "core" for a core
// setting). The value is passed off the command line. A setting forced in config.php is refused with
// ErrForced: change it in the site's settings instead.
func SetConfig(ctx context.Context, h remote.Host, component, name, value string) error {
	if !cfgNameRe.MatchString(name) {
		return fmt.Errorf("setting name %q: lowercase letters, digits and underscores", name)
	}
	args := []string{"--name=" + name, "--set=" + value}
	if component != "" && component != "core" {
		if !componentRe.MatchString(component) {
			return fmt.Errorf("component %q: not a Moodle component name (type_name, e.g. auth_ldap)", component)
		}
		args = append([]string{"--component=" + component}, args...)
	}
	full := name
	if component != "" {
		full = component + "/" + name
	}
	err := runCLIStdin(ctx, h, "set "+full+" (admin/cli/cfg.php)", "cfg.php", args, nil)
	if exitCode(err) == 4 {
		return fmt.Errorf("%s: setting %s: %w (%s): set it in the site's settings, which MOHD writes there, not in the database",
			h.Name(), full, ErrForced, SiteConfig)
	}
	return err
}

// SiteVersion compares the database with the code.
type SiteVersion struct {
	Installed bool
	// DBVersion and DBRelease are Moodle's version and release in the database ({prefix}config).
	DBVersion, DBRelease string
	// Code is the current release.
	Code Release
	// UpgradePending: upgrade.php --is-pending says the database is older than the code (core or a
	// plugin).
	UpgradePending bool
	// Downgrade: the code is older than the database (after a Rollback past an Upgrade); Moodle refuses
	// to run.
	Downgrade bool
}

// Version reads the site's version from the database and the current release's from its version.php,
// and asks upgrade.php --is-pending whether an upgrade is due.
func Version(ctx context.Context, h remote.Host) (SiteVersion, error) {
	p, err := probeDB(ctx, h)
	if err != nil {
		return SiteVersion{}, err
	}
	inst, err := p.installed(h)
	if err != nil {
		return SiteVersion{}, err
	}
	v := SiteVersion{Installed: inst, DBVersion: p.Version, DBRelease: p.Release}
	if v.Code, err = Current(ctx, h); err != nil {
		return v, err
	}
	if !inst || !v.Code.Deployed() {
		return v, nil
	}
	dbv, err1 := strconv.ParseFloat(v.DBVersion, 64)
	codev, err2 := strconv.ParseFloat(v.Code.Version, 64)
	if err1 == nil && err2 == nil && codev < dbv {
		v.Downgrade = true
		return v, nil
	}
	err = runCLI(ctx, h, "is a Moodle upgrade pending (admin/cli/upgrade.php --is-pending)", "upgrade.php", "--is-pending")
	switch exitCode(err) {
	case -1:
		if err != nil {
			return v, err
		}
	case 2:
		v.UpgradePending = true
	default:
		return v, err
	}
	return v, nil
}
