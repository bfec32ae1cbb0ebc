package provider_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"

	"github.com/mohd-dev/mohd/internal/repo"
	"github.com/mohd-dev/mohd/provider"
)

var protoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"moodle": providerserver.NewProtocol6WithError(provider.New("test")()),
}

// TestMain makes acceptance tests hermetic: the CLI config is a file this run creates (machines may point
// TF_CLI_CONFIG_FILE at a missing file, which breaks OpenTofu's version parsing), and the Terraform CLI is
// the pinned one unless TF_ACC_TERRAFORM_PATH names another (the compatibility run does).
func TestMain(m *testing.M) {
	if os.Getenv("TF_ACC") != "" {
		dir, err := os.MkdirTemp("", "mohd-tfcli-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cfg := filepath.Join(dir, "terraform.rc")
		if err := os.WriteFile(cfg, []byte("# written by the provider tests; no registry is reached\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = os.Setenv("TF_CLI_CONFIG_FILE", cfg)
		_ = os.Setenv("CHECKPOINT_DISABLE", "1")
		if os.Getenv("TF_ACC_TERRAFORM_PATH") == "" {
			tf, err := repo.Tool("terraform")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			_ = os.Setenv("TF_ACC_TERRAFORM_PATH", tf)
		}
		code := m.Run()
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}
