package moodle

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/remote"
)

// Secrets of the lab site, with the characters that break careless quoting (the database's goes through
// PHP, SQL and the shell).
const (
	labDBPassword    = `Db'pa$s"w0rd;#{x}`
	labRedisPassword = "r3dis-S3cret_pw"
	labAdminPassword = `Adm1n'Pa$$ "w0rd"!`
)

// TestLabMoodle deploys and runs Moodle on a web node of the role image, with a MariaDB and a Redis of
// theirs: deploy (twice), configure, install (twice), log in through Apache with the session in Redis,
// cron from the timer with each task once per minute, maintenance mode, an upgrade to a second release,
// rollback and forward, drift of the site configuration, a git source and pruning.
//
// It deploys MOHD's Moodle-shaped fixture (testdata/fixture), or a real Moodle tree when MOODLE_SOURCE
// names one (a directory or a .tar.gz): then the checks that only the fixture can answer are skipped.
//
//	go test ./internal/moodle/ -run TestLabMoodle -v -count=1 -timeout 45m
//	MOODLE_SOURCE=/srv/moodle-4.5 go test ./internal/moodle/ -run TestLabMoodle -v -count=1 -timeout 60m
func TestLabMoodle(t *testing.T) {
	l := labtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	start := time.Now()
	step := func(format string, a ...any) {
		t.Logf("[%5.1fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}

	srcPath, real := os.Getenv("MOODLE_SOURCE"), true
	if srcPath == "" {
		srcPath, real = "testdata/fixture", false
	}
	srcPath, err := filepath.Abs(srcPath)
	if err != nil {
		t.Fatal(err)
	}
	if real {
		step("deploying the real Moodle tree MOODLE_SOURCE=%s", srcPath)
	} else {
		step("deploying MOHD's Moodle-shaped fixture %s (set MOODLE_SOURCE to a Moodle tree to test real Moodle)", srcPath)
	}

	imgs, err := lab.EnsureRoleImages(ctx, lab.RoleImageOptions{Roles: []string{"web", "db", "redis"}, Progress: func(s string) { t.Log("lab: " + s) }})
	if err != nil {
		t.Fatal(err)
	}
	hosts := labtest.Start(t, l, lab.RoleHostSpec("web1", imgs[0]), lab.RoleHostSpec("db1", imgs[1]), lab.RoleHostSpec("redis1", imgs[2]))
	web, db, red := hosts[0], hosts[1], hosts[2]
	for _, h := range hosts {
		if state, _ := h.Exec(ctx, "timeout 180 systemctl is-system-running --wait || true"); state != "running" {
			failed, _ := h.Exec(ctx, "systemctl --failed --no-legend --plain")
			t.Logf("%s booted %s; failed units: %s", h.Name, state, failed)
		}
	}
	step("hosts up: web1 %s, db1 %s, redis1 %s", web.Addr, db.Addr, red.Addr)

	// What the provider and the other resources do in production: the database and its user, Redis on
	// the private address with a password, moodledata writable (here a local directory stands in for
	// the NFS mount).
	labtest.Exec(t, db, fmt.Sprintf(`set -e
printf '[mysqld]\nbind-address = %s\n' > /etc/mysql/mariadb.conf.d/70-mohd-site.cnf
systemctl restart mariadb
mysql <<'SQL'
CREATE DATABASE moodle DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER 'moodle'@'%%' IDENTIFIED BY '%s';
GRANT ALL PRIVILEGES ON moodle.* TO 'moodle'@'%%';
SQL`, db.Addr, strings.ReplaceAll(labDBPassword, "'", "''")))
	labtest.Exec(t, red, fmt.Sprintf(`set -e
printf 'bind 127.0.0.1 -::1 %s\nrequirepass %s\n' > /etc/redis/conf.d/50-test.conf
chown redis:redis /etc/redis/conf.d/50-test.conf && chmod 0640 /etc/redis/conf.d/50-test.conf
systemctl restart redis-server
for i in $(seq 50); do [ "$(redis-cli -h %[1]s -a %[2]s --no-auth-warning ping 2>/dev/null)" = PONG ] && exit 0; sleep 0.2; done
exit 1`, red.Addr, labRedisPassword))
	labtest.Exec(t, web, "chown www-data:www-data "+DataRoot+" && chmod 2770 "+DataRoot)
	step("database, Redis and moodledata ready")

	rh := labtest.Remote(t, web)
	site := Site{
		WWWRoot: "http://" + web.Addr,
		// The primary is also listed as a replica: the read-only path is exercised with one server.
		DB:              DB{Host: db.Addr, Name: "moodle", User: "moodle", Password: labDBPassword, ReadReplicas: []string{db.Addr}},
		Redis:           Redis{Host: red.Addr, Password: labRedisPassword, Prefix: "mdl_sess_"},
		TrustedProxies:  []string{l.Subnet.String()},
		LogLifetimeDays: 30,
		Settings:        map[string]string{"noemailever": "true"},
	}
	sql := func(query string) string {
		return labtest.Exec(t, db, "mysql -N -B -r moodle -e "+remote.Quote(query))
	}

	// Deploy, twice.
	src := Source{Path: srcPath}
	rel1, changed, err := Deploy(ctx, rh, src, func(s string) { step("deploy: %s", s) })
	if err != nil || !changed || !rel1.Deployed() {
		t.Fatalf("first deploy: %+v changed=%v: %v", rel1, changed, err)
	}
	step("deployed release %s: %s (%s)", rel1.ID, rel1.Release, rel1.Version)
	again, changed, err := Deploy(ctx, rh, src, nil)
	if err != nil || changed || again != rel1 {
		t.Fatalf("second deploy of the same source: %+v changed=%v: %v", again, changed, err)
	}
	if cur, err := Current(ctx, rh); err != nil || cur != rel1 {
		t.Fatalf("Current: %+v %v", cur, err)
	}
	if out := labtest.Exec(t, web, `cd /var/www/moodle/current/ && stat -c '%U %a' version.php config.php admin && readlink /var/www/moodle/current &&
if sudo -u www-data test -w version.php || sudo -u www-data test -w admin; then echo writable; fi`); out != "root 644\nroot 644\nroot 755\nreleases/"+rel1.ID {
		t.Fatalf("the release is not root's and read-only for www-data:\n%s", out)
	}
	step("deployed twice: the second changed nothing")

	// The site's configuration.
	if changed, err := WriteConfig(ctx, rh, site); err != nil || !changed {
		t.Fatalf("WriteConfig: changed=%v %v", changed, err)
	}
	if changed, err := WriteConfig(ctx, rh, site); err != nil || changed {
		t.Fatalf("WriteConfig again: changed=%v %v", changed, err)
	}
	if out := labtest.Exec(t, web, "stat -c '%U:%G %a' /etc/moodle /etc/moodle/config.php"); out != "root:www-data 750\nroot:www-data 640" {
		t.Fatalf("SiteConfig's permissions:\n%s", out)
	}
	// PHP's own syntax check of what MOHD writes, and of the fixture.
	lint := "php -l /etc/moodle/config.php && php -l /var/www/moodle/current/config.php"
	if !real {
		lint += ` && find /var/www/moodle/current/ -name '*.php' -print0 | xargs -0 -n1 php -l`
	}
	if out, err := web.Exec(ctx, "{ "+lint+"; } 2>&1 | grep -v '^No syntax errors detected' || true"); err != nil || out != "" {
		t.Fatalf("php -l: %v\n%s", err, out)
	}
	step("site configuration written twice, php -l clean")

	// Install, twice.
	if inst, err := Installed(ctx, rh); err != nil || inst {
		t.Fatalf("Installed before install: %v %v", inst, err)
	}
	admin := Admin{User: "admin", Password: labAdminPassword, Email: "admin@example.edu", FullName: "MOHD lab", ShortName: "lab"}
	if err := Install(ctx, rh, admin); err != nil {
		t.Fatal(err)
	}
	if inst, err := Installed(ctx, rh); err != nil || !inst {
		t.Fatalf("Installed after install: %v %v", inst, err)
	}
	users := sql("SELECT COUNT(*) FROM mdl_user")
	if err := Install(ctx, rh, admin); err != nil {
		t.Fatalf("install on an installed site: %v", err)
	}
	if u := sql("SELECT COUNT(*) FROM mdl_user"); u != users {
		t.Fatalf("the second Install changed the users: %s, then %s", users, u)
	}
	v, err := Version(ctx, rh)
	if err != nil || !v.Installed || v.DBVersion != rel1.Version || v.UpgradePending || v.Downgrade {
		t.Fatalf("Version after install: %+v %v", v, err)
	}
	step("installed: database version %s", v.DBVersion)

	// Log in through Apache: the session lives in Redis and survives PHP-FPM's restart.
	base := "http://" + web.Addr
	login(t, web, base, "admin", labAdminPassword)
	dash := labtest.Exec(t, web, `curl -sS -L -b /run/mohd-test.jar -c /run/mohd-test.jar -w '\n%{http_code} %{url_effective}' `+base+"/my/")
	if !strings.HasSuffix(dash, "200 "+base+"/my/") || strings.Contains(dash, `name="logintoken"`) {
		t.Fatalf("the dashboard after login:\n%s", tail(dash))
	}
	sid := labtest.Exec(t, web, `awk '$6 ~ /^MoodleSession/ {print $7}' /run/mohd-test.jar | tail -n 1`)
	if sid == "" {
		t.Fatal("no MoodleSession cookie")
	}
	if keys := labtest.Exec(t, red, "redis-cli -a "+labRedisPassword+" --no-auth-warning --scan --pattern 'mdl_sess_*"+sid+"*'"); keys == "" {
		t.Fatalf("the session %s is not in Redis", sid)
	}
	labtest.Exec(t, web, "systemctl restart php8.2-fpm")
	dash = labtest.Exec(t, web, `curl -sS -b /run/mohd-test.jar -c /run/mohd-test.jar -w '\n%{http_code}' `+base+"/my/")
	if !strings.HasSuffix(dash, "\n200") {
		t.Fatalf("the session did not survive PHP-FPM's restart:\n%s", tail(dash))
	}
	if !real {
		if !strings.Contains(dash, `<span id="username">admin</span>`) || !strings.Contains(dash, `<span id="views">3</span>`) ||
			!strings.Contains(dash, `<span id="node">web1</span>`) {
			t.Fatalf("the fixture's dashboard:\n%s", dash)
		}
		if n := sql("SELECT COUNT(*) FROM mdl_logstore_standard_log WHERE eventname = '\\\\core\\\\event\\\\user_loggedin'"); n != "1" {
			t.Fatalf("logins in the standard log: %s", n)
		}
		// A read through the replica, and moodledata written through PHP.
		rep := labtest.Exec(t, web, "curl -fsS "+base+"/check/replica.php")
		if !strings.Contains(rep, "handle=readonly") || !strings.Contains(rep, "replica_host="+db.Addr) || !strings.Contains(rep, "server_hostname=db1") {
			t.Fatalf("the replica check:\n%s", rep)
		}
		if out := labtest.Exec(t, web, "curl -fsS '"+base+"/check/dataroot.php?write=1'"); !strings.Contains(out, "file=web1 ") {
			t.Fatalf("the dataroot check:\n%s", out)
		}
	}
	step("logged in through Apache; session %s… in Redis, kept across a PHP-FPM restart", sid[:8])

	// Cron: the timer runs it every minute; each task runs at most once per minute, even when crons run
	// at once (as on several nodes).
	if !real {
		// An event older than the log lifetime, for the first cron run to clean up.
		sql(fmt.Sprintf("INSERT INTO mdl_logstore_standard_log (eventname, component, action, target, crud, edulevel, contextid, contextlevel, "+
			"contextinstanceid, userid, timecreated) VALUES ('\\\\core\\\\event\\\\old', 'core', 'x', 'x', 'r', 0, 1, 10, 0, 0, %d)",
			time.Now().Add(-40*24*time.Hour).Unix()))
	}
	if changed, err := EnsureCron(ctx, rh); err != nil || !changed {
		t.Fatalf("EnsureCron: changed=%v %v", changed, err)
	}
	if changed, err := EnsureCron(ctx, rh); err != nil || changed {
		t.Fatalf("EnsureCron again: changed=%v %v", changed, err)
	}
	waitFor(t, web, 150*time.Second, `[ "$(systemctl show -p ExecMainExitTimestampMonotonic --value `+CronService+`)" -gt 0 ]`)
	if res := labtest.Exec(t, web, "systemctl show -p Result --value "+CronService); res != "success" {
		log, _ := web.Exec(ctx, "journalctl -u "+CronService+" --no-pager | tail -n 30")
		t.Fatalf("the timer's cron run: %s\n%s", res, log)
	}
	task := `core\\task\\session_cleanup_task`
	if n, _ := strconv.Atoi(sql("SELECT COUNT(*) FROM mdl_task_log WHERE classname = '" + task + "'")); n < 1 {
		t.Fatalf("%s never ran", task)
	}
	if dup := sql("SELECT classname, FLOOR(timestart / 60), COUNT(*) FROM mdl_task_log GROUP BY classname, FLOOR(timestart / 60) HAVING COUNT(*) > 1"); dup != "" {
		t.Fatalf("tasks that ran twice in one minute:\n%s", dup)
	}
	// Three crons at once with every task due, as three nodes at the same minute: each task runs once.
	// The timer is stopped meanwhile (Inspect sees it, EnsureCron repairs it).
	labtest.Exec(t, web, "systemctl stop "+CronTimer+" && while systemctl is-active --quiet "+CronService+"; do sleep 1; done")
	if st, err := Inspect(ctx, rh, site); err != nil || st.InSync() || st.CronActive {
		t.Fatalf("Inspect with the cron timer stopped: %+v %v", st, err)
	}
	if !real {
		// Each task of the fixture then takes 2 s: the crons overlap.
		if err := SetConfig(ctx, rh, "tool_mohdfixture", "tasksleep", "2"); err != nil {
			t.Fatal(err)
		}
	}
	since := sql("SELECT UNIX_TIMESTAMP()")
	sql("UPDATE mdl_task_scheduled SET nextruntime = 0")
	labtest.Exec(t, web, `cd /var/www/moodle/current && for i in 1 2 3; do sudo -u www-data php admin/cli/cron.php >/run/cron$i.log 2>&1 & done; wait`)
	runs := sql("SELECT classname, COUNT(*) FROM mdl_task_log WHERE timestart >= " + since + " GROUP BY classname")
	if !strings.Contains(runs, strings.ReplaceAll(task, `\\`, `\`)+"\t1") {
		t.Fatalf("%s did not run exactly once with three crons at once:\n%s", task, runs)
	}
	for _, line := range strings.Split(runs, "\n") {
		if !strings.HasSuffix(line, "\t1") {
			t.Fatalf("a task ran more than once with three crons at once:\n%s", runs)
		}
	}
	if !real && len(strings.Split(runs, "\n")) != len([]string{"session_cleanup", "logstore cleanup", "heartbeat"}) {
		t.Fatalf("the fixture's three tasks did not all run:\n%s", runs)
	}
	if !real {
		if got := sql("SELECT value FROM mdl_config_plugins WHERE plugin = 'tool_mohdfixture' AND name = 'tasksleep'"); got != "2" {
			t.Fatalf("cfg.php stored tool_mohdfixture/tasksleep = %q", got)
		}
		if err := SetConfig(ctx, rh, "tool_mohdfixture", "tasksleep", "0"); err != nil {
			t.Fatal(err)
		}
	}
	if changed, err := EnsureCron(ctx, rh); err != nil || !changed {
		t.Fatalf("EnsureCron with the timer stopped: changed=%v %v", changed, err)
	}
	if !real {
		if n := sql("SELECT COUNT(*) FROM mdl_logstore_standard_log WHERE eventname = '\\\\core\\\\event\\\\old'"); n != "0" {
			t.Fatalf("the log cleanup left an event older than the log lifetime (%s)", n)
		}
		if n := sql("SELECT COUNT(*) FROM mdl_logstore_standard_log WHERE eventname = '\\\\core\\\\event\\\\user_loggedin'"); n != "1" {
			t.Fatalf("the log cleanup removed a recent event")
		}
		if out := labtest.Exec(t, web, "sudo -u www-data cat "+DataRoot+"/mohdfixture/heartbeat"); !strings.HasPrefix(out, "web1 ") {
			t.Fatalf("heartbeat: %q", out)
		}
	}
	step("cron: the timer ran it, no task twice in a minute; three crons at once ran each task once:\n%s", runs)

	st, err := Inspect(ctx, rh, site)
	if err != nil || !st.InSync() || st.Release != rel1 || !st.CronEnabled || !st.CronActive || st.Maintenance {
		t.Fatalf("Inspect of a node in sync: %+v %v", st, err)
	}

	// Maintenance: every page answers 503, then the site is back.
	if err := SetMaintenance(ctx, rh, true); err != nil {
		t.Fatal(err)
	}
	if code := httpCode(t, web, base+"/"); code != "503" {
		t.Fatalf("in maintenance the front page answered %s", code)
	}
	if st, err := Inspect(ctx, rh, site); err != nil || !st.Maintenance {
		t.Fatalf("Inspect in maintenance: %+v %v", st, err)
	}
	if err := SetMaintenance(ctx, rh, true); err != nil {
		t.Fatal(err)
	}
	if err := SetMaintenance(ctx, rh, false); err != nil {
		t.Fatal(err)
	}
	if code := httpCode(t, web, base+"/"); code != "200" {
		t.Fatalf("after maintenance the front page answered %s", code)
	}
	step("maintenance on (503) and off (200)")

	// A settings change through cfg.php; a setting of config.php is refused.
	if err := SetConfig(ctx, rh, "", "mohdlabnote", "it's set"); err != nil {
		t.Fatal(err)
	}
	if got := sql("SELECT value FROM mdl_config WHERE name = 'mohdlabnote'"); got != "it's set" {
		t.Fatalf("cfg.php stored %q", got)
	}
	if err := SetConfig(ctx, rh, "", "noemailever", "false"); err == nil || !strings.Contains(err.Error(), "forced in config.php") {
		t.Fatalf("a setting forced in config.php: %v", err)
	}

	// An upgrade: a second release whose version is 0.01 higher.
	bumped := bumpVersion(t, unpacked(t, srcPath))
	rel2, changed, err := Deploy(ctx, rh, Source{Path: bumped}, nil)
	if err != nil || !changed || rel2.ID == rel1.ID || rel2.Version == rel1.Version {
		t.Fatalf("deploy of the second release: %+v changed=%v %v", rel2, changed, err)
	}
	if v, err := Version(ctx, rh); err != nil || !v.UpgradePending || v.DBVersion != rel1.Version || v.Code != rel2 {
		t.Fatalf("Version with an upgrade pending: %+v %v", v, err)
	}
	if code := httpCode(t, web, base+"/"); code == "200" {
		t.Fatal("the site answers 200 with an upgrade pending")
	}
	for _, f := range []func() error{
		func() error { return SetMaintenance(ctx, rh, true) },
		func() error { return Upgrade(ctx, rh) },
		func() error { return PurgeCaches(ctx, rh) },
		func() error { return SetMaintenance(ctx, rh, false) },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := Version(ctx, rh); err != nil || v.UpgradePending || v.DBVersion != rel2.Version {
		t.Fatalf("Version after the upgrade: %+v %v", v, err)
	}
	if err := Upgrade(ctx, rh); err != nil {
		t.Fatalf("an upgrade with nothing to do: %v", err)
	}
	if !real {
		if n := sql("SELECT COUNT(*) FROM mdl_upgrade_log WHERE info = 'Upgrade savepoint reached' AND version = '" + rel2.Version + "'"); n != "1" {
			t.Fatalf("the fixture's upgrade step did not run (%s savepoints)", n)
		}
	}
	step("upgraded to release %s (%s)", rel2.ID, rel2.Version)

	// Rollback: the code goes back (Moodle refuses to run code older than its database), and forward.
	back, err := Rollback(ctx, rh)
	if err != nil || back != rel1 {
		t.Fatalf("Rollback: %+v %v", back, err)
	}
	if v, err := Version(ctx, rh); err != nil || !v.Downgrade {
		t.Fatalf("Version after rolling back past an upgrade: %+v %v", v, err)
	}
	fwd, err := Rollback(ctx, rh)
	if err != nil || fwd != rel2 {
		t.Fatalf("Rollback again (forward): %+v %v", fwd, err)
	}
	if code := httpCode(t, web, base+"/"); code != "200" {
		t.Fatalf("after rolling forward the front page answered %s", code)
	}
	step("rolled back to %s and forward to %s", rel1.ID, rel2.ID)

	// Drift: a hand edit of the site configuration shows, and WriteConfig repairs it.
	labtest.Exec(t, web, `echo '$CFG->debug = 32767;' >> `+SiteConfig)
	st, err = Inspect(ctx, rh, site)
	if err != nil || st.InSync() || st.ConfigInSync || !strings.Contains(strings.Join(st.Diffs, "\n"), "differs") {
		t.Fatalf("Inspect after a hand edit: %+v %v", st, err)
	}
	if changed, err := WriteConfig(ctx, rh, site); err != nil || !changed {
		t.Fatalf("WriteConfig repairing the edit: %v %v", changed, err)
	}
	if st, err := Inspect(ctx, rh, site); err != nil || !st.InSync() {
		t.Fatalf("Inspect after the repair: %+v %v", st, err)
	}
	step("a hand-edited site configuration was seen and repaired")

	if real {
		return
	}
	// A git source (a repository on the node itself stands in for a remote one), then pruning.
	labtest.Exec(t, web, `set -e
rm -rf /srv/src && mkdir -p /srv/src && cp -a /var/www/moodle/current/. /srv/src/ && cd /srv/src
rm -f config.php .mohd-release
git init -q -b main && git add -A && git -c user.name=lab -c user.email=lab@example.edu commit -qm fixture`)
	gsrc := Source{GitURL: "file:///srv/src", Ref: "main"}
	rel3, changed, err := Deploy(ctx, rh, gsrc, func(s string) { step("deploy: %s", s) })
	commit := labtest.Exec(t, web, "git -C /srv/src rev-parse HEAD")
	if err != nil || !changed || rel3.ID != "git-"+commit[:16] || rel3.Version != rel2.Version {
		t.Fatalf("deploy from git: %+v changed=%v %v (commit %s)", rel3, changed, err, commit)
	}
	if _, changed, err := Deploy(ctx, rh, gsrc, nil); err != nil || changed {
		t.Fatalf("deploy from git again: changed=%v %v", changed, err)
	}
	labtest.Exec(t, web, `cd /srv/src && echo '<?php echo "new";' > new.php && git add new.php && git -c user.name=lab -c user.email=lab@example.edu commit -qm new`)
	rel4, _, err := Deploy(ctx, rh, gsrc, nil)
	if err != nil {
		t.Fatal(err)
	}
	left := labtest.Exec(t, web, "ls "+Releases)
	want := strings.Join([]string{rel3.ID, rel4.ID, Placeholder, rel2.ID}, "\n")
	if left != sortedLines(want) {
		t.Fatalf("releases after four deployments:\n%s\nwant:\n%s", left, sortedLines(want))
	}
	if st, err := Inspect(ctx, rh, site); err != nil || st.Previous != rel3.ID || st.Release.ID != rel4.ID {
		t.Fatalf("Inspect after the git deployments: %+v %v", st, err)
	}
	if code := httpCode(t, web, base+"/new.php"); code != "200" {
		t.Fatalf("the new release's page answered %s", code)
	}
	step("deployed from git twice (%s, %s); %s pruned", rel3.ID, rel4.ID, rel1.ID)

	// A node leaving the site: its cron stops for good.
	if changed, err := StopCron(ctx, rh); err != nil || !changed {
		t.Fatalf("StopCron: %v %v", changed, err)
	}
	if changed, err := StopCron(ctx, rh); err != nil || changed {
		t.Fatalf("StopCron again: %v %v", changed, err)
	}
	if out, _ := web.Exec(ctx, "systemctl is-enabled "+CronTimer+"; systemctl is-active "+CronTimer); strings.TrimSpace(out) != "disabled\ninactive" {
		t.Fatalf("the cron timer after StopCron: %s", out)
	}
}

// login logs user in through the login form with curl, keeping the cookies in /run/mohd-test.jar.
func login(t *testing.T, web *lab.Host, base, user, password string) {
	t.Helper()
	labtest.Exec(t, web, "printf '%s' "+remote.Quote(password)+" > /run/mohd-test.pw && rm -f /run/mohd-test.jar")
	out := labtest.Exec(t, web, `set -e
jar=/run/mohd-test.jar
token=$(curl -sS -c $jar -b $jar `+base+`/login/index.php | sed -n 's/.*name="logintoken" value="\([^"]*\)".*/\1/p' | head -n 1)
[ -n "$token" ] || { echo "no login token in the login page" >&2; exit 1; }
curl -sS -o /dev/null -L -c $jar -b $jar -w '%{http_code} %{url_effective}' --data-urlencode "username=`+user+`" \
	--data-urlencode "password@/run/mohd-test.pw" --data-urlencode "logintoken=$token" `+base+`/login/index.php`)
	if !strings.HasPrefix(out, "200 ") || strings.Contains(out, "/login/index.php") {
		t.Fatalf("login as %s ended at %s", user, out)
	}
}

func httpCode(t *testing.T, h *lab.Host, url string) string {
	t.Helper()
	return labtest.Exec(t, h, "curl -sS -o /dev/null -w '%{http_code}' "+url)
}

// unpacked returns a directory with srcPath's tree: srcPath itself, or an archive extracted.
func unpacked(t *testing.T, srcPath string) string {
	t.Helper()
	if !isArchive(srcPath) {
		return srcPath
	}
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", srcPath, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("extracting %s: %v\n%s", srcPath, err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "version.php")); err == nil {
		return dir
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("%s: no version.php at its top or in one top directory", srcPath)
	}
	return filepath.Join(dir, entries[0].Name())
}

// bumpVersion links srcPath's tree into a new directory with $version 0.01 higher in version.php.
func bumpVersion(t *testing.T, srcPath string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "bumped")
	err := filepath.WalkDir(srcPath, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(srcPath, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case rel == "version.php":
			return nil
		}
		if err := os.Link(p, target); err != nil {
			b, rerr := os.ReadFile(p) //nolint:gosec // the test's own tree
			if rerr != nil {
				return rerr
			}
			return os.WriteFile(target, b, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(srcPath, "version.php"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(\$version\s*=\s*)([0-9]+\.[0-9]+)`)
	m := re.FindSubmatch(b)
	if m == nil {
		t.Fatal("no $version in version.php")
	}
	v, _ := strconv.ParseFloat(string(m[2]), 64)
	out := re.ReplaceAll(b, []byte(fmt.Sprintf("${1}%.2f", v+0.01)))
	if err := os.WriteFile(filepath.Join(dst, "version.php"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func waitFor(t *testing.T, h *lab.Host, timeout time.Duration, script string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := h.Exec(context.Background(), script)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", h.Name, timeout, err)
		}
		time.Sleep(2 * time.Second)
	}
}

func tail(s string) string {
	if len(s) > 1500 {
		return "…" + s[len(s)-1500:]
	}
	return s
}

func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		for j := i + 1; j < len(lines); j++ {
			if lines[j] < lines[i] {
				lines[i], lines[j] = lines[j], lines[i]
			}
		}
	}
	return strings.Join(lines, "\n")
}
