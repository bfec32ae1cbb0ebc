package role

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/mohd-dev/mohd/packer/version"
)

var (
	t1 = time.Date(2025, 3, 4, 6, 7, 8, 0, time.FixedZone("CET", 3600)) // 05:07:08 UTC
	t2 = t1.Add(26 * time.Hour)
)

func newProvisioner(t *testing.T, raw map[string]any, now time.Time) *Provisioner {
	t.Helper()
	p := &Provisioner{now: func() time.Time { return now }}
	if err := p.Prepare(raw); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return p
}

func TestProvisionRefusesRolesWithoutInstallSteps(t *testing.T) {
	for _, role := range Roles {
		t.Run(role, func(t *testing.T) {
			raw := validRaw()
			raw["role"] = role
			p := newProvisioner(t, raw, t1)
			comm := &packersdk.MockCommunicator{}
			err := p.Provision(context.Background(), packersdk.TestUi(t), comm, nil)
			want := fmt.Sprintf("role %q: the role library does not provide its install steps yet (see issue 4)", role)
			if err == nil || err.Error() != want {
				t.Fatalf("Provision returned %v, want %q", err, want)
			}
			if comm.StartCalled || comm.UploadCalled {
				t.Errorf("Provision touched the host before refusing the role (command %v, upload %q)", comm.StartCmd, comm.UploadPath)
			}
		})
	}
}

// generalizeScripts are the generalization's commands, in order.
var generalizeScripts = []string{
	"rm -f /etc/ssh/ssh_host_*",
	"if [ -e /etc/machine-id ]; then truncate -s 0 /etc/machine-id; fi",
	"rm -f /var/lib/dbus/machine-id",
	"if command -v cloud-init >/dev/null 2>&1; then cloud-init clean --logs;",
	"apt-get clean",
	"rm -rf /var/lib/apt/lists/*",
	"find /var/log -path /var/log/journal -prune -o -type f -exec truncate -s 0 {} +",
}

