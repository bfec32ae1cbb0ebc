package role

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// dpkgQueryFormat prints one line per package that dpkg knows: name, status abbreviation ("ii " when
// installed) and version.
const dpkgQueryFormat = `${Package}\t${db:Status-Abbrev}\t${Version}\n`

// queryPackages returns the installed version of each of pkgs that is installed. dpkg-query needs no root.
func queryPackages(ctx context.Context, h *host, step string, pkgs []string) (map[string]string, error) {
	installed := map[string]string{}
	if len(pkgs) == 0 {
		return installed, nil
	}
	// dpkg-query exits 1 when a package is unknown to dpkg: that only means "not installed".
	out, err := h.user(ctx, step, "dpkg-query -W -f="+shellQuote(dpkgQueryFormat)+" "+shellQuoteAll(pkgs),
		runOpts{okStatus: []int{1}})
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || len(f[1]) < 2 {
			continue
		}
		// The status abbreviation's second letter is the package's state: i = installed.
		if f[1][1] == 'i' && slices.Contains(pkgs, f[0]) {
			installed[f[0]] = f[2]
		}
	}
	return installed, nil
}

// installExtraPackages installs those of pkgs that are not installed yet; when all are, it runs no apt-get.
func installExtraPackages(ctx context.Context, h *host, pkgs []string) error {
	pkgs = unique(pkgs)
	if len(pkgs) == 0 {
		return nil
	}
	h.ui.Say("Installing extra packages: " + strings.Join(pkgs, ", "))
	installed, err := queryPackages(ctx, h, "extra_packages: check which are installed", pkgs)
	if err != nil {
		return err
	}
	var missing []string
	for _, p := range pkgs {
		if _, ok := installed[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		h.ui.Say("All extra packages are installed already: nothing to do")
		return nil
	}
	if n := len(pkgs) - len(missing); n > 0 {
		h.ui.Say(fmt.Sprintf("%d of them installed already; installing %s", n, strings.Join(missing, ", ")))
	}
	// The package lists may have been removed by an earlier generalization: update them first.
	script := "export DEBIAN_FRONTEND=noninteractive\n" +
		"apt-get update -q\n" +
		"apt-get install -y -q --no-install-recommends" +
		" -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold " + shellQuoteAll(missing)
	if _, err := h.root(ctx, "extra_packages: apt-get install", "set -e\n"+script, runOpts{stream: true}); err != nil {
		return err
	}
	return nil
}

// generalizeSteps make the machine an image: no host identity, no caches, no logs. Each is idempotent.
var generalizeSteps = []struct{ name, script string }{
	{"remove the SSH host keys", "rm -f /etc/ssh/ssh_host_*"},
	// Empty, not absent: systemd then treats the clone's first boot as a first boot and creates a new id.
	{"empty /etc/machine-id", "if [ -e /etc/machine-id ]; then truncate -s 0 /etc/machine-id; fi"},
	{"remove /var/lib/dbus/machine-id", "rm -f /var/lib/dbus/machine-id"},
	{"clean cloud-init", "if command -v cloud-init >/dev/null 2>&1; then cloud-init clean --logs; " +
		"else echo 'cloud-init is not installed: nothing to clean'; fi"},
	{"apt-get clean", "apt-get clean"},
	{"remove the apt package lists", "rm -rf /var/lib/apt/lists/*"},
	// Rotated logs go; the others are truncated, not removed, since daemons keep them open. The systemd
	// journal's files are removed instead: journald maps them, and an emptied journal file is corrupt.
	{"truncate the logs in /var/log", "find /var/log -type f \\( -name '*.gz' -o -name '*.xz' -o -name '*.[0-9]' -o -name '*.old' \\) -delete\n" +
		"if [ -d /var/log/journal ]; then find /var/log/journal -type f -name '*.journal*' -delete; fi\n" +
		"find /var/log -path /var/log/journal -prune -o -type f -exec truncate -s 0 {} +"},
}

// generalize removes what makes the machine this machine, so that each clone of the image gets its own
// identity (SSH host keys, machine-id, cloud-init state) and the image carries no caches or logs.
func generalize(ctx context.Context, h *host) error {
	h.ui.Say("Generalizing the machine before capture")
	for _, s := range generalizeSteps {
		h.ui.Say("Generalize: " + s.name)
		if _, err := h.root(ctx, "generalize: "+s.name, "set -e\n"+s.script, runOpts{stream: true}); err != nil {
			return err
		}
	}
	return nil
}

func unique(list []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
