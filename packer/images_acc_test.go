package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/acctest"
	"golang.org/x/crypto/ssh"

	"github.com/mohd-dev/mohd/internal/imagemanifest"
	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/roles"
	"github.com/mohd-dev/mohd/packer/version"
)

// lynisTarget is the Lynis hardening index every role image must reach: a role below it fails the test
// (the untouched base image is audited beside them for comparison only).
const lynisTarget = 80

// TestAccRoleImages bakes every role of the library with Packer as `mohd-lab role-images` does (reusing the
// images whose recipe hash the engine has), boots each image in the lab, twice, and checks what a role image
// promises: the manifest names the role, the role's checks pass on a clone, the firewall drops what the role
// does not serve, SSH takes neither passwords nor root, and each clone has its own host keys and machine-id.
// Lynis then audits one clone of each role and a host of the untouched base image; the table of hardening
// indexes is logged and written to lynis.md in the test's artifact directory (go test -artifacts keeps it),
// and a role whose index is below lynisTarget fails the test.
//
//	PACKER_ACC=1 go test -count=1 -run TestAccRoleImages -v -timeout 60m ./packer
func TestAccRoleImages(t *testing.T) {
	if os.Getenv(acctest.TestEnvVar) == "" {
		t.Skipf("Acceptance tests skipped unless env '%s' set", acctest.TestEnvVar)
	}
	if testing.Short() {
		t.Skip("needs the Docker engine and builds images")
	}
	lynis := lynisFiles(t)
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Minute)
	defer cancel()

	names := roles.Names()
	start := time.Now()
	images, err := lab.EnsureRoleImages(ctx, lab.RoleImageOptions{
		Roles:    names,
		Progress: func(s string) { t.Log("lab: " + s) },
		Output:   &logWriter{t: t},
	})
	if err != nil {
		t.Fatal(err)
	}
	var builds strings.Builder
	fmt.Fprintf(&builds, "role images (recipe %s), ready in %s:\n", images[0].Hash, time.Since(start).Round(time.Second))
	for _, img := range images {
		d := "reused"
		if img.Built {
			d = "built in " + img.Duration.Round(time.Second).String()
		}
		fmt.Fprintf(&builds, "  %-11s %s  %s\n", img.Role, img.Ref, d)
	}
	t.Log(builds.String())

	for _, img := range images {
		t.Run("image-"+img.Role, func(t *testing.T) { checkImageIsGeneralized(t, img) })
	}

	l := labtest.New(t)
	base := labtest.Start(t, l, lab.HostSpec{Name: "base"})[0]
	var results []lynisResult
	results = append(results, runLynis(t, base, "base image (untouched)", lynis))

	for _, img := range images {
		t.Run(img.Role, func(t *testing.T) {
			r, err := roles.Get(img.Role)
			if err != nil {
				t.Fatal(err)
			}
			clones := labtest.Start(t, l, lab.RoleHostSpec(img.Role+"-a", img), lab.RoleHostSpec(img.Role+"-b", img))
			a, b := clones[0], clones[1]
			defer func() {
				for _, h := range clones {
					_ = h.Stop(context.Background()) // frees the CPUs for the next role; the lab removes them
				}
			}()
			waitBooted(t, a)

			t.Run("manifest", func(t *testing.T) {
				raw := labtest.Exec(t, a, "cat "+imagemanifest.Path)
				m, err := imagemanifest.Decode([]byte(raw))
				if err != nil {
					t.Fatal(err)
				}
				if m.Role != img.Role || m.ClusterCIDR != lab.ClusterCIDR || m.PluginVersion != version.Version || m.BaseOS.VersionID != "12" || len(m.Packages) == 0 {
					t.Errorf("manifest of %s:\n%s", img.Ref, raw)
				}
			})
			t.Run("checks", func(t *testing.T) {
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Minute)
				defer ccancel()
				if err := roles.Check(cctx, labtest.Remote(t, a), r); err != nil {
					state, _ := a.Exec(context.Background(), "systemctl is-system-running; systemctl --failed --no-legend")
					t.Fatalf("%v\nsystemd: %s", err, state)
				}
			})
			t.Run("firewall", func(t *testing.T) { checkFirewall(t, a, base) })
			t.Run("ssh", func(t *testing.T) { checkSSH(t, a) })
			t.Run("identity", func(t *testing.T) {
				ids := map[string]string{}
				for _, h := range clones {
					if h != a {
						waitBooted(t, h)
					}
					id := labtest.Exec(t, h, "cat /etc/machine-id")
					if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
						t.Errorf("%s: machine-id %q", h.Name, id)
					}
					ids[h.Name] = id
				}
				if a.HostKey == "" || a.HostKey == b.HostKey {
					t.Errorf("the two clones have the same SSH host key: %s", a.HostKey)
				}
				if ids[a.Name] == ids[b.Name] {
					t.Errorf("the two clones have the same machine-id %s", ids[a.Name])
				}
				for _, kind := range []string{"rsa", "ecdsa", "ed25519"} {
					f := "/etc/ssh/ssh_host_" + kind + "_key.pub"
					if ka, kb := labtest.Exec(t, a, "cat "+f), labtest.Exec(t, b, "cat "+f); ka == kb {
						t.Errorf("%s is the same on both clones", f)
					}
				}
			})
			results = append(results, runLynis(t, a, img.Role, lynis))
		})
	}
	reportLynis(t, results)
}