func TestProvisionAsRoot(t *testing.T) {
	var stepRan int
	registerRole(t, "web", roleInstall{
		keyPackages: []string{"sudo"},
		steps: []roleStep{{name: "test step", run: func(ctx context.Context, h *host, c *Config) error {
			stepRan++
			_, err := h.root(ctx, "test step", "echo role-step "+c.MoodleVersion, runOpts{})
			return err
		}}},
	})
	raw := validRaw()
	raw["role"] = "web"
	raw["moodle_version"] = "4.5"
	raw["extra_packages"] = []string{"curl", "jq", "curl"}
	p := newProvisioner(t, raw, t1)
	f := newFakeHost("0")
	ui, out := testUi()

	if err := p.Provision(context.Background(), ui, f, nil); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if stepRan != 1 {
		t.Errorf("the role's step ran %d times, want 1", stepRan)
	}

	// Root: nothing goes through sudo; every command but `id -u` is a POSIX shell script.
	if f.commands[0] != "id -u" {
		t.Errorf("first command is %q, want `id -u`", f.commands[0])
	}
	for _, c := range f.commands[1:] {
		if strings.HasPrefix(c, "sudo") {
			t.Errorf("root ran a command through sudo: %s", c)
		}
		if !strings.HasPrefix(c, "sh -c '") {
			t.Errorf("command is not wrapped in sh -c: %s", c)
		}
	}

	// Order: role steps, extra packages, manifest, generalization.
	order := []string{"echo role-step 4.5", "apt-get install", `mv -f "$tmp" "$dst"`, generalizeScripts[0]}
	for i := 1; i < len(order); i++ {
		a, b := f.indexOf(order[i-1]), f.indexOf(order[i])
		if a < 0 || b < 0 || a > b {
			t.Errorf("%q (command %d) should run before %q (command %d)", order[i-1], a, order[i], b)
		}
	}

	// Extra packages: only the missing one is installed, non-interactively and without recommends.
	apt := f.scripts()[f.indexOf("apt-get install")]
	for _, want := range []string{"export DEBIAN_FRONTEND=noninteractive", "apt-get update", "apt-get install -y -q --no-install-recommends", "'jq'"} {
		if !strings.Contains(apt, want) {
			t.Errorf("apt-get script lacks %q:\n%s", want, apt)
		}
	}
	if strings.Contains(apt, "'curl'") {
		t.Errorf("apt-get installs curl, which is installed already:\n%s", apt)
	}

	// The manifest: uploaded once, moved into place as root with mode 0644.
	if len(f.uploads) != 1 || !strings.HasPrefix(f.uploads[0].path, "/tmp/mohd-manifest.") {
		t.Fatalf("uploads = %+v, want one to /tmp/mohd-manifest.*", f.uploads)
	}
	move := f.scripts()[f.indexOf(`mv -f "$tmp" "$dst"`)]
	for _, want := range []string{
		"src='/tmp/mohd-manifest.tmp001' dst='/etc/mohd/image-manifest.json'",
		"mkdir -p '/etc/mohd/'",
		"tmp=$(mktemp '/etc/mohd/.image-manifest.json.'XXXXXX)",
		`chown 0:0 "$tmp"`, `chmod 0644 "$tmp"`, "umask 022",
	} {
		if !strings.Contains(move, want) {
			t.Errorf("manifest move script lacks %q:\n%s", want, move)
		}
	}
	got, ok := f.files["/etc/mohd/image-manifest.json"]
	if !ok || got != f.uploads[0].data || f.modes["/etc/mohd/image-manifest.json"] != "644 0 0" {
		t.Fatalf("manifest not in place: %q (mode %q)", got, f.modes["/etc/mohd/image-manifest.json"])
	}
	if _, left := f.files["/tmp/mohd-manifest.tmp001"]; left {
		t.Error("the uploaded temporary file was left behind")
	}
	want := `{
  "role": "web",
  "plugin_version": "` + version.PluginVersion.String() + `",
  "build_time": "2025-03-04T05:07:08Z",
  "base_os": {
    "id": "debian",
    "version_id": "12",
    "version_codename": "bookworm",
    "pretty_name": "Debian GNU/Linux 12 (bookworm)"
  },
  "hardening": "baseline",
  "cluster_cidr": "10.20.0.0/24",
  "moodle_version": "4.5",
  "packages": {
    "curl": "7.88.1-10+deb12u8",
    "jq": "1.0-test",
    "sudo": "1.9.13p3-1+deb12u1"
  }
}
`
	if got != want {
		t.Errorf("manifest:\n%s\nwant:\n%s", got, want)
	}

	// Generalization: every step, in order, as the last commands.
	scripts := f.scripts()
	tail := scripts[len(scripts)-len(generalizeScripts):]
	for i, want := range generalizeScripts {
		if !strings.Contains(tail[i], want) {
			t.Errorf("generalize command %d is\n%s\nwant it to contain\n%s", i, tail[i], want)
		}
	}
	if !strings.Contains(tail[6], "-name '*.gz'") || !strings.Contains(tail[6], "/var/log/journal -type f -name '*.journal*' -delete") {
		t.Errorf("log step does not remove rotated logs and journal files:\n%s", tail[6])
	}

	for _, want := range []string{
		"Baking the web role (hardening baseline, cluster network 10.20.0.0/24)",
		"Role web: test step",
		"Installing extra packages: curl, jq",
		"1 of them installed already; installing jq",
		"Setting up jq (1.0-test) ...",
		"Writing the image manifest /etc/mohd/image-manifest.json",
		"Wrote /etc/mohd/image-manifest.json (build_time 2025-03-04T05:07:08Z, 3 package version(s))",
		"Generalizing the machine before capture",
		"remove the SSH host keys",
		"truncate the logs in /var/log",
		"The web role is baked",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("UI output lacks %q:\n%s", want, out)
		}
	}
}

