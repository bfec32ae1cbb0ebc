// Package demo runs MOHD's local demo: a complete highly-available Moodle on lab hosts (containers that play
// the VMs: two HAProxy front ends sharing a keepalived VIP, two web nodes, a MariaDB primary and its replica,
// NFS, Redis and a monitoring host), wired by the real Terraform CLI and the provider from the root module
// examples/local. Unlike a lab test, the demo outlives the command that starts it: its state (the lab, its
// hosts, the key, the generated passwords) lives in a git-ignored directory (.demo), so that a second Up
// reuses the running hosts and Destroy removes everything. Bench measures the demo's cluster (bench.go).
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/repo"
)

// Options configure the demo commands.
type Options struct {
	// Root is the repository's root (default: found from the working directory).
	Root string
	// Dir holds the demo's state, key and secrets (default Root/.demo; it ignores itself for git).
	Dir string
	// Module is the root module applied (default Root/examples/local); terraform.tfvars is written there.
	Module string
	// Provider is the provider binary published in the demo's filesystem mirror (make build's
	// bin/terraform-provider-moodle); ProviderVersion its version (default 0.1.0).
	Provider        string
	ProviderVersion string
	// Terraform is the CLI (default tools/bin/terraform).
	Terraform string
	// MoodleSource is a Moodle tree (or .tar.gz) to deploy; empty deploys MOHD's Moodle-shaped fixture.
	MoodleSource string
	// Out receives progress and Terraform's output (default os.Stderr).
	Out io.Writer
	// LabName prefixes the lab's containers and network (default mohd-demo).
	LabName string
}

