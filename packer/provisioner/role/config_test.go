package role

import (
	"errors"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

func validRaw() map[string]any {
	return map[string]any{"role": "db", "cluster_cidr": "10.20.0.0/24"}
}

func prepare(t *testing.T, raw map[string]any) (*Provisioner, error) {
	t.Helper()
	var p Provisioner
	return &p, p.Prepare(raw)
}

func TestPrepareDefaults(t *testing.T) {
	p, err := prepare(t, validRaw())
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	c := p.config
	if c.Role != "db" || c.ClusterCIDR != "10.20.0.0/24" {
		t.Errorf("role, cluster_cidr = %q, %q", c.Role, c.ClusterCIDR)
	}
	if c.Hardening != "baseline" {
		t.Errorf("hardening defaults to %q, want baseline", c.Hardening)
	}
	if c.ManifestPath != "/etc/mohd/image-manifest.json" {
		t.Errorf("manifest_path defaults to %q", c.ManifestPath)
	}
	if len(c.ExtraPackages) != 0 || c.MoodleVersion != "" {
		t.Errorf("unexpected extra_packages %q or moodle_version %q", c.ExtraPackages, c.MoodleVersion)
	}
}

func TestPrepareAcceptsEveryRole(t *testing.T) {
	for _, role := range []string{"haproxy", "web", "db", "nfs", "redis", "monitoring"} {
		raw := validRaw()
		raw["role"] = role
		if _, err := prepare(t, raw); err != nil {
			t.Errorf("role %q: %v", role, err)
		}
	}
}

func TestPrepareAcceptsFullConfig(t *testing.T) {
	raw := map[string]any{
		"role":           "web",
		"cluster_cidr":   "fd00:10::/64",
		"hardening":      "strict",
		"extra_packages": []string{"curl", "php8.2-redis", "libstdc++6", "g++"},
		"moodle_version": "MOODLE_405_STABLE",
		"manifest_path":  "/opt/mohd/manifest.json",
	}
	p, err := prepare(t, raw)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if p.config.Hardening != "strict" || p.config.MoodleVersion != "MOODLE_405_STABLE" || p.config.ManifestPath != "/opt/mohd/manifest.json" {
		t.Errorf("config not decoded: %+v", p.config)
	}
	if got := strings.Join(p.config.ExtraPackages, ","); got != "curl,php8.2-redis,libstdc++6,g++" {
		t.Errorf("extra_packages = %s", got)
	}
	for _, v := range []string{"4.5", "4.5.1", "v4.5.1", "0123abcd", "feature/x-1"} {
		raw["moodle_version"] = v
		if _, err := prepare(t, raw); err != nil {
			t.Errorf("moodle_version %q: %v", v, err)
		}
	}
}

// errorsOf returns the messages of the *packersdk.MultiError Prepare returned.
func errorsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("Prepare succeeded, want errors")
	}
	var multi *packersdk.MultiError
	if !errors.As(err, &multi) {
		t.Fatalf("Prepare returned %T (%v), want *packersdk.MultiError", err, err)
	}
	var msgs []string
	for _, e := range multi.Errors {
		msgs = append(msgs, e.Error())
	}
	return msgs
}