func TestProvisionUsesSudoForNonRootUser(t *testing.T) {
	registerRole(t, "redis", roleInstall{})
	raw := validRaw()
	raw["role"] = "redis"
	raw["extra_packages"] = []string{"jq"}
	p := newProvisioner(t, raw, t1)
	f := newFakeHost("1000")
	ui, out := testUi()
	if err := p.Provision(context.Background(), ui, f, nil); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	// Root is needed to change the system: those commands run through sudo -n. Reading os-release and the
	// dpkg database and creating the upload file (which the upload must be able to write) run as the user.
	if f.commands[0] != "id -u" || f.commands[1] != "sudo -n true" {
		t.Errorf("the first commands are %q, want `id -u` then the check `sudo -n true`", f.commands[:2])
	}
	var sudo int
	for _, c := range f.commands[2:] {
		s := script(c)
		switch {
		case strings.HasPrefix(s, "dpkg-query"), strings.Contains(s, "os-release"), strings.HasPrefix(s, "mktemp /tmp/"):
			if !strings.HasPrefix(c, "sh -c '") {
				t.Errorf("should run as the communicator's user: %s", c)
			}
		case strings.HasPrefix(c, "sudo -n sh -c '"):
			sudo++
		default:
			t.Errorf("command neither runs as root through `sudo -n sh -c` nor is one of the user's: %s", c)
		}
	}
	// apt-get install, reading the manifest, moving it into place, and the generalization.
	if want := 3 + len(generalizeScripts); sudo != want {
		t.Errorf("%d commands ran through sudo, want %d", sudo, want)
	}
	for _, s := range append([]string{"apt-get install", "stat -c", `mv -f "$tmp" "$dst"`}, generalizeScripts...) {
		i := f.indexOf(s)
		if i < 0 || !strings.HasPrefix(f.commands[i], "sudo -n sh -c '") {
			t.Errorf("%q did not run through sudo", s)
		}
	}
	if !strings.Contains(out.String(), "Remote user has uid 1000: running privileged steps with sudo -n") {
		t.Errorf("UI does not say sudo is used:\n%s", out)
	}
}

func TestProvisionAgainChangesNothing(t *testing.T) {
	registerRole(t, "db", roleInstall{keyPackages: []string{"sudo"}})
	raw := validRaw()
	raw["extra_packages"] = []string{"jq"}
	f := newFakeHost("1000")

	ui, _ := testUi()
	if err := newProvisioner(t, raw, t1).Provision(context.Background(), ui, f, nil); err != nil {
		t.Fatalf("first Provision: %v", err)
	}
	first := f.files["/etc/mohd/image-manifest.json"]
	firstCommands := len(f.commands)

	ui, out := testUi()
	if err := newProvisioner(t, raw, t2).Provision(context.Background(), ui, f, nil); err != nil {
		t.Fatalf("second Provision: %v", err)
	}
	if got := f.files["/etc/mohd/image-manifest.json"]; got != first {
		t.Errorf("the manifest changed:\n%s\nwas:\n%s", got, first)
	}
	if !strings.Contains(first, `"build_time": "2025-03-04T05:07:08Z"`) {
		t.Errorf("first manifest has the wrong build_time:\n%s", first)
	}
	if len(f.uploads) != 1 {
		t.Errorf("the second run uploaded again: %d uploads", len(f.uploads))
	}
	for _, s := range f.scripts()[firstCommands:] {
		if strings.Contains(s, "apt-get install") || strings.Contains(s, "apt-get update") || strings.Contains(s, "mktemp") {
			t.Errorf("the second run ran %q", s)
		}
	}
	for _, want := range []string{
		"All extra packages are installed already: nothing to do",
		"The manifest is up to date (build_time 2025-03-04T05:07:08Z): left as it is",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("UI output lacks %q:\n%s", want, out)
		}
	}
}

