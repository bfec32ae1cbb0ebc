package roles

import (
	"fmt"
	"sort"
	"strings"
)

// What every role carries: the firewall, SSH and kernel hardening, security updates, auditing and process
// accounting, intrusion prevention (fail2ban), package integrity checks (debsums), USB device control
// (USBGuard), password quality rules, and the node exporter.
var (
	commonPackages = []string{
		"nftables", "unattended-upgrades", "apt-listchanges", "auditd", "apparmor", "libpam-tmpdir",
		"needrestart", "prometheus-node-exporter", "curl", "ca-certificates", "netbase",
		// fail2ban reads sshd's journal through python3-systemd (Debian 12 has no auth.log without syslog).
		"fail2ban", "python3-systemd", "debsums", "usbguard", "libpam-pwquality", "acct",
	}
	// Compilers and clear-text remote shells have no place on a server image.
	commonForbidden = []string{"build-essential", "gcc", "g++", "make", "telnet", "rsh-client", "rsh-server"}
	commonServices  = []string{"nftables", "ssh", "auditd", "unattended-upgrades", "prometheus-node-exporter",
		"fail2ban", "usbguard", "mohd-debsums.timer", "acct", "mohd-acct-rotate.timer"}
	commonPorts = []Port{
		{Port: 22, What: "SSH", Public: true},
		{Port: 9100, What: "node exporter"},
	}
)

// firewallData is what files/common/nftables.conf renders.
type firewallData struct {
	ClusterCIDR string
	Family      string // "ip" or "ip6": the address family of ClusterCIDR
	Public      []string
	Cluster     []string
	Role        string
}

// ports renders the role's and the common ports as nftables set elements ("tcp . 22"), public and cluster.
func (r *Role) ports() (public, cluster []string) {
	seen := map[string]bool{}
	for _, p := range append(append([]Port{}, commonPorts...), r.Ports...) {
		proto := p.Proto
		if proto == "" {
			proto = "tcp"
		}
		e := fmt.Sprintf("%s . %d", proto, p.Port)
		if seen[e] {
			continue
		}
		seen[e] = true
		if p.Public {
			public = append(public, e)
		} else {
			cluster = append(cluster, e)
		}
	}
	sort.Strings(public)
	sort.Strings(cluster)
	return public, cluster
}

func commonFiles(r *Role, p Params) ([]File, error) {
	public, cluster := r.ports()
	family := "ip"
	if strings.Contains(p.ClusterCIDR, ":") {
		family = "ip6"
	}
	fw := firewallData{ClusterCIDR: p.ClusterCIDR, Family: family, Public: public, Cluster: cluster, Role: r.Name}
	data := struct {
		Params
		Role     string
		Firewall firewallData
		Strict   bool
	}{p, r.Name, fw, p.Hardening == "strict"}
	return renderAll(data,
		// Reload, not restart: Debian's unit flushes the whole ruleset when it stops.
		fileSpec{Path: "/etc/nftables.conf", Template: "common/nftables.conf", Mode: 0o600, Reload: []string{"nftables"}},
		fileSpec{Path: "/etc/ssh/sshd_config.d/50-mohd-hardening.conf", Template: "common/sshd-hardening.conf", Reload: []string{"ssh"}},
		fileSpec{Path: "/etc/sysctl.d/90-mohd-hardening.conf", Template: "common/sysctl-hardening.conf", Restart: []string{"systemd-sysctl"}},
		fileSpec{Path: "/etc/apt/apt.conf.d/20auto-upgrades", Template: "common/20auto-upgrades"},
		fileSpec{Path: "/etc/security/limits.d/90-mohd-nocore.conf", Template: "common/limits-nocore.conf"},
		fileSpec{Path: "/etc/modprobe.d/90-mohd-blacklist.conf", Template: "common/modprobe-blacklist.conf"},
		fileSpec{Path: "/etc/issue", Template: "common/issue"},
		fileSpec{Path: "/etc/issue.net", Template: "common/issue"},
		fileSpec{Path: "/etc/audit/rules.d/50-mohd.rules", Template: "common/audit.rules", Mode: 0o640, Restart: []string{"auditd"}},
		// The kernel's audit subsystem is not namespaced: auditd cannot run in a container (the lab's hosts),
		// so it is skipped there, visibly (systemctl status says why), and runs on every VM.
		fileSpec{Path: "/etc/systemd/system/auditd.service.d/50-mohd-container.conf", Template: "common/auditd-container.conf", Restart: []string{"auditd"}},
		fileSpec{Path: "/etc/profile.d/mohd-hardening.sh", Template: "common/profile-hardening.sh"},
		fileSpec{Path: "/etc/systemd/coredump.conf.d/90-mohd.conf", Template: "common/coredump.conf"},
		fileSpec{Path: "/etc/security/pwquality.conf.d/90-mohd.conf", Template: "common/pwquality.conf"},
		// jail.local, not jail.d: fail2ban's own place for a site's settings, which package updates leave alone.
		fileSpec{Path: "/etc/fail2ban/jail.local", Template: "common/fail2ban-jail.local", Restart: []string{"fail2ban"}},
		fileSpec{Path: "/etc/systemd/system/mohd-debsums.service", Template: "common/debsums.service"},
		fileSpec{Path: "/etc/systemd/system/mohd-debsums.timer", Template: "common/debsums.timer", Restart: []string{"mohd-debsums.timer"}},
		// Process accounting (who ran what, for an investigation) is skipped in containers like auditd.
		fileSpec{Path: "/etc/systemd/system/acct.service.d/50-mohd-container.conf", Template: "common/acct-container.conf", Restart: []string{"acct"}},
		fileSpec{Path: "/etc/systemd/system/mohd-acct-rotate.service", Template: "common/acct-rotate.service"},
		fileSpec{Path: "/etc/systemd/system/mohd-acct-rotate.timer", Template: "common/acct-rotate.timer", Restart: []string{"mohd-acct-rotate.timer"}},
		fileSpec{Path: "/etc/usbguard/usbguard-daemon.conf", Template: "common/usbguard-daemon.conf", Mode: 0o600, Restart: []string{"usbguard"}},
		fileSpec{Path: "/etc/usbguard/rules.d/50-mohd.conf", Template: "common/usbguard-rules.conf", Mode: 0o600, Restart: []string{"usbguard"}},
		fileSpec{Path: "/etc/systemd/system/usbguard.service.d/50-mohd.conf", Template: "common/usbguard-service.conf", Restart: []string{"usbguard"}},
		// For whoever audits the host with Lynis: the one finding MOHD requires, and why.
		fileSpec{Path: "/etc/lynis/custom.prf", Template: "common/lynis-custom.prf"},
	)
}

