// Package tfmirror lays out a Terraform filesystem mirror (our provider and the peer providers built by
// `make tools`) and the CLI configuration that points at it, so `terraform init/plan/apply` and OpenTofu run
// with no registry: the registries cannot be reached from our build machines.
package tfmirror

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// Provider is one provider binary to publish in the mirror.
type Provider struct {
	Namespace string // "mohd-dev"
	Type      string // "moodle"
	Version   string // "0.1.0"
	Binary    string // path of the built provider
}

// Hosts are the registry hosts a provider is published under: Terraform's and OpenTofu's.
var Hosts = []string{"registry.terraform.io", "registry.opentofu.org"}

// Write publishes providers under dir in the unpacked layout
// (HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/terraform-provider-TYPE_vVERSION) and writes a CLI configuration that
// installs only from it. It returns the configuration's path.
func Write(dir string, providers ...Provider) (string, error) {
	platform := runtime.GOOS + "_" + runtime.GOARCH
	for _, p := range providers {
		for _, host := range Hosts {
			target := filepath.Join(dir, host, p.Namespace, p.Type, p.Version, platform,
				fmt.Sprintf("terraform-provider-%s_v%s", p.Type, p.Version))
			if err := copyExecutable(p.Binary, target); err != nil {
				return "", fmt.Errorf("mirror %s/%s %s: %w", p.Namespace, p.Type, p.Version, err)
			}
		}
	}
	cfg := filepath.Join(dir, "terraform.rc")
	content := fmt.Sprintf(`# Written by MOHD's tfmirror: providers come from this filesystem mirror only.
provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.terraform.io/*/*", "registry.opentofu.org/*/*"]
  }
}
`, dir)
	if err := os.WriteFile(cfg, []byte(content), 0o644); err != nil { //nolint:gosec // a CLI config holds no secret
		return "", err
	}
	return cfg, nil
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src) //nolint:gosec // a path we built
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil { //nolint:gosec // a mirror is world-readable
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755) //nolint:gosec // providers are executables
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