// checkImageIsGeneralized looks inside the image itself (a container that runs no init): no host keys, an
// empty machine-id, no apt lists, and the labels the template sets.
func checkImageIsGeneralized(t *testing.T, img lab.RoleImage) {
	out, err := exec.Command("docker", "run", "--rm", "--label", lab.Label+"=images-acc", "--entrypoint", "sh", img.Ref, "-c",
		"ls /etc/ssh | grep -c '^ssh_host_' || true; wc -c < /etc/machine-id; ls -A /var/lib/apt/lists | wc -l; find /var/log -type f -size +0 | wc -l").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run %s: %v\n%s", img.Ref, err, out)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "0 0 0 0" {
		t.Errorf("%s: host keys, machine-id bytes, apt lists, non-empty log files = %q, want 0 0 0 0", img.Ref, got)
	}
	labels, err := exec.Command("docker", "image", "inspect", "--format",
		`{{index .Config.Labels "org.mohd.role"}} {{index .Config.Labels "org.mohd.recipe"}} {{json .Config.Cmd}}`, img.Ref).CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if want := img.Role + " " + img.Hash + ` ["/sbin/init"]`; strings.TrimSpace(string(labels)) != want {
		t.Errorf("%s: labels and command %q, want %q", img.Ref, strings.TrimSpace(string(labels)), want)
	}
}

// waitBooted waits until systemd on h has finished booting (the role's services are up, or failed).
func waitBooted(t *testing.T, h *lab.Host) {
	t.Helper()
	state, _ := h.Exec(context.Background(), "timeout 180 systemctl is-system-running --wait || true")
	if state != "running" {
		failed, _ := h.Exec(context.Background(), "systemctl --failed --no-legend --plain")
		t.Logf("%s booted %s; failed units: %s", h.Name, state, failed)
	}
}

