package roles

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// commonStep returns the common setup step whose description starts with prefix.
func commonStep(t *testing.T, prefix string) Step {
	t.Helper()
	for _, s := range commonSetup {
		if strings.HasPrefix(s.Desc, prefix) {
			return s
		}
	}
	t.Fatalf("no common setup step %q", prefix)
	return Step{}
}

// runStep runs a step's script with sh -eu, as Apply does, and returns its last line.
func runStep(t *testing.T, script string) string {
	t.Helper()
	cmd := exec.Command("sh", "-eu")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("step: %v: %s", err, out)
	}
	return lastLine(string(out))
}

// Debian 12's login.defs, the lines the step touches and those that look like them.
const debianLoginDefs = `# UMASK is the default umask value for pam_umask and is used by
# useradd and newusers to set the mode of the new home directories.
UMASK		022
#HOME_MODE	0700
PASS_MAX_DAYS	99999
PASS_MIN_DAYS	0
PASS_WARN_AGE	7
ENCRYPT_METHOD SHA512
#SHA_CRYPT_MIN_ROUNDS 5000
#SHA_CRYPT_MAX_ROUNDS 5000
`

// The login.defs step sets what it owns, leaves comments and every other line alone, and changes nothing
// the second time.
func TestCommonLoginDefsStep(t *testing.T) {
	f := t.TempDir() + "/login.defs"
	if err := os.WriteFile(f, []byte(debianLoginDefs), 0o644); err != nil {
		t.Fatal(err)
	}
	script := strings.ReplaceAll(commonStep(t, "login defaults").Script, "/etc/login.defs", f)
	if got := runStep(t, script); got != "changed" {
		t.Fatalf("first run: %q, want changed", got)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	defs := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if fields := strings.Fields(line); len(fields) == 2 && !strings.HasPrefix(line, "#") {
			defs[fields[0]] = append(defs[fields[0]], fields[1])
		}
	}
	for k, v := range map[string]string{
		"UMASK": "027", "PASS_MIN_DAYS": "1", "SHA_CRYPT_MIN_ROUNDS": "100000", "SHA_CRYPT_MAX_ROUNDS": "100000",
		// Never an expiry: an expired password blocks SSH key logins as well.
		"PASS_MAX_DAYS": "99999", "PASS_WARN_AGE": "7", "ENCRYPT_METHOD": "SHA512",
	} {
		if got := defs[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %v, want exactly one %s", k, got, v)
		}
	}
	for _, comment := range []string{"# UMASK is the default umask value", "#SHA_CRYPT_MIN_ROUNDS 5000", "#HOME_MODE\t0700"} {
		if !strings.Contains(string(b), comment) {
			t.Errorf("the comment %q is gone:\n%s", comment, b)
		}
	}
	if got := runStep(t, script); got != "" {
		t.Fatalf("second run: %q, want no change", got)
	}
}

