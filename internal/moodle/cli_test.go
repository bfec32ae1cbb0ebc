package moodle

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mohd-dev/mohd/internal/remote"
)

func probeAnswer(json string) remote.Result { return remote.Result{Stdout: []byte(json + "\n")} }

func TestInstalled(t *testing.T) {
	cases := []struct {
		out     string
		want    bool
		errPart string
	}{
		{out: `{"tables":0,"config":false}`, want: false},
		{out: `{"tables":412,"config":true,"version":"2024100700.00","release":"4.5"}`, want: true},
		{out: `{"tables":3,"config":true}`, errPart: "no version"},
		{out: `{"tables":7,"config":false}`, errPart: "7 tables"},
		{out: `garbage`, errPart: "unexpected output"},
	}
	for _, c := range cases {
		h := remote.NewFake("")
		h.On(`exec /usr/bin/php$`, probeAnswer(c.out))
		got, err := Installed(context.Background(), h)
		if c.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), c.errPart) {
				t.Errorf("%s: err %v, want %q", c.out, err, c.errPart)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %v %v, want %v", c.out, got, err, c.want)
		}
		// The probe reads SiteConfig as the web server's user and needs nothing of Moodle's code.
		call := h.Calls()[0]
		if call.AsUser != WebUser || !strings.Contains(string(call.Stdin), "require '"+SiteConfig+"'") || strings.Contains(string(call.Stdin), "setup.php") {
			t.Errorf("probe call %+v", call)
		}
	}
	h := remote.NewFake("")
	h.On(`exec /usr/bin/php$`, remote.Result{ExitCode: 3, Stderr: []byte("cannot connect to database moodle on db1:3306 as moodle: error 2002: Connection refused\n")})
	if _, err := Installed(context.Background(), h); err == nil || !strings.Contains(err.Error(), "cannot connect to database") {
		t.Errorf("unreachable database: %v", err)
	}
}

var testAdmin = Admin{User: "admin", Password: `Adm1n'pa$$ "x"`, Email: "admin@example.edu", FullName: "Example University", ShortName: "EU"}

func TestInstall(t *testing.T) {
	h := remote.NewFake("")
	h.Strict = true
	h.On(`^cd / && exec /usr/bin/php$`, probeAnswer(`{"tables":0,"config":false}`)).Times(1)
	h.On(`install_database\.php`, remote.Result{Stdout: []byte("-->System\nInstallation completed successfully.\n")})
	h.On(`^cd / && exec /usr/bin/php$`, probeAnswer(`{"tables":12,"config":true,"version":"2024100700.00"}`))
	if err := Install(context.Background(), h, testAdmin); err != nil {
		t.Fatal(err)
	}
	calls := h.Calls()
	if len(calls) != 3 {
		t.Fatalf("calls: %v", h.Commands())
	}
	inst := calls[1]
	if strings.Contains(inst.Command, testAdmin.Password) || strings.Contains(inst.Command, "adminpass") {
		t.Fatalf("the admin password is on the command line: %s", inst.Command)
	}
	in := string(inst.Stdin)
	for _, want := range []string{
		`$_SERVER['argv'] = [getcwd() . '/admin/cli/install_database.php'`,
		`'--adminpass=Adm1n\'pa$$ "x"'`, `'--agree-license'`, `'--adminuser=admin'`, `'--adminemail=admin@example.edu'`,
		`'--fullname=Example University'`, `'--shortname=EU'`, `require $_SERVER['argv'][0];`,
	} {
		if !strings.Contains(in, want) {
			t.Errorf("the stdin script lacks %s:\n%s", want, in)
		}
	}
	if inst.AsUser != WebUser || len(inst.Secrets) != 1 || inst.Secrets[0] != testAdmin.Password {
		t.Errorf("install call: user %q secrets %q", inst.AsUser, inst.Secrets)
	}

	// Installed already: nothing runs.
	h = remote.NewFake("")
	h.Strict = true
	h.On(`^cd / && exec /usr/bin/php$`, probeAnswer(`{"tables":12,"config":true,"version":"2024100700.00"}`))
	if err := Install(context.Background(), h, testAdmin); err != nil || len(h.Calls()) != 1 {
		t.Fatalf("install on an installed site: %v, calls %v", err, h.Commands())
	}

	// Install with no release deployed.
	h = remote.NewFake("")
	h.On(`^cd / && exec /usr/bin/php$`, probeAnswer(`{"tables":0,"config":false}`))
	h.On(`install_database\.php`, remote.Result{ExitCode: noReleaseExit, Stderr: []byte("/var/www/moodle/releases/placeholder has no admin/cli/install_database.php\n")})
	if err := Install(context.Background(), h, testAdmin); !errors.Is(err, ErrNoRelease) {
		t.Fatalf("install without a release: %v", err)
	}
}

