package tfmirror_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mohd-dev/mohd/internal/repo"
	"github.com/mohd-dev/mohd/internal/tfmirror"
)

// TestAccInitFromMirror runs the real `terraform init` and `validate` (and OpenTofu's) on a configuration
// that requires our provider, with no registry: only the mirror this test writes.
func TestAccInitFromMirror(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1")
	}
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "terraform-provider-moodle")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg, err := tfmirror.Write(filepath.Join(dir, "mirror"), tfmirror.Provider{Namespace: "mohd-dev", Type: "moodle", Version: "0.1.0", Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	for _, cli := range []string{"terraform", "terraform-1.5.7", "tofu"} {
		t.Run(cli, func(t *testing.T) {
			path, err := repo.Tool(cli)
			if err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			main := `terraform {
  required_providers {
    moodle = {
      source  = "mohd-dev/moodle"
      version = "0.1.0"
    }
  }
}

provider "moodle" {}

data "moodle_host" "db" {
  host     = "10.20.0.21"
  host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcLiPSRiUfR0/gAH1VHK2iBPMDp3hI3qVYnZ7FdBT9v"
}
`
			if err := os.WriteFile(filepath.Join(work, "main.tf"), []byte(main), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"init", "-input=false", "-no-color"}, {"validate", "-no-color"}} {
				cmd := exec.Command(path, args...)
				cmd.Dir = work
				cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+cfg, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1")
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", cli, strings.Join(args, " "), err, out)
				}
			}
			lock, err := os.ReadFile(filepath.Join(work, ".terraform.lock.hcl"))
			if err != nil || !strings.Contains(string(lock), `provider "registry.`) || !strings.Contains(string(lock), `/mohd-dev/moodle"`) {
				t.Fatalf("the lock file does not record our provider from the mirror: %v\n%s", err, lock)
			}
		})
	}
}
