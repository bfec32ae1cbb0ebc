package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/acctest"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/roles"
	"github.com/mohd-dev/mohd/packer/version"
)

// TestAccTemplates drives the real Packer CLI offline: it builds this plugin, installs it and the docker
// plugin with `packer plugins install --path` into a temporary PACKER_PLUGIN_PATH, then runs `packer init` and
// `packer validate` on the docker template (once per role, and once with bad values, which our Prepare must
// reject), `packer validate -syntax-only` on the vSphere and OpenStack templates (their plugins need not be
// here) and `packer fmt -check` on all three.
//
//	PACKER_ACC=1 go test -count=1 -run TestAccTemplates -v ./packer
//
// Packer is PACKER_PATH, else tools/bin/packer; the docker plugin PACKER_PLUGIN_DOCKER_PATH, else
// tools/bin/packer-plugin-docker (scripts/tools.sh packer packer-plugin-docker builds both).
func TestAccTemplates(t *testing.T) {
	if os.Getenv(acctest.TestEnvVar) == "" {
		t.Skipf("Acceptance tests skipped unless env '%s' set", acctest.TestEnvVar)
	}
	root := repoRoot(t)
	packer := toolPath(t, root, "PACKER_PATH", "packer")
	dockerPlugin := toolPath(t, root, "PACKER_PLUGIN_DOCKER_PATH", "packer-plugin-docker")

	tmp := t.TempDir()
	env := lab.PackerEnv(tmp)

	// A release build (no pre-release suffix): `packer init` only stays offline when the installed version
	// satisfies the template's constraint, and a -dev version makes it look for a release online.
	plugin := filepath.Join(tmp, "packer-plugin-moodle")
	build := exec.Command("go", "build", "-ldflags", "-X github.com/mohd-dev/mohd/packer/version.VersionPrerelease=", "-o", plugin, "./packer")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// packer-sdc plugin-check (a release's sanity check) when packer-sdc is at hand.
	if sdc, err := exec.LookPath(filepath.Join(root, "tools", "bin", "packer-sdc")); err == nil {
		mustRun(t, env, tmp, sdc, "plugin-check", filepath.Base(plugin))
	} else {
		t.Log("packer-sdc not in tools/bin: skipping packer-sdc plugin-check")
	}

	mustRun(t, env, root, packer, "plugins", "install", "--path", plugin, "github.com/mohd-dev/moodle")
	mustRun(t, env, root, packer, "plugins", "install", "--path", dockerPlugin, "github.com/hashicorp/docker")
	installed := mustRun(t, env, root, packer, "plugins", "installed")
	if want := "github.com/mohd-dev/moodle/packer-plugin-moodle_v" + version.Version + "_x5.0_"; !strings.Contains(installed, want) {
		t.Fatalf("`packer plugins installed` does not list %s*:\n%s", want, installed)
	}

	templates := filepath.Join(root, "packer", "templates")
	docker := filepath.Join(tmp, "docker")
	copyTemplate(t, filepath.Join(templates, "docker", "moodle-role.pkr.hcl"), docker, nil)
	mustRun(t, env, docker, packer, "init", ".")
	for _, r := range roles.Names() {
		mustRun(t, env, docker, packer, "validate", "-var", "role="+r, "-var", "cluster_cidr=10.20.0.0/24", ".")
	}

	// Bad values in the provisioner block: Packer must fail with every message of our Prepare.
	bad := filepath.Join(tmp, "docker-bad")
	copyTemplate(t, filepath.Join(templates, "docker", "moodle-role.pkr.hcl"), bad, map[string]string{
		"role         = var.role":         `role         = "bogus"`,
		"cluster_cidr = var.cluster_cidr": `cluster_cidr = "10.20.0.7/24"` + "\n    hardening = \"paranoid\"",
	})
	out, err := run(env, bad, packer, "validate", "-var", "role=web", ".")
	if err == nil {
		t.Fatalf("packer validate accepted role \"bogus\":\n%s", out)
	}
	flat := strings.Join(strings.Fields(out), " ") // Packer wraps long error lines
	for _, want := range []string{
		`role: unknown role "bogus" (known: ` + fmt.Sprint(roles.Names()) + `)`,
		`cluster_cidr: "10.20.0.7/24" has host bits set; use its network address 10.20.0.0/24`,
		`hardening: "paranoid" is not a hardening level; allowed values: baseline, strict`,
		`3 error(s) occurred`,
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("packer validate output lacks %q:\n%s", want, out)
		}
	}

	// The vSphere and OpenStack templates: syntax only (their plugins are not installed here).
	for _, p := range []string{"vsphere", "openstack"} {
		mustRun(t, env, root, packer, "validate", "-syntax-only", filepath.Join(templates, p))
	}
	mustRun(t, env, root, packer, "fmt", "-check", "-recursive", templates)
}

// repoRoot walks up from the working directory to the directory holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// toolPath returns $envVar, or tools/bin/name under the repository's root; it fails the test when neither is
// an executable file.
func toolPath(t *testing.T, root, envVar, name string) string {
	t.Helper()
	p := os.Getenv(envVar)
	if p == "" {
		p = filepath.Join(root, "tools", "bin", name)
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s not found at %s: set %s, or build it with scripts/tools.sh %s", name, p, envVar, name)
	}
	return p
}

func run(env []string, dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Dir = env, dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustRun(t *testing.T, env []string, dir, name string, args ...string) string {
	t.Helper()
	out, err := run(env, dir, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s:\n%s", filepath.Base(name), strings.Join(args, " "), out)
	return out
}

// copyTemplate copies a template into dir, replacing each key of replace (which must occur) by its value.
func copyTemplate(t *testing.T, src, dir string, replace map[string]string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for old, repl := range replace {
		if !strings.Contains(s, old) {
			t.Fatalf("%s does not contain %q", src, old)
		}
		s = strings.Replace(s, old, repl, 1)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
