package provider_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"golang.org/x/crypto/ssh"

	"github.com/mohd-dev/mohd/internal/repo"
)

// validSite is a complete, valid configuration over addresses no test dials: plan-time checks need no host.
const validSite = `
provider "moodle" {
  ssh {
    private_key = <<-EOT
KEY
EOT
  }
}

resource "moodle_cluster" "site" {
  name         = "site"
  wwwroot      = "WWWROOT"
  cluster_cidr = "10.99.0.0/24"
  frontends    = [{ address = "10.99.0.11" }]
  database = {
    primary              = { address = "10.99.0.31" }
    password             = "db-password-123"
    replication_password = "repl-password-123"
  }
  nfs   = { host = { address = "10.99.0.41" } }
  redis = {
    host     = { address = "10.99.0.51" }
    password = "redis-password-123"
  }
  code  = { path = "CODE" }
  admin = {
    password = "admin-password-123"
    email    = "admin@example.edu"
  }
  settings = SETTINGS
}

resource "moodle_backend" "web1" {
  cluster = moodle_cluster.site.spec
  name    = "web1"
  host    = { address = "BACKEND" }
  weight  = WEIGHT
  state   = "STATE"
}

resource "moodle_db_replica" "db2" {
  cluster = moodle_cluster.site.spec
  name    = "db2"
  host    = { address = "REPLICA" }
}
`

// testKey is a throwaway client key: the provider needs a way to authenticate, though no host is dialled.
var testKey = func() string {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(pem.EncodeToMemory(block)))
}()

// site renders validSite with its placeholders set to valid values, except those overridden in pairs.
func site(overrides ...string) string {
	vals := map[string]string{
		"WWWROOT": "http://moodle.example.edu", "SETTINGS": "{}", "BACKEND": "10.99.0.21", "WEIGHT": "100",
		"STATE": "active", "REPLICA": "10.99.0.32",
	}
	for i := 0; i+1 < len(overrides); i += 2 {
		vals[overrides[i]] = overrides[i+1]
	}
	var pairs []string
	for k, v := range vals {
		pairs = append(pairs, k, v)
	}
	root, err := repo.Root()
	if err != nil {
		panic(err)
	}
	pairs = append(pairs, "KEY", testKey, "CODE", filepath.Join(root, "internal", "moodle", "testdata", "fixture"))
	return strings.NewReplacer(pairs...).Replace(validSite)
}

// Bad input is refused by `terraform plan`, before any host is contacted, with a message saying what is
// expected.
func TestAccClusterPlanTimeValidation(t *testing.T) {
	cases := []struct {
		name   string
		config string
		want   string
	}{
		{"bad URL", site("WWWROOT", "moodle.example.edu"), `must be an absolute http:// or https:// URL`},
		{"trailing slash", site("WWWROOT", "https://moodle.example.edu/"), `must not end with a slash`},
		{"https without certificate", site("WWWROOT", "https://moodle.example.edu"), `no TLS certificate`},
		{"weight out of range", site("WEIGHT", "300"), `weight`},
		{"unknown state", site("STATE", "paused"), `state`},
		{"replica on the primary's host", site("REPLICA", "10.99.0.31"), `replica's host is the cluster's database primary`},
		{"backend on the NFS host", site("BACKEND", "10.99.0.41"), `web node needs a host of its own`},
		{"unknown config.php key", site("SETTINGS", `{ session_redis_lock_retry = "100" }`), `session_redis_acquire_lock_retry`},
		{"config.php key MOHD sets", site("SETTINGS", `{ dbhost = "10.0.0.1" }`), `(?i)set by MOHD`},
	}
	t.Run("valid", func(t *testing.T) {
		resource.Test(t, resource.TestCase{
			ProtoV6ProviderFactories: protoV6ProviderFactories,
			Steps:                    []resource.TestStep{{Config: site(), PlanOnly: true, ExpectNonEmptyPlan: true}},
		})
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: protoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config:      c.config,
					PlanOnly:    true,
					ExpectError: regexp.MustCompile(strings.ReplaceAll(c.want, " ", `\s+`)),
				}},
			})
		})
	}
}
