package moodle

import (
	"strings"
	"testing"
)

func TestKnownSetting(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
		msg  []string // substrings of the error
	}{
		{name: "theme", ok: true},
		{name: "sessiontimeout", ok: true},
		{name: "enable_read_only_sessions", ok: true},
		{name: "session_redis_acquire_lock_warn", ok: true},
		{name: "passwordsaltalt3", ok: true},
		{name: "auth_ldap/host_url", ok: true},
		{name: "logstore_standard/logguests", ok: true},
		{name: "tool_mohdfixture/x1", ok: true},

		// The classic mistake of public templates: the name Moodle never reads.
		{name: "session_redis_lock_retry", msg: []string{"unknown", "did you mean session_redis_acquire_lock_retry", "never reads"}},
		{name: "session_redis_password", msg: []string{"did you mean session_redis_auth"}},
		// Misspellings get the closest name.
		{name: "sesiontimeout", msg: []string{"did you mean sessiontimeout?"}},
		{name: "enable_readonly_sessions", msg: []string{"did you mean enable_read_only_sessions?"}},
		{name: "session_redis_lock_expires", msg: []string{"did you mean session_redis_lock_expire?", "set by MOHD"}},
		{name: "totally_unrelated_thing", msg: []string{"unknown", "silently ignores"}},

		// What MOHD writes itself.
		{name: "dbhost", msg: []string{"set by MOHD from the database settings"}},
		{name: "wwwroot", msg: []string{"set by MOHD from the site's wwwroot"}},
		{name: "dataroot", msg: []string{"NFS", DataRoot}},
		{name: "session_redis_acquire_lock_retry", msg: []string{"Redis settings (lock retry)"}},
		{name: "lock_factory", msg: []string{"mysql_lock_factory"}},
		{name: "forced_plugin_settings", msg: []string{"component/name"}},
		{name: "logstore_standard/loglifetime", msg: []string{"log lifetime"}},
		{name: "admin", msg: []string{"cannot be renamed"}},
		{name: "version", msg: []string{"database"}},

		// What a string cannot express, or must not be set on a production site.
		{name: "session_redis_encrypt", msg: []string{"PHP array"}},
		{name: "behat_wwwroot", msg: []string{"test-environment"}},

		// Malformed names.
		{name: "Theme", msg: []string{"not a Moodle setting name"}},
		{name: "theme;", msg: []string{"not a Moodle setting name"}},
		{name: "core/theme", msg: []string{`use "theme"`}},
		{name: "ldap/host_url", msg: []string{"not a Moodle component name"}},
		{name: "auth_ldap/Host-URL", msg: []string{"not a Moodle setting name"}},
		{name: "", msg: []string{"not a Moodle setting name"}},
	}
	for _, c := range cases {
		err := KnownSetting(c.name)
		if c.ok {
			if err != nil {
				t.Errorf("KnownSetting(%q) = %v, want nil", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("KnownSetting(%q) accepted it", c.name)
			continue
		}
		for _, m := range c.msg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("KnownSetting(%q) = %q, want it to say %q", c.name, err, m)
			}
		}
	}
}

func TestKnownSettingsAreConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range knownSettings {
		if seen[k] {
			t.Errorf("%q is listed twice", k)
		}
		seen[k] = true
		if _, managed := managedSettings[k]; managed {
			t.Errorf("%q is both known and managed by MOHD", k)
		}
		if !settingNameRe.MatchString(k) {
			t.Errorf("%q is not a setting name", k)
		}
		if err := KnownSetting(k); err != nil {
			t.Errorf("known setting refused: %v", err)
		}
	}
	// Every setting RenderConfig writes is refused as an extra setting.
	_, site, err := RenderConfig(testSite())
	if err != nil {
		t.Fatal(err)
	}
	extra := map[string]bool{}
	for k := range testSite().Settings {
		extra[k] = true
	}
	for _, line := range strings.Split(string(site), "\n") {
		if name, ok := strings.CutPrefix(line, "$CFG->"); ok {
			name, _, _ = strings.Cut(name, " ")
			if !extra[name] && KnownSetting(name) == nil {
				t.Errorf("RenderConfig writes $CFG->%s but KnownSetting lets a site set it too", name)
			}
		}
	}
}