func TestManifestBuildTimeChangesWithContent(t *testing.T) {
	registerRole(t, "db", roleInstall{})
	raw := validRaw()
	raw["extra_packages"] = []string{"curl"}
	f := newFakeHost("0")
	ui, _ := testUi()
	if err := newProvisioner(t, raw, t1).Provision(context.Background(), ui, f, nil); err != nil {
		t.Fatal(err)
	}
	f.installed["curl"] = "7.88.1-10+deb12u9" // a security update came in
	if err := newProvisioner(t, raw, t2).Provision(context.Background(), ui, f, nil); err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal([]byte(f.files["/etc/mohd/image-manifest.json"]), &m); err != nil {
		t.Fatal(err)
	}
	if m.BuildTime != "2025-03-05T07:07:08Z" || m.Packages["curl"] != "7.88.1-10+deb12u9" {
		t.Errorf("after an upgrade the manifest has build_time %s and curl %s, want the second run's time and version", m.BuildTime, m.Packages["curl"])
	}
	if len(f.uploads) != 2 {
		t.Errorf("%d uploads, want 2", len(f.uploads))
	}
}

func TestManifestRewrittenWhenModeIsWrong(t *testing.T) {
	registerRole(t, "db", roleInstall{})
	f := newFakeHost("0")
	ui, _ := testUi()
	if err := newProvisioner(t, validRaw(), t1).Provision(context.Background(), ui, f, nil); err != nil {
		t.Fatal(err)
	}
	first := f.files["/etc/mohd/image-manifest.json"]
	f.modes["/etc/mohd/image-manifest.json"] = "600 1000 1000"
	if err := newProvisioner(t, validRaw(), t2).Provision(context.Background(), ui, f, nil); err != nil {
		t.Fatal(err)
	}
	if len(f.uploads) != 2 || f.modes["/etc/mohd/image-manifest.json"] != "644 0 0" {
		t.Errorf("a manifest with mode/owner 600 1000 1000 was not rewritten (%d uploads)", len(f.uploads))
	}
	// Same content: the build time stays.
	if f.files["/etc/mohd/image-manifest.json"] != first {
		t.Errorf("rewriting for the mode changed the content:\n%s", f.files["/etc/mohd/image-manifest.json"])
	}
}

func TestManifestReplacesInvalidJSON(t *testing.T) {
	registerRole(t, "db", roleInstall{})
	f := newFakeHost("0")
	f.files["/etc/mohd/image-manifest.json"] = "{not json"
	f.modes["/etc/mohd/image-manifest.json"] = "644 0 0"
	ui, out := testUi()
	if err := newProvisioner(t, validRaw(), t1).Provision(context.Background(), ui, f, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "The current manifest is not valid JSON") {
		t.Errorf("UI does not report the invalid manifest:\n%s", out)
	}
	var m Manifest
	if err := json.Unmarshal([]byte(f.files["/etc/mohd/image-manifest.json"]), &m); err != nil || m.Role != "db" || m.Packages == nil {
		t.Errorf("manifest not replaced: %v %+v", err, m)
	}
}

