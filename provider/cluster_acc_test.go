package provider_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/repo"
)

// siteLab is a lab with one host per role image: the hosts a full cluster is wired from.
type siteLab struct {
	lab    *lab.Lab
	hosts  map[string]*lab.Host
	code   string // Moodle tree deployed: MOODLE_SOURCE or the fixture
	volume string // the shared moodledata volume (the lab's kernel has no NFS client)
}

// newSiteLab starts the named hosts; each name's letters give its role (fe -> haproxy, web, db, nfs, redis).
func newSiteLab(t *testing.T, names ...string) *siteLab {
	t.Helper()
	l := labtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	imgs, err := lab.EnsureRoleImages(ctx, lab.RoleImageOptions{
		Roles:    []string{"haproxy", "web", "db", "nfs", "redis", "monitoring"},
		Progress: func(s string) { t.Log("images: " + s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	byRole := map[string]lab.RoleImage{}
	for _, img := range imgs {
		byRole[img.Role] = img
	}
	sl := &siteLab{lab: l, hosts: map[string]*lab.Host{}, volume: "mohd-test-moodledata-" + l.ID}
	if out, err := exec.Command("docker", "volume", "create", "--label", "org.mohd.lab="+l.ID, sl.volume).CombinedOutput(); err != nil {
		t.Fatalf("docker volume create: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "volume", "rm", "-f", sl.volume).Run() })
	var specs []lab.HostSpec
	for _, n := range names {
		role := strings.TrimRight(n, "0123456789")
		switch role {
		case "fe":
			role = "haproxy"
		case "mon":
			role = "monitoring"
		}
		spec := lab.RoleHostSpec(n, byRole[role])
		if role == "web" {
			// nocopy: a host started later (web3) must not reset the shared volume to its image's empty
			// root-owned directory.
			spec.Volumes = []string{sl.volume + ":/var/www/moodledata:nocopy"}
			spec.Memory = "1536m"
		}
		specs = append(specs, spec)
	}
	for i, h := range labtest.Start(t, l, specs...) {
		sl.hosts[names[i]] = h
	}
	sl.code = os.Getenv("MOODLE_SOURCE")
	if sl.code == "" {
		root, err := repo.Root()
		if err != nil {
			t.Fatal(err)
		}
		sl.code = filepath.Join(root, "internal", "moodle", "testdata", "fixture")
		t.Log("deploying the Moodle-shaped fixture (set MOODLE_SOURCE to a Moodle tree to deploy real Moodle)")
	} else {
		t.Logf("deploying the real Moodle tree MOODLE_SOURCE=%s", sl.code)
	}
	return sl
}

// monitoring is the cluster's monitoring block when the lab has a monitoring host.
func (sl *siteLab) monitoring() string {
	if _, ok := sl.hosts["mon1"]; !ok {
		return ""
	}
	return fmt.Sprintf("\n  monitoring = { host = %s }", sl.host("mon1"))
}

func (sl *siteLab) host(name string) string {
	h := sl.hosts[name]
	return fmt.Sprintf("{ address = %q, host_key = %q }", h.Addr, h.HostKey)
}

// siteConfig is what a site's root module looks like, for the given backends, primary and replica.
type siteConfig struct {
	backends []string
	primary  string
	replica  string
	extra    string // more HCL (timeouts...)
}

const adminPassword = "Admin-Password-42!"

func (sl *siteLab) config(t *testing.T, c siteConfig) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(sshProvider(t, sl.lab, ""))
	fmt.Fprintf(&b, `
resource "moodle_cluster" "site" {
  name         = "site"
  wwwroot      = "http://%s"
  cluster_cidr = %q
  frontends    = [%s]
  database = {
    primary              = %s
    password             = "Db-Password-42"
    replication_password = "Repl-Password-42"
  }
  nfs = {
    host             = %s
    existing_storage = true
  }
  redis = {
    host     = %s
    password = "Redis-Password-42"
  }
  code  = { path = %q }%s
  admin = {
    password = %q
    email    = "admin@example.edu"
  }
  log_lifetime_days = 30
  %s
}
`, sl.hosts["fe1"].Addr, sl.lab.Subnet.String(), sl.host("fe1"), sl.host(c.primary), sl.host("nfs1"), sl.host("redis1"),
		sl.code, sl.monitoring(), adminPassword, c.extra)
	if c.replica != "" {
		fmt.Fprintf(&b, `
resource "moodle_db_replica" "db" {
  cluster = moodle_cluster.site.spec
  name    = "replica"
  host    = %s
}
`, sl.host(c.replica))
	}
	if c.replica != "" {
		b.WriteString("\nlocals {\n  read_replicas = [for r in [moodle_db_replica.db] : r.host.address if r.use_for_reads]\n}\n")
	} else {
		b.WriteString("\nlocals {\n  read_replicas = []\n}\n")
	}
	for _, w := range c.backends {
		fmt.Fprintf(&b, `
resource "moodle_backend" %[1]q {
  cluster       = moodle_cluster.site.spec
  name          = %[1]q
  host          = %[2]s
  read_replicas = local.read_replicas
  drain_timeout = "60s"
}
`, w, sl.host(w))
	}
	return b.String()
}

// TestAccCluster is the whole life of a site: created, checked through the front end, planned empty,
// drifted and repaired, imported, scaled out and in under load with no failed request, switched over to the
// replica and back, destroyed.
func TestAccCluster(t *testing.T) {
	sl := newSiteLab(t, "fe1", "web1", "web2", "web3", "db1", "db2", "nfs1", "redis1", "mon1")
	two := siteConfig{backends: []string{"web1", "web2"}, primary: "db1", replica: "db2"}
	three := siteConfig{backends: []string{"web1", "web2", "web3"}, primary: "db1", replica: "db2"}
	switched := siteConfig{backends: []string{"web1", "web2"}, primary: "db2", replica: "db1"}
	front := "http://" + sl.hosts["fe1"].Addr
	var load *loadGen

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             sl.checkBackendsGone(t),
		Steps: []resource.TestStep{
			{
				Config: sl.config(t, two),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("moodle_cluster.site", "primary", sl.hosts["db1"].Addr),
					resource.TestCheckResourceAttr("moodle_cluster.site", "drift.#", "0"),
					resource.TestCheckResourceAttr("moodle_backend.web1", "fpm_pool_size", "12"),
					resource.TestCheckResourceAttr("moodle_db_replica.db", "io_running", "Yes"),
					resource.TestCheckResourceAttr("moodle_db_replica.db", "sql_running", "Yes"),
					sl.checkSite(t, front, []string{"web1", "web2"}),
					sl.checkSharedFiles(t, "web1", "web2"),
					sl.checkReplicaReads(t, "db1", "db2"),
					sl.checkCronOnce(t, "db1"),
					sl.checkScraped(t, "web1", "web2", "db1", "db2", "fe1", "redis1"),
				),
			},
			{
				// Nothing changed: the plan is empty.
				Config:   sl.config(t, two),
				PlanOnly: true,
			},
			{
				// Drift: a hand-edited HAProxy file, a node disabled at run time, a stopped PHP-FPM and a hand-edited
				// config.php all show as updates; the apply repairs them; the plan is empty again.
				PreConfig: func() {
					labtest.Exec(t, sl.hosts["fe1"], `echo '# edited by hand' >> /etc/haproxy/conf.d/10-site.cfg
echo 'disable server moodle/web1' | socat stdio /run/haproxy/admin.sock`)
					labtest.Exec(t, sl.hosts["web2"], `systemctl stop php8.2-fpm; echo '// edited' >> /etc/moodle/config.php`)
				},
				Config:             sl.config(t, two),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: sl.config(t, two),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("moodle_cluster.site", plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction("moodle_backend.web1", plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction("moodle_backend.web2", plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("moodle_backend.web2", "drift.#", "0"),
					sl.checkSite(t, front, []string{"web1", "web2"}),
				),
			},
			{Config: sl.config(t, two), PlanOnly: true},
			{
				// Import: a node MOHD configured before joins a new state; the configuration then matches the host.
				Config:            sl.config(t, two),
				ResourceName:      "moodle_backend.web1",
				ImportState:       true,
				ImportStateId:     "site/web1",
				ImportStateVerify: false,
				ImportStateCheck: func(s []*terraform.InstanceState) error {
					if len(s) != 1 || s[0].ID != "site/web1" || s[0].Attributes["name"] != "web1" {
						return fmt.Errorf("imported %v", s)
					}
					return nil
				},
			},
			{
				// Scale out under load: no request fails while web3 joins.
				PreConfig: func() { load = startLoad(t, front) },
				Config:    sl.config(t, three),
				Check: resource.ComposeAggregateTestCheckFunc(
					func(*terraform.State) error { return load.stopAndCheck(t) },
					sl.checkSite(t, front, []string{"web1", "web2", "web3"}),
				),
			},
			{
				// Scale in under load: web3 is drained, then removed; no request fails.
				PreConfig: func() { load = startLoad(t, front) },
				Config:    sl.config(t, two),
				Check: resource.ComposeAggregateTestCheckFunc(
					func(*terraform.State) error { return load.stopAndCheck(t) },
					sl.checkNotServed(t, front, "web3"),
				),
			},
			{
				// Switchover to the replica: db2 becomes the primary, db1 its replica, the backends follow.
				Config: sl.config(t, switched),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("moodle_cluster.site", "primary", sl.hosts["db2"].Addr),
					resource.TestMatchResourceAttr("moodle_cluster.site", "last_event", regexp.MustCompile(`switched over from `+regexp.QuoteMeta(sl.hosts["db1"].Addr))),
					resource.TestCheckResourceAttr("moodle_db_replica.db", "io_running", "Yes"),
					sl.checkSite(t, front, []string{"web1", "web2"}),
					sl.checkReplicaReads(t, "db2", "db1"),
				),
			},
			{Config: sl.config(t, switched), PlanOnly: true},
			{
				// And back.
				Config: sl.config(t, two),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("moodle_cluster.site", "primary", sl.hosts["db1"].Addr),
					sl.checkSite(t, front, []string{"web1", "web2"}),
					sl.checkReplicaReads(t, "db1", "db2"),
				),
			},
		},
	})
}

// TestAccClusterErrors: a host of the wrong role, a wrong host key and an unreachable host are refused with a
// clear error and nothing changed; an apply cut short by its timeout is completed by the next one.
func TestAccClusterErrors(t *testing.T) {
	sl := newSiteLab(t, "fe1", "db1", "nfs1", "redis1")
	base := sl.config(t, siteConfig{primary: "db1"})
	wrongRole := strings.Replace(base, "host             = "+sl.host("nfs1"), "host             = "+sl.host("redis1"), 1)
	wrongKey := strings.Replace(base, fmt.Sprintf("frontends    = [%s]", sl.host("fe1")),
		fmt.Sprintf("frontends    = [{ address = %q, host_key = %q }]", sl.hosts["fe1"].Addr, sl.hosts["db1"].HostKey), 1)
	unreachable := strings.Replace(strings.Replace(base, fmt.Sprintf("frontends    = [%s]", sl.host("fe1")),
		fmt.Sprintf("frontends    = [{ address = %q, host_key = %q }]", unusedAddr(sl), sl.hosts["db1"].HostKey), 1), "ssh {", "ssh {\n    timeout = \"5s\"", 1)
	short := strings.Replace(base, "log_lifetime_days = 30", "log_lifetime_days = 30\n  timeouts = { create = \"3s\" }", 1)
	// The role check runs before any change: the refused apply left Redis unconfigured.
	untouched := func() {
		if out := labtest.Exec(t, sl.hosts["redis1"], "ls /etc/redis/conf.d/"); strings.Contains(out, "mohd-site") {
			t.Errorf("the redis host was configured although the apply was refused: %s", out)
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: wrongRole, ExpectError: wrapped(`cloned from a "redis" image, not a "nfs" one`)},
			{PreConfig: untouched, Config: wrongKey, ExpectError: wrapped("host key verification failed")},
			{Config: unreachable, ExpectError: regexp.MustCompile(`(?i)timeout|timed out|no route|refused|unreachable`)},
			{Config: short, ExpectError: regexp.MustCompile(`(?i)deadline|cancel`)},
			{
				Config: base,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("moodle_cluster.site", "drift.#", "0"),
					resource.TestCheckResourceAttr("moodle_cluster.site", "primary", sl.hosts["db1"].Addr),
				),
			},
			{Config: base, PlanOnly: true},
		},
	})
}

// unusedAddr is an address of the lab's network that no host has.
func unusedAddr(sl *siteLab) string {
	ip := sl.lab.Subnet.IP.To4()
	return fmt.Sprintf("%d.%d.%d.250", ip[0], ip[1], ip[2])
}

// wrapped matches text in Terraform's output, which wraps long messages at any space.
func wrapped(text string) *regexp.Regexp {
	return regexp.MustCompile(strings.ReplaceAll(regexp.QuoteMeta(text), " ", `\s+`))
}