// checkFirewall: from a peer in the cluster network, SSH and a cluster port (the node exporter) answer, and a
// port the role does not serve is dropped although something listens on it.
func checkFirewall(t *testing.T, h, peer *lab.Host) {
	labtest.Exec(t, h, `cat > /run/mohd-probe.py <<'EOF'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9999))
s.listen(16)
while True:
    c, _ = s.accept()
    c.sendall(b"probe\n")
    c.close()
EOF
systemd-run --unit=mohd-acc-probe --collect python3 /run/mohd-probe.py >/dev/null`)
	defer func() { _, _ = h.Exec(context.Background(), "systemctl stop mohd-acc-probe") }()
	labtest.Exec(t, h, `for i in $(seq 50); do timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9999' 2>/dev/null && exit 0; sleep 0.2; done; echo "nothing listens on 9999" >&2; exit 1`)
	probe := func(port int) string {
		return labtest.Exec(t, peer, fmt.Sprintf(`timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%d' 2>/dev/null && echo open || echo closed`, h.Addr, port))
	}
	if got := probe(22); got != "open" {
		t.Errorf("SSH (22) is %s from %s", got, peer.Name)
	}
	if got := probe(9100); got != "open" {
		t.Errorf("the node exporter (9100, a cluster port) is %s from %s in the cluster network", got, peer.Name)
	}
	if got := probe(9999); got != "closed" {
		t.Errorf("port 9999, which the role does not serve, is %s from %s: the firewall does not drop by default", got, peer.Name)
	}
}

// checkSSH: the cloud user gets in with its key; root does not, even with an authorized key; passwords are
// not even offered.
func checkSSH(t *testing.T, h *lab.Host) {
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h.HostKey))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(h.PrivateKey())
	if err != nil {
		t.Fatal(err)
	}
	dial := func(user string, auth ...ssh.AuthMethod) error {
		c, err := ssh.Dial("tcp", h.Endpoint(), &ssh.ClientConfig{
			User: user, Auth: auth, HostKeyCallback: ssh.FixedHostKey(hostKey), Timeout: 10 * time.Second,
			// The lab knows the host's ed25519 key: ask for that one, not the first the server offers.
			HostKeyAlgorithms: []string{hostKey.Type()},
		})
		if err == nil {
			_ = c.Close()
		}
		return err
	}
	if err := dial(h.User, ssh.PublicKeys(signer)); err != nil {
		t.Fatalf("the cloud user %s cannot log in with its key: %v", h.User, err)
	}

	labtest.Exec(t, h, "install -d -m 0700 /root/.ssh && install -m 0600 /home/"+h.User+"/.ssh/authorized_keys /root/.ssh/authorized_keys")
	defer func() { _, _ = h.Exec(context.Background(), "rm -rf /root/.ssh") }()
	if err := dial("root", ssh.PublicKeys(signer)); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("root with an authorized key: %v, want the login refused", err)
	}

	asked := false
	password := ssh.PasswordCallback(func() (string, error) { asked = true; return "debian", nil })
	interactive := ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
		asked = true
		return nil, errors.New("no")
	})
	for _, user := range []string{h.User, "root"} {
		if err := dial(user, password, interactive); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("%s with a password: %v, want the login refused", user, err)
		}
	}
	if asked {
		t.Error("sshd offered password or keyboard-interactive authentication")
	}
}

// lynisDirs are what Lynis is made of on this machine (Debian's package): copied into a booted clone, so that
// the image is audited as it is, without an apt-get install in it.
var lynisDirs = []string{"/usr/sbin/lynis", "/usr/share/lynis", "/etc/lynis"}

func lynisFiles(t *testing.T) []string {
	t.Helper()
	for _, p := range lynisDirs {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("Lynis is not installed on this machine (%v): apt-get install lynis", err)
		}
	}
	return lynisDirs
}

type lynisResult struct {
	Host        string
	Index       int
	Tests       int
	Warnings    []string
	Suggestions []string
	Duration    time.Duration
}

