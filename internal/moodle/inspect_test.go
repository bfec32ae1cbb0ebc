package moodle

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mohd-dev/mohd/internal/remote"
)

func TestEnsureCron(t *testing.T) {
	ctx := context.Background()
	h := remote.NewFake("")
	enabled, active := false, false
	h.OnFunc(`systemctl`, func(c remote.Cmd) (remote.Result, error) {
		out := ""
		if strings.Contains(c.Command, "daemon-reload") || !enabled || !active {
			out = "changed\n"
		}
		enabled, active = true, true
		return remote.Result{Stdout: []byte(out)}, nil
	})
	changed, err := EnsureCron(ctx, h)
	if err != nil || !changed {
		t.Fatalf("first: %v %v", changed, err)
	}
	svc, _ := h.File("/etc/systemd/system/" + CronService)
	for _, want := range []string{"User=www-data", "ExecStart=/usr/bin/php /var/www/moodle/current/admin/cli/cron.php", "Type=oneshot",
		"ConditionPathExists=/etc/moodle/config.php"} {
		if !strings.Contains(string(svc.Content), want) {
			t.Errorf("the cron service lacks %q", want)
		}
	}
	if !containsCmd(h.Commands(), "daemon-reload") {
		t.Fatal("new units without daemon-reload")
	}
	n := len(h.Commands())
	changed, err = EnsureCron(ctx, h)
	if err != nil || changed || containsCmd(h.Commands()[n:], "daemon-reload") {
		t.Fatalf("second: changed=%v err=%v %v", changed, err, h.Commands()[n:])
	}
}

func TestStopCron(t *testing.T) {
	h := remote.NewFake("")
	h.On(`is-enabled`, remote.Result{Stdout: []byte("changed\n")}).Times(1)
	h.On(`is-enabled`, remote.Result{})
	if changed, err := StopCron(context.Background(), h); err != nil || !changed {
		t.Fatalf("first: %v %v", changed, err)
	}
	if changed, err := StopCron(context.Background(), h); err != nil || changed {
		t.Fatalf("second: %v %v", changed, err)
	}
	if !strings.Contains(h.Commands()[0], "systemctl disable --now --quiet "+CronTimer) {
		t.Fatalf("command: %s", h.Commands()[0])
	}
}

// inspectNode answers Inspect's probe like a node in the given state.
func inspectNode(configSum, configStat, shimSum, cronEnabled string, maintenance bool) *remote.Fake {
	h := remote.NewFake("")
	h.Strict = true
	cron := cronFiles()
	out := fmt.Sprintf("config_sha=%s\nconfig_stat=%s\ncurrent=releases/tar-0123456789abcdef\nprevious=releases/placeholder\n"+
		"releases=placeholder tar-0123456789abcdef \nshim_sha=%s\nservice_sha=%s\ntimer_sha=%s\ncron_enabled=%s\ncron_active=active\n"+
		"cron_result=success\ncron_last=Thu 2026-01-01 10:00:01 UTC\n",
		configSum, configStat, shimSum, sha256hex(cron[0].Content), sha256hex(cron[1].Content), cronEnabled)
	h.On(`^sum\(\)`, remote.Result{Stdout: []byte(out)})
	h.On(`(?s)-n -r .*version\.php`, remote.Result{Stdout: []byte(`{"version":"2024100700.00","release":"4.5","branch":"405","maturity":"MATURITY_STABLE"}`)})
	m := "off"
	if maintenance {
		m = "on"
	}
	h.On(`climaintenance\.html`, remote.Result{Stdout: []byte(m + "\n")})
	return h
}

func TestInspect(t *testing.T) {
	ctx := context.Background()
	_, site, err := RenderConfig(testSite())
	if err != nil {
		t.Fatal(err)
	}
	good := sha256hex(site)
	st, err := Inspect(ctx, inspectNode(good, "root:www-data 640", sha256hex(shimPHP), "enabled", true), testSite())
	if err != nil {
		t.Fatal(err)
	}
	if !st.InSync() || !st.ConfigInSync || !st.CronInSync || !st.CronEnabled || !st.CronActive || !st.Maintenance ||
		st.Release.ID != "tar-0123456789abcdef" || st.Release.Version != "2024100700.00" || st.Previous != Placeholder ||
		strings.Join(st.Releases, " ") != "placeholder tar-0123456789abcdef" || st.CronLastResult != "success" {
		t.Fatalf("a node in sync: %+v", st)
	}

	for name, c := range map[string]struct {
		h    *remote.Fake
		want string
	}{
		"hand-edited SiteConfig": {inspectNode(strings.Repeat("0", 64), "root:www-data 640", sha256hex(shimPHP), "enabled", false), "differs"},
		"SiteConfig missing":     {inspectNode("", "", sha256hex(shimPHP), "enabled", false), "missing"},
		"SiteConfig readable":    {inspectNode(good, "root:root 644", sha256hex(shimPHP), "enabled", false), "want root:www-data 640"},
		"shim replaced":          {inspectNode(good, "root:www-data 640", "x", "enabled", false), "not MOHD's shim"},
		"cron disabled":          {inspectNode(good, "root:www-data 640", sha256hex(shimPHP), "disabled", false), "is disabled and active"},
	} {
		st, err := Inspect(ctx, c.h, testSite())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.InSync() || !strings.Contains(strings.Join(st.Diffs, "\n"), c.want) {
			t.Errorf("%s: drift %q, want %q", name, st.Diffs, c.want)
		}
	}
	// Inspect only reads: no upload, no lock, no command that changes anything.
	h := inspectNode(good, "root:www-data 640", sha256hex(shimPHP), "enabled", false)
	if _, err := Inspect(ctx, h, testSite()); err != nil {
		t.Fatal(err)
	}
	if len(h.Uploads()) != 0 || len(h.LocksTaken()) != 0 {
		t.Fatal("Inspect uploaded or locked")
	}
	for _, c := range h.Commands() {
		for _, verb := range []string{"rm ", "mv ", "ln ", "systemctl start", "systemctl enable", "systemctl reload", "chown", "chmod", "mkdir"} {
			if strings.Contains(c, verb) {
				t.Errorf("Inspect ran %q", c)
			}
		}
	}
}
