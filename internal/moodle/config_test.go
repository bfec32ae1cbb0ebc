package moodle

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mohd-dev/mohd/internal/remote"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testSite is a site with every kind of setting: replicas with and without a port, trusted proxies,
// secrets with quotes and backslashes, core and plugin settings of each type.
func testSite() Site {
	return Site{
		WWWRoot: "https://moodle.example.edu",
		DB: DB{Host: "10.20.0.31", Name: "moodle", User: "moodle", Password: `p'a\ss"$x{y}`,
			ReadReplicas: []string{"10.20.0.32", "db3.example.edu:3307"}},
		Redis:           Redis{Host: "10.20.0.41", Password: `r3d'is\`, Database: 2, Prefix: "mdl_sess_", LockRetry: 150},
		SSLProxy:        true,
		TrustedProxies:  []string{"10.20.0.11", "10.20.0.0/24"},
		LogLifetimeDays: 365,
		Settings: map[string]string{
			"theme":                       "boost",
			"sessiontimeout":              "7200",
			"enable_read_only_sessions":   "true",
			"noemailever":                 "false",
			"supportname":                 "IT's help desk",
			"pathtophp":                   "0755", // leading zero: a string, not an octal number
			"auth_ldap/host_url":          "ldaps://ldap.example.edu",
			"logstore_standard/logguests": "0",
		},
	}
}

func TestRenderConfigGolden(t *testing.T) {
	shim, site, err := RenderConfig(testSite())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "site-config.golden.php", site)
	golden(t, "shim.golden.php", shim)
	if bytes.Contains(shim, []byte("p'a")) || bytes.Contains(shim, []byte("10.20.0.31")) {
		t.Fatal("the shim holds site data")
	}
	if !strings.HasSuffix(string(site), "];\n") || strings.Contains(string(site), "?>") {
		t.Fatal("SiteConfig must end without a closing PHP tag (no stray output)")
	}
}

func TestRenderConfigMinimal(t *testing.T) {
	_, site, err := RenderConfig(Site{
		WWWRoot: "http://10.0.0.5",
		DB:      DB{Host: "db1", Name: "moodle", User: "moodle", Password: "x"},
		Redis:   Redis{Host: "redis1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "site-config-minimal.golden.php", site)
	for _, absent := range []string{"readonly", "sslproxy", "reverseproxyignore", "session_redis_auth", "session_redis_prefix", "acquire_lock_retry"} {
		if strings.Contains(string(site), absent) {
			t.Errorf("a minimal site's configuration mentions %s", absent)
		}
	}
}

func TestRenderConfigDeterministic(t *testing.T) {
	_, first, err := RenderConfig(testSite())
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		_, again, err := RenderConfig(testSite())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatal("RenderConfig gave two different files for one site")
		}
	}
}

func TestRenderConfigRefusesInvalidSites(t *testing.T) {
	base := testSite()
	cases := map[string]func(s *Site){
		"http wwwroot with sslproxy": func(s *Site) { s.WWWRoot = "http://moodle.example.edu" },
		"trailing slash":             func(s *Site) { s.WWWRoot = "https://moodle.example.edu/" },
		"quote in wwwroot":           func(s *Site) { s.WWWRoot = "https://moodle.example.edu/a'b" },
		"no db host":                 func(s *Site) { s.DB.Host = "" },
		"bad db name":                func(s *Site) { s.DB.Name = "moo-dle" },
		"empty db password":          func(s *Site) { s.DB.Password = "" },
		"long prefix":                func(s *Site) { s.DB.Prefix = "abcdefghijk_" },
		"bad replica":                func(s *Site) { s.DB.ReadReplicas = []string{"db 2"} },
		"duplicate replica":          func(s *Site) { s.DB.ReadReplicas = []string{"db2", "db2"} },
		"redis database":             func(s *Site) { s.Redis.Database = 16 },
		"redis prefix":               func(s *Site) { s.Redis.Prefix = "a'b" },
		"trusted proxy":              func(s *Site) { s.TrustedProxies = []string{"lb1"} },
		"negative log lifetime":      func(s *Site) { s.LogLifetimeDays = -1 },
		"unknown setting":            func(s *Site) { s.Settings = map[string]string{"session_redis_lock_retry": "100"} },
		"managed setting":            func(s *Site) { s.Settings = map[string]string{"dbhost": "x"} },
		"injection in a setting key": func(s *Site) { s.Settings = map[string]string{"passwordsaltalt1 = 1; system('id'); $x": "1"} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			s := base
			s.DB.ReadReplicas = append([]string(nil), base.DB.ReadReplicas...)
			mutate(&s)
			if _, _, err := RenderConfig(s); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestPHPString(t *testing.T) {
	for in, want := range map[string]string{
		``:              `''`,
		`plain`:         `'plain'`,
		`it's`:          `'it\'s'`,
		`back\slash`:    `'back\\slash'`,
		`\'`:            `'\\\''`,
		`$var {$x} "q"`: `'$var {$x} "q"'`,
	} {
		if got := phpString(in); got != want {
			t.Errorf("phpString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestPHPValue(t *testing.T) {
	for in, want := range map[string]string{
		"true": "true", "false": "false", "0": "0", "-12": "-12", "365": "365",
		"0755": "'0755'", "1e3": "'1e3'", "True": "'True'", "": "''", "12345678901234567": "'12345678901234567'",
	} {
		if got := phpValue(in); got != want {
			t.Errorf("phpValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestWriteConfig(t *testing.T) {
	ctx := context.Background()
	h := remote.NewFake("")
	h.On(`^d=/etc/moodle`, remote.Result{Stdout: []byte("changed\n")}).Times(1)
	changed, err := WriteConfig(ctx, h, testSite())
	if err != nil || !changed {
		t.Fatalf("first write: changed=%v err=%v", changed, err)
	}
	f, ok := h.File(SiteConfig)
	if !ok || f.Mode != 0o640 || f.Owner != "root" || f.Group != "www-data" {
		t.Fatalf("SiteConfig uploaded as %+v", f)
	}
	if !containsCmd(h.Commands(), "systemctl reload php8.2-fpm") {
		t.Fatal("PHP-FPM was not reloaded after SiteConfig changed")
	}
	for _, c := range h.Calls() {
		if strings.Contains(c.Command, testSite().DB.Password) {
			t.Fatalf("a command holds the database password: %s", c.Command)
		}
	}

	n := len(h.Commands())
	changed, err = WriteConfig(ctx, h, testSite())
	if err != nil || changed {
		t.Fatalf("second write: changed=%v err=%v", changed, err)
	}
	if containsCmd(h.Commands()[n:], "reload") {
		t.Fatal("PHP-FPM reloaded although nothing changed")
	}
}

func containsCmd(cmds []string, sub string) bool {
	for _, c := range cmds {
		if strings.Contains(c, sub) {
			return true
		}
	}
	return false
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the output (go test -update rewrites it after review):\n--- got\n%s", p, got)
	}
}
