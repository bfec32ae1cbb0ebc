package demo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/repo"
)

// testWriter lets Terraform's streamed output and progress lines share the test log.
type testWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			break
		}
		w.t.Log(strings.TrimRight(line, "\n"))
	}
	return len(p), nil
}

// TestDemo runs the README's `make demo` end to end on a lab of its own (its state directory and a copy of
// examples/local in temporary directories, so a running demo is left alone): up, the login page and an
// admin login through the VIP, a second up that reuses the hosts and changes nothing, destroy.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test: skipped under -short (needs the Docker engine, the role images and Terraform)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	tf, err := repo.Tool("terraform")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	provider := filepath.Join(tmp, "terraform-provider-moodle")
	build := exec.CommandContext(ctx, "go", "build", "-o", provider, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the provider: %v\n%s", err, out)
	}
	module := filepath.Join(tmp, "local")
	copyModule(t, filepath.Join(root, "examples", "local"), module, root)

	opts := Options{Root: root, Dir: filepath.Join(tmp, ".demo"), Module: module, Provider: provider, Terraform: tf,
		MoodleSource: os.Getenv("MOODLE_SOURCE"), Out: &testWriter{t: t}, LabName: "mohd-test-demo"}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(opts.Dir, "state.json")); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if err := Destroy(ctx, opts); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})

	site, err := Up(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(site.Summary())
	st := site.State
	if site.Reused || !site.Changed || len(st.Hosts) != len(demoHosts) {
		t.Fatalf("first up: reused=%v changed=%v hosts=%d", site.Reused, site.Changed, len(st.Hosts))
	}
	for _, f := range []string{filepath.Join(module, "terraform.tfvars"), opts.AdminPasswordFile(), filepath.Join(opts.Dir, "secrets.json"), st.KeyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600 (it holds secrets)", f, fi.Mode().Perm())
		}
	}
	// The VIP is on exactly one front end, and the site answers there with a working admin login.
	holders := 0
	for _, n := range []string{"lb1", "lb2"} {
		h, _ := st.Host(n)
		out, err := execRoot(ctx, h.Container, "ip -4 -o addr show")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, " "+st.VIP+" ") {
			holders++
		}
	}
	if holders != 1 {
		t.Errorf("the VIP %s is held by %d front ends, want 1", st.VIP, holders)
	}
	// Prometheus scrapes every member's exporters, and all of them answer.
	if strings.Contains(site.Scrapes, "DOWN") || strings.Contains(site.Scrapes, "no targets") || !strings.Contains(site.Scrapes, "node 9/9 up") {
		t.Errorf("monitoring: Prometheus %s", site.Scrapes)
	}
	pw, err := os.ReadFile(opts.AdminPasswordFile())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Login(ctx, st.URL(), "admin", strings.TrimSpace(string(pw))); err != nil {
		t.Errorf("admin login through the VIP: %v", err)
	}

	// A second `make demo`: the same hosts, an apply that changes nothing.
	again, err := Up(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Reused || again.Changed || again.State.LabID != st.LabID {
		t.Errorf("second up: reused=%v changed=%v lab %s (first %s)", again.Reused, again.Changed, again.State.LabID, st.LabID)
	}

	if err := Destroy(ctx, opts); err != nil {
		t.Fatal(err)
	}
	for _, what := range [][]string{
		{"ps", "-aq", "--filter", "label=" + lab.Label + "=" + st.LabID},
		{"volume", "ls", "-q", "--filter", "label=" + lab.Label + "=" + st.LabID},
		{"network", "ls", "-q", "--filter", "name=^" + st.Network + "$"},
	} {
		if out, err := docker(ctx, what...); err != nil || out != "" {
			t.Errorf("docker %s after destroy: %q %v", strings.Join(what, " "), out, err)
		}
	}
	for _, f := range []string{opts.Dir, filepath.Join(module, "terraform.tfvars"), filepath.Join(module, "terraform.tfstate"), st.SeedDir} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s is still there after destroy", f)
		}
	}
}

// copyModule copies the root module's .tf files, pointing its module source at the checkout's modules.
func copyModule(t *testing.T, from, to, root string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(from, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files in %s: %v", from, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f) //nolint:gosec // the repository's own files
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte(`"../../modules/`), []byte(`"`+filepath.Join(root, "modules")+`/`))
		if err := os.WriteFile(filepath.Join(to, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