// runLynis copies Lynis into h and audits it, returning the hardening index and the findings.
func runLynis(t *testing.T, h *lab.Host, label string, files []string) lynisResult {
	t.Helper()
	for _, p := range files {
		src := p
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			// The contents, into the directory: a role image has /etc/lynis already (its custom.prf), and
			// `docker cp DIR` would then nest the copy as /etc/lynis/lynis.
			labtest.Exec(t, h, "mkdir -p "+p)
			src = p + "/."
		}
		if out, err := exec.Command("docker", "cp", src, h.Container+":"+p).CombinedOutput(); err != nil {
			t.Fatalf("docker cp %s: %v\n%s", p, err, out)
		}
	}
	start := time.Now()
	out, err := h.Exec(context.Background(), "cd /usr/share/lynis && lynis audit system --cronjob >/var/tmp/lynis.out 2>&1; cat /var/log/lynis-report.dat")
	res := lynisResult{Host: label, Index: -1, Duration: time.Since(start)}
	if err != nil {
		tail, _ := h.Exec(context.Background(), "tail -20 /var/tmp/lynis.out")
		t.Errorf("lynis on %s: %v\n%s", h.Name, err, tail)
		return res
	}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "hardening_index":
			res.Index, _ = strconv.Atoi(v)
		case "lynis_tests_done":
			res.Tests, _ = strconv.Atoi(v)
		case "warning[]":
			res.Warnings = append(res.Warnings, finding(v))
		case "suggestion[]":
			res.Suggestions = append(res.Suggestions, finding(v))
		}
	}
	if res.Index < 0 {
		// The report lacks it: the screen output has "Hardening index : N".
		screen, _ := h.Exec(context.Background(), "cat /var/tmp/lynis.out")
		if m := regexp.MustCompile(`Hardening index : (\d+)`).FindStringSubmatch(screen); m != nil {
			res.Index, _ = strconv.Atoi(m[1])
		} else {
			t.Errorf("lynis on %s printed no hardening index:\n%s", h.Name, screen)
		}
	}
	t.Logf("Lynis on %s (%s): hardening index %d, %d tests, %d warnings, %d suggestions, in %s",
		h.Name, label, res.Index, res.Tests, len(res.Warnings), len(res.Suggestions), res.Duration.Round(time.Second))
	return res
}

// finding renders a report.dat finding "ID|text|details|solution|" as "ID: text (details)".
func finding(v string) string {
	f := strings.Split(v, "|")
	s := f[0]
	if len(f) > 1 {
		s += ": " + f[1]
	}
	if len(f) > 2 && f[2] != "" && f[2] != "-" {
		s += " (" + f[2] + ")"
	}
	return s
}

// reportLynis logs the table of hardening indexes and writes it, with each role's findings, to lynis.md in
// the test's artifact directory.
func reportLynis(t *testing.T, results []lynisResult) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Lynis hardening index (target %d)\n\n| host | hardening index | tests | warnings | suggestions |\n|---|---|---|---|---|\n", lynisTarget)
	for _, r := range results {
		mark := ""
		if r.Index < lynisTarget && !strings.HasPrefix(r.Host, "base") {
			mark = " (below target)"
		}
		fmt.Fprintf(&b, "| %s | %d%s | %d | %d | %d |\n", r.Host, r.Index, mark, r.Tests, len(r.Warnings), len(r.Suggestions))
	}
	for _, r := range results {
		fmt.Fprintf(&b, "\n## %s: %d\n", r.Host, r.Index)
		for _, w := range r.Warnings {
			fmt.Fprintf(&b, "- warning %s\n", w)
		}
		s := append([]string(nil), r.Suggestions...)
		sort.Strings(s)
		for _, x := range s {
			fmt.Fprintf(&b, "- %s\n", x)
		}
	}
	path := filepath.Join(t.ArtifactDir(), "lynis.md")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Error(err)
	}
	t.Logf("Lynis report (%s):\n%s", path, b.String())
	for _, r := range results {
		if !strings.HasPrefix(r.Host, "base") && r.Index < lynisTarget {
			t.Errorf("role %s: Lynis hardening index %d, below the target %d (its findings are in the report above)", r.Host, r.Index, lynisTarget)
		}
	}
}

// logWriter sends Packer's output to the test log, line by line.
type logWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}
