package role

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/mohd-dev/mohd/internal/roles"
	"github.com/mohd-dev/mohd/packer/version"
)

// registeredRole is a role of the library: redis is the first one it provides.
const registeredRole = "redis"

func validRaw() map[string]any {
	return map[string]any{"role": registeredRole, "cluster_cidr": "10.20.0.0/24"}
}

// knownRoles is how the error messages list the library's roles.
func knownRoles() string { return fmt.Sprint(roles.Names()) }

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
	if c.Role != registeredRole || c.ClusterCIDR != "10.20.0.0/24" {
		t.Errorf("role, cluster_cidr = %q, %q", c.Role, c.ClusterCIDR)
	}
	if c.Hardening != "baseline" {
		t.Errorf("hardening defaults to %q, want baseline", c.Hardening)
	}
	p2 := c.params()
	if p2.ClusterCIDR != c.ClusterCIDR || p2.Hardening != "baseline" || p2.PluginVersion != version.PluginVersion.String() {
		t.Errorf("role library parameters %+v", p2)
	}
	if len(c.ExtraPackages) != 0 || c.MoodleVersion != "" {
		t.Errorf("unexpected extra_packages %q or moodle_version %q", c.ExtraPackages, c.MoodleVersion)
	}
}

// Prepare accepts exactly the roles the library provides (the others land in it one by one).
func TestPrepareAcceptsEveryRegisteredRole(t *testing.T) {
	if len(roles.Names()) == 0 {
		t.Fatal("the role library registers no role")
	}
	for _, role := range roles.Names() {
		raw := validRaw()
		raw["role"] = role
		if _, err := prepare(t, raw); err != nil {
			t.Errorf("role %q: %v", role, err)
		}
	}
}

func TestPrepareAcceptsFullConfig(t *testing.T) {
	raw := map[string]any{
		"role":           registeredRole,
		"cluster_cidr":   "fd00:10::/64",
		"hardening":      "strict",
		"extra_packages": []string{"curl", "php8.2-redis", "libstdc++6", "g++"},
	}
	p, err := prepare(t, raw)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if p.config.Hardening != "strict" || p.config.ClusterCIDR != "fd00:10::/64" {
		t.Errorf("config not decoded: %+v", p.config)
	}
	if got := strings.Join(p.config.ExtraPackages, ","); got != "curl,php8.2-redis,libstdc++6,g++" {
		t.Errorf("extra_packages = %s", got)
	}
	if got := p.config.params(); got.Hardening != "strict" || strings.Join(got.ExtraPackages, ",") != "curl,php8.2-redis,libstdc++6,g++" {
		t.Errorf("role library parameters %+v", got)
	}
}

func TestPrepareAcceptsMoodleVersionsOnWeb(t *testing.T) {
	if _, err := roles.Get("web"); err != nil {
		t.Skip("the role library does not provide the web role yet")
	}
	for _, v := range []string{"4.5", "4.5.1", "v4.5.1", "MOODLE_405_STABLE", "0123abcd", "feature/x-1"} {
		raw := validRaw()
		raw["role"], raw["moodle_version"] = "web", v
		p, err := prepare(t, raw)
		if err != nil {
			t.Errorf("moodle_version %q: %v", v, err)
		} else if p.config.params().MoodleVersion != v {
			t.Errorf("moodle_version %q not passed to the role library", v)
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

type prepareCase struct {
	name string
	set  map[string]any
	want string
}

func TestPrepareErrors(t *testing.T) {
	cases := []prepareCase{
		{"missing role", map[string]any{"role": ""},
			"role is required: set it to one of " + strings.Join(roles.Names(), ", ")},
		{"unknown role", map[string]any{"role": "mail"},
			`role: unknown role "mail" (known: ` + knownRoles() + `)`},
		{"role is case-sensitive", map[string]any{"role": "Redis"},
			`role: unknown role "Redis" (known: ` + knownRoles() + `)`},
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
		{"moodle_version on redis", map[string]any{"moodle_version": "4.5"},
			`moodle_version is only allowed for role "web" (role is "redis")`},
		// The value is not judged on another role: one error, not two.
		{"bad moodle_version on redis", map[string]any{"moodle_version": "a..b"},
			`moodle_version is only allowed for role "web" (role is "redis")`},
	}
	if _, err := roles.Get("web"); err == nil {
		cases = append(cases,
			prepareCase{"moodle_version bad ref", map[string]any{"role": "web", "moodle_version": "4.5; rm -rf /"},
				`moodle_version: "4.5; rm -rf /" is neither a Moodle release (for example 4.5) nor a git ref`},
			prepareCase{"moodle_version dotdot", map[string]any{"role": "web", "moodle_version": "a..b"},
				`moodle_version: "a..b" is neither`},
		)
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
	})
	msgs := errorsOf(t, err)
	want := []string{
		`role: unknown role "mail"`,
		`cluster_cidr: "10.0.0.300/24"`,
		`hardening: "none"`,
		`extra_packages[1]: "Bad"`,
		`extra_packages[2]: "x"`,
		`moodle_version is only allowed for role "web" (role is "mail")`,
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
	for _, k := range []string{"role", "cluster_cidr", "hardening", "extra_packages", "moodle_version"} {
		if _, ok := spec[k]; !ok {
			t.Errorf("ConfigSpec lacks %q: is config.hcl2spec.go current? (go generate ./packer/...)", k)
		}
	}
	// The manifest's place is fixed (imagemanifest.Path): the provider reads it there.
	if _, ok := spec["manifest_path"]; ok {
		t.Error("ConfigSpec still has manifest_path")
	}
}

func TestPrepareRejectsManifestPath(t *testing.T) {
	raw := validRaw()
	raw["manifest_path"] = "/opt/m.json"
	if _, err := prepare(t, raw); err == nil || !strings.Contains(err.Error(), "manifest_path") {
		t.Fatalf("Prepare with manifest_path returned %v, want an error naming it", err)
	}
}