func TestExtraPackagesAllInstalledRunsNoAptGet(t *testing.T) {
	f := newFakeHost("0")
	ui, _ := testUi()
	h, err := connect(context.Background(), ui, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := installExtraPackages(context.Background(), h, []string{"sudo", "curl"}); err != nil {
		t.Fatal(err)
	}
	if len(f.commands) != 2 || !strings.HasPrefix(script(f.commands[1]), "dpkg-query -W") {
		t.Errorf("commands = %q, want only `id -u` and dpkg-query", f.commands)
	}
	if err := installExtraPackages(context.Background(), h, nil); err != nil || len(f.commands) != 2 {
		t.Errorf("no extra packages: err %v, %d commands", err, len(f.commands))
	}
}

func TestFailedStepNamesStepStatusAndOutputTail(t *testing.T) {
	registerRole(t, "nfs", roleInstall{})
	raw := validRaw()
	raw["role"] = "nfs"
	f := newFakeHost("0")
	var lines []string
	for i := 1; i <= 30; i++ {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	f.failures = []failure{{match: "cloud-init clean", status: 3, output: strings.Join(lines, "\n") + "\n"}}
	ui, _ := testUi()
	err := newProvisioner(t, raw, t1).Provision(context.Background(), ui, f, nil)
	if err == nil {
		t.Fatal("Provision succeeded although a step failed")
	}
	msg := err.Error()
	for _, want := range []string{
		`step "generalize: clean cloud-init" failed: the remote command exited with status 3; last 20 line(s) of its output:`,
		"\nline 11\n", "line 30",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "line 10\n") {
		t.Errorf("error quotes more than the last 20 lines:\n%s", msg)
	}
	if f.indexOf("apt-get clean") >= 0 {
		t.Error("steps after the failed one ran")
	}
}

func TestFailures(t *testing.T) {
	cases := []struct {
		name string
		uid  string
		f    failure
		want string
	}{
		{"id -u", "0", failure{"id -u", 255, ""}, `step "detect the remote user" failed: the remote command exited with status 255 and printed nothing`},
		{"id -u output", "0", failure{"id -u", 0, "uid=0(root)"}, "step \"detect the remote user\": `id -u` printed \"uid=0(root)\", not a user id"},
		{"sudo needs a password", "1000", failure{"sudo -n true", 1, "sudo: a password is required"}, `step "check passwordless sudo" failed: the remote command exited with status 1; last 1 line(s) of its output:
sudo: a password is required
(the communicator's user must be root or have passwordless sudo)`},
		{"dpkg-query status 1", "0", failure{"dpkg-query", 1, ""}, ""}, // only means "not installed"
		{"dpkg-query", "0", failure{"dpkg-query", 2, "dpkg-query: error: database locked"}, `step "extra_packages: check which are installed" failed: the remote command exited with status 2; last 1 line(s) of its output:
dpkg-query: error: database locked`},
		{"apt-get", "0", failure{"apt-get install", 100, "E: Unable to locate package jq"}, `step "extra_packages: apt-get install" failed: the remote command exited with status 100`},
		{"manifest move", "0", failure{`mv -f "$tmp" "$dst"`, 1, "/etc/mohd/image-manifest.json is a directory"}, `step "manifest: move into place" failed: the remote command exited with status 1; last 1 line(s) of its output:
/etc/mohd/image-manifest.json is a directory`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			registerRole(t, "db", roleInstall{})
			raw := validRaw()
			raw["extra_packages"] = []string{"jq"}
			f := newFakeHost(tc.uid)
			f.failures = []failure{tc.f}
			ui, _ := testUi()
			err := newProvisioner(t, raw, t1).Provision(context.Background(), ui, f, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Provision: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error\n  %v\nwant it to start with\n  %s", err, tc.want)
			}
		})
	}
}

func TestParseOSRelease(t *testing.T) {
	got := parseOSRelease(`# comment
ID=ubuntu
VERSION_ID='24.04'
PRETTY_NAME="Ubuntu 24.04 \"Noble\" \$x"
VERSION_CODENAME=noble
`)
	want := BaseOS{ID: "ubuntu", VersionID: "24.04", VersionCodename: "noble", PrettyName: `Ubuntu 24.04 "Noble" $x`}
	if got != want {
		t.Errorf("parseOSRelease = %+v, want %+v", got, want)
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote(`it's $HOME`); got != `'it'\''s $HOME'` {
		t.Errorf("shellQuote = %s", got)
	}
	if got := script("sudo -n sh -c " + shellQuote(`echo 'a' "$b"`)); got != `echo 'a' "$b"` {
		t.Errorf("round trip = %s", got)
	}
}