func (o *Options) resolve() error {
	if o.Root == "" {
		root, err := repo.Root()
		if err != nil {
			return err
		}
		o.Root = root
	}
	if o.Dir == "" {
		o.Dir = filepath.Join(o.Root, ".demo")
	}
	if o.Module == "" {
		o.Module = filepath.Join(o.Root, "examples", "local")
	}
	if o.ProviderVersion == "" {
		o.ProviderVersion = "0.1.0"
	}
	if o.Terraform == "" {
		o.Terraform = filepath.Join(o.Root, "tools", "bin", "terraform")
	}
	if o.Out == nil {
		o.Out = os.Stderr
	}
	if o.LabName == "" {
		o.LabName = "mohd-demo"
	}
	var err error
	for _, p := range []*string{&o.Dir, &o.Module, &o.Provider, &o.Terraform} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (o *Options) say(format string, a ...any) {
	_, _ = fmt.Fprintf(o.Out, "==> demo: "+format+"\n", a...)
}

func (o *Options) statePath() string   { return filepath.Join(o.Dir, "state.json") }
func (o *Options) secretsPath() string { return filepath.Join(o.Dir, "secrets.json") }

// AdminPasswordFile is where the site administrator's password is kept (0600).
func (o *Options) AdminPasswordFile() string { return filepath.Join(o.Dir, "admin-password") }

func (o *Options) tfvarsPath() string { return filepath.Join(o.Module, "terraform.tfvars") }

// code returns the Moodle tree to deploy and whether it is the fixture.
func (o *Options) code() (string, bool, error) {
	if o.MoodleSource == "" {
		return filepath.Join(o.Root, "internal", "moodle", "testdata", "fixture"), true, nil
	}
	p, err := filepath.Abs(o.MoodleSource)
	if err != nil {
		return "", false, err
	}
	if _, err := os.Stat(p); err != nil {
		return "", false, fmt.Errorf("MOODLE_SOURCE: %w", err)
	}
	return p, false, nil
}

// Host names of the demo and their roles, in start order (addresses follow it: .10, .11...).
var demoHosts = []struct{ name, role string }{
	{"lb1", "haproxy"}, {"lb2", "haproxy"},
	{"web1", "web"}, {"web2", "web"},
	{"db1", "db"}, {"db2", "db"},
	{"nfs1", "nfs"}, {"redis1", "redis"},
	{"mon1", "monitoring"},
}

// demoRoles are the role images the demo starts hosts from.
var demoRoles = []string{"haproxy", "web", "db", "nfs", "redis", "monitoring"}

// WebCPUs and WebMemory size one web node (docker --cpus, --memory): a small VM. The benchmark's naive
// single host gets the same.
const (
	WebCPUs   = "1"
	WebMemory = "1536m"
)

// hostSpec is the lab host of a demo host: its role's capabilities, a size like a small VM's, and the shared
// moodledata volume on web nodes.
func hostSpec(name string, img lab.RoleImage, volume string) lab.HostSpec {
	spec := lab.RoleHostSpec(name, img)
	switch img.Role {
	case "web":
		// nocopy: Docker copies an image's directory, with its owner and mode, into an empty volume when a
		// container mounts it; a web node started later (the bench's web3) would then give the shared
		// moodledata back to root, 0755, and every running node would lose write access to it.
		spec.Volumes = append(spec.Volumes, volume+":/var/www/moodledata:nocopy")
		spec.CPUs, spec.Memory = WebCPUs, WebMemory
	case "db":
		spec.Memory = "2g"
	case "monitoring":
		spec.Memory = "1g"
	default:
		spec.Memory = "512m"
	}
	return spec
}

// Site is a running demo.
type Site struct {
	State *State
	// Lab is set when this call started the hosts (nil when it reused running ones): more hosts can be
	// started on it (Bench does).
	Lab    *lab.Lab
	Reused bool
	// Code is the Moodle tree deployed; Fixture tells whether it is MOHD's test fixture.
	Code    string
	Fixture bool
	// Changed is whether the apply changed anything (false on a second Up of an unchanged demo).
	Changed bool
	// HostsStart is how long starting the hosts took (zero when reused); Apply how long terraform apply took.
	HostsStart, Apply time.Duration
	// AdminPasswordFile holds the admin's password.
	AdminPasswordFile string
	// Scrapes is what Prometheus on the monitoring host scrapes, per job, read after the apply.
	Scrapes string

	opts     Options
	secrets  Secrets
	tf       *terraform
	applyOut string
}

// Up brings the demo up: role images (baked when missing), the hosts (reused when the demo runs already),
// terraform.tfvars, `terraform init` from the mirror and `terraform apply`; then it checks that the login
// page answers through the VIP. It prints progress to opts.Out.
func Up(ctx context.Context, opts Options) (*Site, error) {
	if err := opts.resolve(); err != nil {
		return nil, err
	}
	if opts.Provider == "" {
		return nil, errors.New("demo: no provider binary given (make build writes bin/terraform-provider-moodle)")
	}
	unlock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return up(ctx, &opts)
}

func up(ctx context.Context, o *Options) (*Site, error) {
	if err := os.WriteFile(filepath.Join(o.Dir, ".gitignore"), []byte("# make demo's state: never committed\n*\n"), 0o600); err != nil {
		return nil, err
	}
	code, fixture, err := o.code()
	if err != nil {
		return nil, err
	}
	site := &Site{Code: code, Fixture: fixture, AdminPasswordFile: o.AdminPasswordFile(), opts: *o}
	if fixture {
		o.say("deploying MOHD's Moodle-shaped test fixture (%s); set MOODLE_SOURCE to a Moodle tree to deploy real Moodle", code)
	} else {
		o.say("deploying the Moodle tree MOODLE_SOURCE=%s", code)
	}

	st, err := readState(o.statePath())
	switch {
	case errors.Is(err, os.ErrNotExist):
		st = nil
	case err != nil:
		return nil, err
	}
	if st != nil && len(st.Hosts) < len(demoHosts) {
		o.say("a previous start of lab %s did not finish: removing it and starting again", st.LabID)
		if err := removeLab(ctx, o, st); err != nil {
			return nil, err
		}
		st = nil
	}
	if st != nil {
		if err := resume(ctx, o, st); err != nil {
			return nil, err
		}
		site.Reused = true
	} else {
		if err := removeTerraformState(o); err != nil {
			return nil, err
		}
		if st, site.Lab, err = startHosts(ctx, o, &site.HostsStart); err != nil {
			return nil, err
		}
	}
	site.State = st

	if site.secrets, err = loadSecrets(o.secretsPath()); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(o.AdminPasswordFile(), []byte(site.secrets.Admin+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := site.writeTFVars(DefaultLayout()); err != nil {
		return nil, err
	}
	o.say("terraform init in %s (offline: providers from the mirror %s)", o.Module, filepath.Join(o.Dir, "mirror"))
	if site.tf, err = prepareTerraform(ctx, o); err != nil {
		return nil, err
	}
	o.say("terraform apply -auto-approve")
	start := time.Now()
	if site.Changed, site.applyOut, err = site.tf.apply(ctx); err != nil {
		return nil, fmt.Errorf("%w: fix the cause and run `make demo` again (it reuses the hosts), or `make demo-destroy`", err)
	}
	site.Apply = time.Since(start)
	o.say("terraform apply finished in %s (%s)", site.Apply.Round(time.Second), map[bool]string{true: "changes made", false: "no change"}[site.Changed])
	o.say("checking the login page through the VIP %s", st.VIPAddr())
	if err := CheckLoginPage(ctx, st.URL()); err != nil {
		return nil, err
	}
	if mon, ok := st.Host("mon1"); ok {
		o.say("asking Prometheus on mon1 what it scrapes")
		if site.Scrapes, err = scrapeReport(ctx, "http://"+mon.Addr+":9090"); err != nil {
			return nil, err
		}
	}
	return site, nil
}

// writeTFVars writes the root module's terraform.tfvars (0600: it holds the passwords) for layout.
func (s *Site) writeTFVars(l Layout) error {
	return writeFileAtomic(s.opts.tfvarsPath(), []byte(renderTFVars(s.State, l, s.Code, s.secrets)), 0o600)
}

// startHosts creates a lab and starts the demo's hosts from the role images, recording the state as it goes.
func startHosts(ctx context.Context, o *Options, took *time.Duration) (*State, *lab.Lab, error) {
	o.say("role images (baked with Packer when missing: about a minute each)")
	imgs, err := lab.EnsureRoleImages(ctx, lab.RoleImageOptions{Roles: demoRoles, Progress: func(s string) { o.say("images: %s", s) }})
	if err != nil {
		return nil, nil, err
	}
	byRole := map[string]lab.RoleImage{}
	for _, img := range imgs {
		byRole[img.Role] = img
	}
	l, err := lab.New(ctx, lab.Options{Name: o.LabName, Progress: func(s string) { o.say("lab: %s", s) }})
	if err != nil {
		return nil, nil, err
	}
	st := &State{LabID: l.ID, Network: l.Network, Subnet: l.Subnet.String(), User: l.User(),
		KeyFile: filepath.Join(o.Dir, "id_ed25519"), Volume: l.ID + "-moodledata", VIP: vipOf(l.Subnet)}
	// Recorded before anything else exists: an interrupted start can always be found and removed.
	if err := writeState(o.statePath(), st); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(st.KeyFile, l.PrivateKey(), 0o600); err != nil {
		return nil, nil, err
	}
	if _, err := docker(ctx, "volume", "create", "--label", lab.Label+"="+l.ID, st.Volume); err != nil {
		return nil, nil, err
	}
	var specs []lab.HostSpec
	for _, h := range demoHosts {
		specs = append(specs, hostSpec(h.name, byRole[h.role], st.Volume))
	}
	o.say("starting %d hosts on %s (%s)", len(specs), l.Network, l.Subnet)
	start := time.Now()
	hosts, err := l.Start(ctx, specs...)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (make demo-destroy removes what started)", err)
	}
	*took = time.Since(start)
	for i, h := range hosts {
		st.Hosts = append(st.Hosts, HostState{Name: h.Name, Role: demoHosts[i].role, Image: specs[i].Image,
			Addr: h.Addr, Port: h.Port, Container: h.Container, HostKey: h.HostKey})
	}
	if st.SeedDir, err = seedDirOf(ctx, hosts[0].Container); err != nil {
		return nil, nil, err
	}
	if err := writeState(o.statePath(), st); err != nil {
		return nil, nil, err
	}
	o.say("%d hosts up in %s", len(hosts), took.Round(time.Second))
	return st, l, nil
}

// vipOf is the VIP of a lab network: .200, far above the addresses hosts get (.10 upwards).
func vipOf(subnet *net.IPNet) string {
	ip := subnet.IP.To4()
	ones, _ := subnet.Mask.Size()
	return fmt.Sprintf("%d.%d.%d.200/%d", ip[0], ip[1], ip[2], ones)
}

const seedMount = "/var/lib/cloud/seed/mohd"

func seedDirOf(ctx context.Context, container string) (string, error) {
	return docker(ctx, "container", "inspect", "--format",
		`{{range .Mounts}}{{if eq .Destination "`+seedMount+`"}}{{.Source}}{{end}}{{end}}`, container)
}

// resume checks that the demo's hosts still exist and starts those that are stopped (after a reboot, say).
func resume(ctx context.Context, o *Options, st *State) error {
	o.say("reusing the running demo (lab %s, %s)", st.LabID, st.Subnet)
	var stopped []string
	for _, h := range st.Hosts {
		exists, up := running(ctx, h.Container)
		if !exists {
			return fmt.Errorf("the demo's host %s (container %s) is gone (removed by make lab-clean?): run `make demo-destroy`, then `make demo`", h.Name, h.Container)
		}
		if !up {
			stopped = append(stopped, h.Container)
		}
	}
	if len(stopped) == 0 {
		return nil
	}
	o.say("starting stopped hosts: %s", strings.Join(stopped, " "))
	if err := restoreSeed(st); err != nil {
		return err
	}
	if _, err := docker(ctx, append([]string{"start"}, stopped...)...); err != nil {
		return err
	}
	for _, h := range st.Hosts {
		if err := waitSSH(ctx, net.JoinHostPort(h.Addr, fmt.Sprint(h.Port)), 2*time.Minute); err != nil {
			return fmt.Errorf("host %s did not come back: %w", h.Name, err)
		}
	}
	return nil
}

// restoreSeed recreates the lab's seed directory (a temporary directory that a reboot may have removed):
// docker will not start a host whose bind mount's source is missing.
func restoreSeed(st *State) error {
	if st.SeedDir == "" {
		return nil
	}
	if _, err := os.Stat(st.SeedDir); err == nil {
		return nil
	}
	key, err := os.ReadFile(st.KeyFile)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return fmt.Errorf("%s: %w", st.KeyFile, err)
	}
	if err := os.MkdirAll(st.SeedDir, 0o755); err != nil { //nolint:gosec // hosts read it through a bind mount
		return err
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " mohd-lab\n"
	if err := os.WriteFile(filepath.Join(st.SeedDir, "authorized_keys"), []byte(pub), 0o644); err != nil { //nolint:gosec // a public key
		return err
	}
	return os.WriteFile(filepath.Join(st.SeedDir, "user"), []byte(st.User+"\n"), 0o644) //nolint:gosec // not a secret
}

// waitSSH waits until addr answers with an SSH banner.
func waitSSH(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := func() error {
			c, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil {
				return err
			}
			if string(buf) != "SSH-" {
				return fmt.Errorf("%s answered %q, not an SSH banner", addr, buf)
			}
			return nil
		}()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// CheckLoginPage fetches base+"login/index.php" until it answers 200 with Moodle's login form (id="login"),
// for up to a minute (the VIP may still be moving to its master).
func CheckLoginPage(ctx context.Context, base string) error {
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	url := strings.TrimSuffix(base, "/") + "/login/index.php"
	deadline := time.Now().Add(time.Minute)
	for {
		err := func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer func() { _ = resp.Body.Close() }()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="login"`) {
				return fmt.Errorf("GET %s: %s, %d bytes without the login form: %.300s", url, resp.Status, len(body), body)
			}
			return nil
		}()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the site does not answer through the VIP: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// Summary is what Up prints at the end: where the site is, the admin's password file, what the monitoring
// host does, and how to tear it all down.
func (s *Site) Summary() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	st := s.State
	p("")
	if s.Reused {
		p("MOHD demo: the running demo was applied again (%s).", map[bool]string{true: "changes made", false: "no change"}[s.Changed])
	} else {
		p("MOHD demo is up: hosts started in %s, terraform apply took %s.", s.HostsStart.Round(time.Second), s.Apply.Round(time.Second))
	}
	p("")
	p("  Moodle:          %s   (the keepalived VIP of lb1/lb2; reachable from this machine only)", st.URL())
	if s.Fixture {
		p("  code:            MOHD's Moodle-shaped test fixture (set MOODLE_SOURCE=/path/to/moodle for real Moodle)")
	} else {
		p("  code:            %s", s.Code)
	}
	p("  admin user:      admin")
	p("  admin password:  in %s", s.AdminPasswordFile)
	p("")
	p("  hosts (lab %s, network %s):", st.LabID, st.Subnet)
	for _, h := range st.Hosts {
		p("    %-7s %-11s %s", h.Name, h.Role, h.Addr)
	}
	if mon, ok := st.Host("mon1"); ok {
		p("")
		p("  monitoring:      Prometheus http://%s:9090/ %s", mon.Addr, strings.ReplaceAll(s.Scrapes, "\n", "\n                   "))
		p("                   Alertmanager http://%s:9093/: with no mattermost_webhook_url, alerts stay in its UI.", mon.Addr)
		p("                   Grafana is not installed (not in Debian): its dashboards are JSON files in")
		p("                   /usr/share/mohd/grafana/dashboards on mon1, for an existing Grafana.")
	}
	p("")
	p("  terraform by hand: cd %s && TF_CLI_CONFIG_FILE=%s %s plan", s.opts.Module,
		filepath.Join(s.opts.Dir, "mirror", "terraform.rc"), s.opts.Terraform)
	p("  tear down:       make demo-destroy")
	return b.String()
}

// Destroy tears the demo down: `terraform destroy` (the web nodes leave the front ends), then the hosts,
// their volumes, the network, the root module's state and tfvars, and the demo's directory.
func Destroy(ctx context.Context, opts Options) error {
	if err := opts.resolve(); err != nil {
		return err
	}
	unlock, err := lockDir(opts.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	o := &opts
	st, err := readState(o.statePath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if st == nil {
		o.say("no demo state in %s: nothing running to remove", o.Dir)
	} else {
		if err := terraformDestroy(ctx, o, st); err != nil {
			o.say("WARNING: terraform destroy failed (%v); removing the hosts anyway", err)
		}
		if err := removeLab(ctx, o, st); err != nil {
			return err
		}
	}
	if err := removeTerraformState(o); err != nil {
		return err
	}
	if err := os.RemoveAll(o.Dir); err != nil {
		return err
	}
	o.say("demo removed")
	return nil
}

// removeTerraformState removes what the demo left in the root module: a state that describes hosts which
// no longer exist would make the next apply try to reach them.
func removeTerraformState(o *Options) error {
	for _, f := range []string{"terraform.tfvars", "terraform.tfstate", "terraform.tfstate.backup", ".terraform.lock.hcl", ".terraform"} {
		if err := os.RemoveAll(filepath.Join(o.Module, f)); err != nil {
			return err
		}
	}
	return nil
}

// terraformDestroy runs `terraform destroy` when there is a state to destroy and every host answers.
func terraformDestroy(ctx context.Context, o *Options, st *State) error {
	if !exists(filepath.Join(o.Module, "terraform.tfstate")) || !exists(o.tfvarsPath()) {
		return nil // nothing was applied
	}
	for _, h := range st.Hosts {
		if _, up := running(ctx, h.Container); !up {
			o.say("host %s is not running: skipping terraform destroy", h.Name)
			return nil
		}
	}
	if o.Provider == "" {
		return errors.New("no provider binary given")
	}
	// The tfvars again from the state, for the root module as it is now (it may have changed since).
	sec, err := loadSecrets(o.secretsPath())
	if err != nil {
		return err
	}
	code, _, err := o.code()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(o.tfvarsPath(), []byte(renderTFVars(st, DefaultLayout(), code, sec)), 0o600); err != nil {
		return err
	}
	o.say("terraform destroy")
	tf, err := prepareTerraform(ctx, o)
	if err != nil {
		return err
	}
	_, err = tf.run(ctx, true, "destroy", "-auto-approve", "-input=false", "-no-color")
	return err
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// removeLab removes the lab's hosts (with their anonymous volumes), named volumes, network and seed.
func removeLab(ctx context.Context, o *Options, st *State) error {
	o.say("removing lab %s: hosts, volumes, network", st.LabID)
	var errs []error
	filter := "label=" + lab.Label + "=" + st.LabID
	if out, err := docker(ctx, "ps", "-aq", "--filter", filter); err != nil {
		errs = append(errs, err)
	} else if out != "" {
		if st.SeedDir == "" { // a start interrupted before it was recorded
			st.SeedDir, _ = seedDirOf(ctx, strings.Fields(out)[0])
		}
		if _, err := docker(ctx, append([]string{"rm", "-f", "-v"}, strings.Fields(out)...)...); err != nil {
			errs = append(errs, err)
		}
	}
	if out, err := docker(ctx, "volume", "ls", "-q", "--filter", filter); err != nil {
		errs = append(errs, err)
	} else if out != "" {
		if _, err := docker(ctx, append([]string{"volume", "rm", "-f"}, strings.Fields(out)...)...); err != nil {
			errs = append(errs, err)
		}
	}
	if st.Network != "" {
		if _, err := docker(ctx, "network", "rm", st.Network); err != nil && !strings.Contains(err.Error(), "not found") {
			errs = append(errs, err)
		}
	}
	// Only ever the lab's own seed directory (lab.New makes it with this prefix in the temporary directory).
	if st.SeedDir != "" && filepath.Dir(st.SeedDir) == filepath.Clean(os.TempDir()) && strings.HasPrefix(filepath.Base(st.SeedDir), "mohd-lab-seed-") {
		if err := os.RemoveAll(st.SeedDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
