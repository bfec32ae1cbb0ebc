package provider_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
)

// sshProvider renders a provider block for the lab's cloud user, with the key in a file as users keep it.
func sshProvider(t *testing.T, l *lab.Lab, extra string) string {
	t.Helper()
	key := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(key, l.PrivateKey(), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`
provider "moodle" {
  ssh {
    user        = %q
    private_key = file(%q)
    %s
  }
}
`, l.User(), key, extra)
}

func TestAccHostDataSource(t *testing.T) {
	l := labtest.New(t)
	hosts := labtest.Start(t, l, lab.HostSpec{Name: "web1", Memory: "1536m"}, lab.HostSpec{Name: "db1"})
	web, db := hosts[0], hosts[1]
	knownHosts := fmt.Sprintf("%s %s\n", db.Addr, db.HostKey)

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			// One host verified by its own host_key, the other through known_hosts.
			Config: sshProvider(t, l, fmt.Sprintf("known_hosts = %q", knownHosts)) + fmt.Sprintf(`
data "moodle_host" "web" {
  host     = %q
  host_key = %q
}
data "moodle_host" "db" {
  host = %q
}
`, web.Addr, web.HostKey, db.Addr),
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr("data.moodle_host.web", "id", web.Addr+":22"),
				resource.TestCheckResourceAttr("data.moodle_host.web", "hostname", "web1"),
				resource.TestCheckResourceAttr("data.moodle_host.web", "os_id", "debian"),
				resource.TestCheckResourceAttr("data.moodle_host.web", "os_version_id", "12"),
				resource.TestCheckResourceAttr("data.moodle_host.web", "memory_mb", "1536"),
				resource.TestCheckResourceAttr("data.moodle_host.web", "virtualization", "docker"),
				resource.TestMatchResourceAttr("data.moodle_host.web", "cpus", regexp.MustCompile(`^[1-9][0-9]*$`)),
				resource.TestCheckNoResourceAttr("data.moodle_host.web", "role"),
				resource.TestMatchResourceAttr("data.moodle_host.web", "filesystems.#", regexp.MustCompile(`^[1-9]`)),
				resource.TestCheckResourceAttr("data.moodle_host.db", "hostname", "db1"),
			),
		}},
	})
}

func TestAccHostDataSourceRefusesWrongHostKey(t *testing.T) {
	l := labtest.New(t)
	hosts := labtest.Start(t, l, lab.HostSpec{Name: "a"}, lab.HostSpec{Name: "b"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			// b's key for a's address: a man in the middle, as far as the provider can tell.
			Config: sshProvider(t, l, "") + fmt.Sprintf(`
data "moodle_host" "a" {
  host     = %q
  host_key = %q
}
`, hosts[0].Addr, hosts[1].HostKey),
			ExpectError: regexp.MustCompile(`(?i)host key`),
		}, {
			// No host key and no known_hosts: refused, never trusted on first use.
			Config: sshProvider(t, l, "") + fmt.Sprintf(`
data "moodle_host" "a" {
  host = %q
}
`, hosts[0].Addr),
			ExpectError: regexp.MustCompile(`(?i)host key`),
		}},
	})
}

func TestAccHostDataSourceUnreachable(t *testing.T) {
	l := labtest.New(t)
	h := labtest.Start(t, l, lab.HostSpec{Name: "gone"})[0]
	labtest.Exec(t, h, "true")
	if err := h.Kill(t.Context()); err != nil {
		t.Fatal(err)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: sshProvider(t, l, `timeout = "5s"`) + fmt.Sprintf(`
data "moodle_host" "gone" {
  host     = %q
  host_key = %q
}
`, h.Addr, h.HostKey),
			ExpectError: regexp.MustCompile(regexp.QuoteMeta(h.Addr)),
		}},
	})
}

// Bad input is refused at plan time, before any host is dialled (the address does not exist).
func TestAccHostDataSourceValidation(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1")
	}
	cases := map[string]struct{ config, want string }{
		"host with port":  {`host = "10.0.0.1:22"`, `has a port`},
		"host with URL":   {`host = "ssh://web1"`, `has a scheme`},
		"port range":      {"host = \"web1\"\n  port = 70000", `between 1 and 65535`},
		"bad host key":    {"host = \"web1\"\n  host_key = \"ssh-ed25519 nope\"", `authorized_keys format`},
		"bad ssh timeout": {`host = "web1"`, `must be a duration`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			provider := `provider "moodle" {}`
			if name == "bad ssh timeout" {
				provider = "provider \"moodle\" {\n  ssh {\n    timeout = \"soon\"\n  }\n}"
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: protoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config: provider + "\ndata \"moodle_host\" \"x\" {\n  " + c.config + "\n}\n",
					// Terraform wraps long messages: any run of spaces in the pattern matches any white space.
					ExpectError: regexp.MustCompile(strings.ReplaceAll(c.want, " ", `\s+`)),
				}},
			})
		})
	}
}

// A provider configured from values unknown until apply dials nothing and says why the read must wait.
func TestAccHostDataSourceUnknownProviderConfig(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1")
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `
resource "terraform_data" "user" {
  input = "debian"
}

provider "moodle" {
  ssh {
    user = terraform_data.user.output
  }
}

data "moodle_host" "x" {
  host     = "10.20.0.21"
  host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcLiPSRiUfR0/gAH1VHK2iBPMDp3hI3qVYnZ7FdBT9v"
}
`,
			ExpectError: regexp.MustCompile(`Provider configuration not known yet`),
		}},
	})
}