// The common files: the idle-shell timeout is read-only and survives a second reading, fail2ban reads the
// journal, USBGuard blocks by default, and the Lynis profile skips nothing without a reason.
func TestCommonHardeningFiles(t *testing.T) {
	for _, hardening := range HardeningLevels {
		files := renderedFiles(t, "redis", Params{ClusterCIDR: "10.0.0.0/24", Hardening: hardening})
		text := func(path string) string {
			t.Helper()
			f, ok := files[path]
			if !ok {
				t.Fatalf("%s is not rendered", path)
			}
			return string(f.Content)
		}

		// MOHD's SSH transport opens up to 8 sessions on one connection.
		sshd := text("/etc/ssh/sshd_config.d/50-mohd-hardening.conf")
		if m := regexp.MustCompile(`(?m)^MaxSessions (\d+)$`).FindStringSubmatch(sshd); m != nil {
			if n, _ := strconv.Atoi(m[1]); n < 8 {
				t.Errorf("%s: MaxSessions %d: MOHD's transport needs 8", hardening, n)
			}
		}
		if !strings.Contains(sshd, "\nTCPKeepAlive no\n") || !strings.Contains(sshd, "\nClientAliveInterval 300\n") {
			t.Errorf("%s: sshd must probe dead peers with ClientAlive, not TCP keepalives:\n%s", hardening, sshd)
		}

		profile := text("/etc/profile.d/mohd-hardening.sh")
		for _, sh := range []string{"sh", "bash"} {
			if _, err := exec.LookPath(sh); err != nil {
				continue
			}
			// Read twice, as a login shell started from another login shell does.
			out, err := exec.Command(sh, "-c", profile+"\n"+profile+"\necho \"$TMOUT\" $(ulimit -c)").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "900 0" {
				t.Errorf("%s, %s: profile read twice: %v\n%s", hardening, sh, err, out)
			}
			// The timeout cannot be lifted.
			out, _ = exec.Command(sh, "-c", profile+"\nTMOUT=0\necho \"now $TMOUT\"").CombinedOutput()
			if strings.Contains(string(out), "now 0") {
				t.Errorf("%s, %s: TMOUT is writable:\n%s", hardening, sh, out)
			}
		}
		if !regexp.MustCompile(`(?m)^ulimit -c 0$`).MatchString(profile) {
			t.Errorf("no 'ulimit -c 0' line in the profile:\n%s", profile)
		}

		jail := text("/etc/fail2ban/jail.local")
		for _, want := range []string{"\nbackend = systemd\n", "\nbanaction = nftables-multiport\n", "[sshd]\nenabled = true\n"} {
			if !strings.Contains(jail, want) {
				t.Errorf("jail.local lacks %q:\n%s", want, jail)
			}
		}

		usb := text("/etc/usbguard/usbguard-daemon.conf")
		for _, want := range []string{"ImplicitPolicyTarget=block", "PresentDevicePolicy=apply-policy", "InsertedDevicePolicy=apply-policy", "RuleFolder=/etc/usbguard/rules.d/"} {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(usb) {
				t.Errorf("usbguard-daemon.conf lacks %s", want)
			}
		}
		for _, p := range []string{"/etc/usbguard/usbguard-daemon.conf", "/etc/usbguard/rules.d/50-mohd.conf"} {
			// usbguard-daemon refuses rule and configuration files others can read.
			if files[p].Mode != 0o600 {
				t.Errorf("%s: mode %o, want 600", p, files[p].Mode)
			}
		}

		// Every skipped Lynis test is preceded by the comment that says why.
		prf := strings.Split(text("/etc/lynis/custom.prf"), "\n")
		skips := 0
		for i, line := range prf {
			if !strings.HasPrefix(line, "skip-test=") {
				continue
			}
			skips++
			id := strings.TrimPrefix(line, "skip-test=")
			test, option, _ := strings.Cut(id, ":")
			why := false
			for j := i - 1; j >= 0 && strings.HasPrefix(prf[j], "#"); j-- {
				why = why || strings.HasPrefix(strings.ToLower(prf[j]), strings.ToLower("# "+test+" "+option+":"))
			}
			if !why {
				t.Errorf("custom.prf: %q is not under a comment \"# %s %s: why\"", line, test, option)
			}
		}
		if skips != 1 {
			t.Errorf("custom.prf skips %d tests; only SSH-7408's MaxSessions is required by MOHD", skips)
		}
	}
}

// Units MOHD adds or conditions: timers are enabled as services, and the daemons a container cannot run
// are skipped there, not failed.
func TestCommonUnits(t *testing.T) {
	files := renderedFiles(t, "redis", Params{ClusterCIDR: "10.0.0.0/24"})
	for _, timer := range []string{"mohd-debsums.timer", "mohd-acct-rotate.timer"} {
		if !contains(commonServices, timer) {
			t.Errorf("%s is not among the common services (it would never be enabled)", timer)
		}
		unit := "/etc/systemd/system/" + timer
		service := strings.TrimSuffix(unit, ".timer") + ".service"
		if _, ok := files[service]; !ok {
			t.Errorf("%s has no %s", timer, service)
		}
		if !strings.Contains(string(files[unit].Content), "\nWantedBy=timers.target\n") {
			t.Errorf("%s is not wanted by timers.target", timer)
		}
	}
	for unit, condition := range map[string]string{
		"auditd.service.d/50-mohd-container.conf": "ConditionVirtualization=!container",
		"acct.service.d/50-mohd-container.conf":   "ConditionVirtualization=!container",
		"usbguard.service.d/50-mohd.conf":         "ConditionPathIsDirectory=/sys/bus/usb/devices",
	} {
		f := files["/etc/systemd/system/"+unit]
		if !strings.Contains(string(f.Content), "[Unit]\n"+condition+"\n") {
			t.Errorf("%s lacks %s:\n%s", unit, condition, f.Content)
		}
	}
	for _, s := range commonSetup {
		if out, err := exec.Command("sh", "-n", "-c", s.Script).CombinedOutput(); err != nil {
			t.Errorf("step %q does not parse: %v\n%s", s.Desc, err, out)
		}
	}
}