// commonSetup runs before the role's own setup.
var commonSetup = []Step{
	{Desc: "login defaults: umask 027, password ageing and hashing", Script: `# Edited in place: login.defs is the login package's, and most of it stays Debian's.
# PASS_MAX_DAYS stays 99999: an expired password blocks SSH key logins too (pam_unix asks for a new password
# and there is no terminal), which would lock MOHD out of an image's cloud user a year after first boot.
f=/etc/login.defs
changed=
set_def() {
	grep -qE "^$1[[:space:]]+$2[[:space:]]*\$" "$f" && return 0
	if grep -qE "^$1[[:space:]]" "$f"; then
		sed -i -E "s/^$1[[:space:]].*/$1	$2/" "$f"
	else
		printf '%s	%s
' "$1" "$2" >>"$f"
	fi
	changed=1
}
set_def UMASK 027
set_def PASS_MIN_DAYS 1
set_def SHA_CRYPT_MIN_ROUNDS 100000
set_def SHA_CRYPT_MAX_ROUNDS 100000
[ -z "$changed" ] || echo changed`},
	{Desc: "the assembler is for root only", Script: `# binutils comes with needrestart; nothing on a server assembles code, least of all a service's user.
# dpkg-statoverride keeps the mode through package upgrades.
f=$(readlink -f /usr/bin/as || true)
[ -n "$f" ] && [ -e "$f" ] || exit 0
if ! dpkg-statoverride --list "$f" >/dev/null; then
	dpkg-statoverride --update --add root root 0750 "$f"
	echo changed
fi`},
}

// commonChecks are the checks every role passes.
func commonChecks(r *Role) []Step {
	forbidden := append(append([]string{}, commonForbidden...), r.Forbidden...)
	services := append(append([]string{}, commonServices...), r.Services...)
	return []Step{
		{Desc: "sshd configuration is valid and hardened", Script: `sshd -t
sshd -T | grep -qx 'permitrootlogin no' || { echo "sshd permits root login" >&2; exit 1; }
sshd -T | grep -qx 'passwordauthentication no' || { echo "sshd permits passwords" >&2; exit 1; }`},
		{Desc: "fail2ban guards SSH", Script: `fail2ban-client status sshd >/dev/null || { echo "fail2ban has no sshd jail: fail2ban-client status sshd" >&2; exit 1; }`},
		{Desc: "the firewall drops by default", Script: `nft list chain inet mohd input | grep -q 'policy drop' || { echo "no default-deny input chain loaded" >&2; exit 1; }`},
		{Desc: "services are enabled and running", Script: servicesCheck(services)},
		{Desc: "forbidden packages are absent", Script: fmt.Sprintf(`bad=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' %s 2>/dev/null | awk '$1=="ii" {print $2}')
[ -z "$bad" ] || { echo "installed but forbidden: $bad" >&2; exit 1; }`, quoteAll(forbidden))},
	}
}

// servicesCheck fails for a service that is not enabled, or not active although its unit's conditions hold.
func servicesCheck(services []string) string {
	return fmt.Sprintf(`fail=
for s in %s; do
	systemctl is-enabled --quiet "$s" || { echo "$s is not enabled" >&2; fail=1; continue; }
	systemctl is-active --quiet "$s" && continue
	[ "$(systemctl show -p ConditionResult --value "$s")" = no ] && continue
	echo "$s is $(systemctl is-active "$s")" >&2; fail=1
done
[ -z "$fail" ]`, quoteAll(services))
}