func TestAdminValidate(t *testing.T) {
	if err := testAdmin.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]Admin{
		"uppercase user": {User: "Admin", Password: "x", Email: "a@b.c", FullName: "F", ShortName: "S"},
		"no password":    {Email: "a@b.c", FullName: "F", ShortName: "S"},
		"no email":       {Password: "x", FullName: "F", ShortName: "S"},
		"bad email":      {Password: "x", Email: "admin", FullName: "F", ShortName: "S"},
		"no site name":   {Password: "x", Email: "a@b.c"},
	} {
		if err := a.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSetConfig(t *testing.T) {
	ctx := context.Background()
	h := remote.NewFake("")
	h.On(`cfg\.php`, remote.Result{})
	if err := SetConfig(ctx, h, "auth_ldap", "bind_pw", "s3cr3t value"); err != nil {
		t.Fatal(err)
	}
	c := h.Calls()[0]
	if strings.Contains(c.Command, "s3cr3t") || !strings.Contains(string(c.Stdin), `'--component=auth_ldap', '--name=bind_pw', '--set=s3cr3t value'`) {
		t.Fatalf("cfg.php call: %q stdin %q", c.Command, c.Stdin)
	}

	h = remote.NewFake("")
	h.On(`cfg\.php`, remote.Result{ExitCode: 4, Stderr: []byte("The configuration variable is hard-set in the config.php, unable to change.\n")})
	err := SetConfig(ctx, h, "", "theme", "classic")
	if !errors.Is(err, ErrForced) || !strings.Contains(err.Error(), "theme") || !strings.Contains(err.Error(), SiteConfig) {
		t.Fatalf("a forced setting: %v", err)
	}
	for _, bad := range [][2]string{{"", "the me"}, {"ldap", "x"}, {"", ""}} {
		if err := SetConfig(ctx, remote.NewFake(""), bad[0], bad[1], "v"); err == nil {
			t.Errorf("SetConfig(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestRunCLI(t *testing.T) {
	h := remote.NewFake("")
	h.On(`upgrade\.php`, remote.Result{ExitCode: 1, Stdout: []byte("!! Environment !!\nmysql version 8 is required\n"), Stderr: []byte("")})
	err := Upgrade(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "mysql version 8 is required") {
		t.Fatalf("upgrade failure without its standard output: %v", err)
	}
	c := h.Calls()[0]
	if c.AsUser != WebUser || !strings.Contains(c.Command, `rel=$(readlink -e /var/www/moodle/current)`) ||
		!strings.Contains(c.Command, `exec /usr/bin/php "$rel/admin/cli/upgrade.php" --non-interactive`) {
		t.Fatalf("upgrade command: %+v", c)
	}
}

func TestSetMaintenance(t *testing.T) {
	ctx := context.Background()
	h := remote.NewFake("")
	h.Strict = true
	h.On(`climaintenance\.html \]; then echo on`, remote.Result{Stdout: []byte("off\n")})
	h.On(`maintenance\.php" --enable`, remote.Result{})
	if err := SetMaintenance(ctx, h, true); err != nil {
		t.Fatal(err)
	}
	// Already off: maintenance.php is not run.
	if err := SetMaintenance(ctx, h, false); err != nil || containsCmd(h.Commands(), "--disable") {
		t.Fatalf("disable when off: %v %v", err, h.Commands())
	}
	if h.Calls()[0].AsUser != WebUser {
		t.Fatal("the maintenance file is not read as the web server's user (root may be squashed on NFS)")
	}
}

func TestVersion(t *testing.T) {
	ctx := context.Background()
	setup := func(dbVersion, codeVersion string, pendingExit int) *remote.Fake {
		h := remote.NewFake("")
		h.Strict = true
		h.On(`^cd / && exec /usr/bin/php$`, probeAnswer(`{"tables":12,"config":true,"version":"`+dbVersion+`","release":"4.5"}`))
		h.On(`^readlink /var/www/moodle/current$`, remote.Result{Stdout: []byte("releases/tar-0123456789abcdef\n")})
		h.On(`(?s)-n -r .*version\.php`, remote.Result{Stdout: []byte(`{"version":"` + codeVersion + `","release":"4.5+","branch":"405","maturity":"MATURITY_STABLE"}`)})
		h.On(`upgrade\.php" --is-pending`, remote.Result{ExitCode: pendingExit})
		return h
	}
	v, err := Version(ctx, setup("2024100700.00", "2024100700.00", 0))
	if err != nil || !v.Installed || v.UpgradePending || v.Downgrade || v.Code.Version != "2024100700.00" {
		t.Fatalf("up to date: %+v %v", v, err)
	}
	v, err = Version(ctx, setup("2024100700.00", "2024100700.01", 2))
	if err != nil || !v.UpgradePending {
		t.Fatalf("pending: %+v %v", v, err)
	}
	h := setup("2024100700.01", "2024100700.00", 1)
	v, err = Version(ctx, h)
	if err != nil || !v.Downgrade || containsCmd(h.Commands(), "--is-pending") {
		t.Fatalf("downgrade: %+v %v", v, err)
	}
}