func TestPrepareErrors(t *testing.T) {
	cases := []struct {
		name string
		set  map[string]any
		want string
	}{
		{"missing role", map[string]any{"role": ""},
			"role is required: set it to one of haproxy, web, db, nfs, redis, monitoring"},
		{"unknown role", map[string]any{"role": "mail"},
			`role: "mail" is not a MOHD role; allowed values: haproxy, web, db, nfs, redis, monitoring`},
		{"role is case-sensitive", map[string]any{"role": "Web"},
			`role: "Web" is not a MOHD role; allowed values: haproxy, web, db, nfs, redis, monitoring`},
		{"missing cluster_cidr", map[string]any{"cluster_cidr": ""},
			"cluster_cidr is required: the cluster's network in CIDR notation (for example 10.20.0.0/24)"},
		{"cluster_cidr without prefix", map[string]any{"cluster_cidr": "10.20.0.0"},
			`cluster_cidr: "10.20.0.0" is not a network in CIDR notation (for example 10.20.0.0/24)`},
		{"cluster_cidr bad prefix", map[string]any{"cluster_cidr": "10.20.0.0/33"},
			`cluster_cidr: "10.20.0.0/33" is not a network in CIDR notation`},
		{"cluster_cidr host bits", map[string]any{"cluster_cidr": "10.20.0.7/24"},
			`cluster_cidr: "10.20.0.7/24" has host bits set; use its network address 10.20.0.0/24`},
		{"hardening", map[string]any{"hardening": "paranoid"},
			`hardening: "paranoid" is not a hardening level; allowed values: baseline, strict`},
		{"package uppercase", map[string]any{"extra_packages": []string{"curl", "Vim"}},
			`extra_packages[1]: "Vim" is not a Debian package name`},
		{"package one letter", map[string]any{"extra_packages": []string{"a"}},
			`extra_packages[0]: "a" is not a Debian package name`},
		{"package with version", map[string]any{"extra_packages": []string{"curl=7.88"}},
			`extra_packages[0]: "curl=7.88" is not a Debian package name`},
		{"package with option", map[string]any{"extra_packages": []string{"-y"}},
			`extra_packages[0]: "-y" is not a Debian package name`},
		{"moodle_version on db", map[string]any{"moodle_version": "4.5"},
			`moodle_version is only allowed for role "web" (role is "db")`},
		{"moodle_version bad ref", map[string]any{"role": "web", "moodle_version": "4.5; rm -rf /"},
			`moodle_version: "4.5; rm -rf /" is neither a Moodle release (for example 4.5) nor a git ref`},
		{"moodle_version dotdot", map[string]any{"role": "web", "moodle_version": "a..b"},
			`moodle_version: "a..b" is neither`},
		{"manifest_path relative", map[string]any{"manifest_path": "etc/m.json"},
			`manifest_path: "etc/m.json" must be an absolute, clean path to a file (for example /etc/mohd/image-manifest.json)`},
		{"manifest_path unclean", map[string]any{"manifest_path": "/etc/mohd/../m.json"},
			`manifest_path: "/etc/mohd/../m.json" must be an absolute, clean path`},
		{"manifest_path dir", map[string]any{"manifest_path": "/etc/mohd/"},
			`manifest_path: "/etc/mohd/" must be an absolute, clean path`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := validRaw()
			for k, v := range tc.set {
				raw[k] = v
			}
			_, err := prepare(t, raw)
			msgs := errorsOf(t, err)
			if len(msgs) != 1 {
				t.Fatalf("got %d errors, want 1: %q", len(msgs), msgs)
			}
			if !strings.HasPrefix(msgs[0], tc.want) {
				t.Errorf("error\n  %s\nwant it to start with\n  %s", msgs[0], tc.want)
			}
		})
	}
}

func TestPrepareReportsAllErrorsAtOnce(t *testing.T) {
	_, err := prepare(t, map[string]any{
		"role":           "mail",
		"cluster_cidr":   "10.0.0.300/24",
		"hardening":      "none",
		"extra_packages": []string{"ok-pkg", "Bad", "x"},
		"moodle_version": "4.5",
		"manifest_path":  "manifest.json",
	})
	msgs := errorsOf(t, err)
	want := []string{
		`role: "mail"`,
		`cluster_cidr: "10.0.0.300/24"`,
		`hardening: "none"`,
		`extra_packages[1]: "Bad"`,
		`extra_packages[2]: "x"`,
		`moodle_version is only allowed for role "web" (role is "mail")`,
		`manifest_path: "manifest.json"`,
	}
	if len(msgs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(msgs), len(want), strings.Join(msgs, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(msgs[i], w) {
			t.Errorf("error %d is %q, want it to start with %q", i, msgs[i], w)
		}
	}
	// Packer shows the MultiError's text: every problem must be in it.
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Error() lacks %q:\n%s", w, err)
		}
	}
}

func TestPrepareRejectsUnknownKeys(t *testing.T) {
	raw := validRaw()
	raw["rolle"] = "web"
	_, err := prepare(t, raw)
	if err == nil || !strings.Contains(err.Error(), "rolle") {
		t.Fatalf("Prepare with an unknown key returned %v, want an error naming it", err)
	}
}

func TestConfigSpecHasEveryField(t *testing.T) {
	spec := new(Provisioner).ConfigSpec()
	for _, k := range []string{"role", "cluster_cidr", "hardening", "extra_packages", "moodle_version", "manifest_path"} {
		if _, ok := spec[k]; !ok {
			t.Errorf("ConfigSpec lacks %q: is config.hcl2spec.go current? (go generate ./packer/...)", k)
		}
	}
}
