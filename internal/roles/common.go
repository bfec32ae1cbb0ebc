package roles

import (
	"fmt"
	"sort"
	"strings"
)

// What every role carries: the firewall, SSH and kernel hardening, security updates, auditing, and the
// node exporter.
var (
	commonPackages = []string{
		"nftables", "unattended-upgrades", "apt-listchanges", "auditd", "apparmor", "libpam-tmpdir",
		"needrestart", "prometheus-node-exporter", "curl", "ca-certificates", "netbase",
	}
	// Compilers and clear-text remote shells have no place on a server image.
	commonForbidden = []string{"build-essential", "gcc", "g++", "make", "telnet", "rsh-client", "rsh-server"}
	commonServices  = []string{"nftables", "ssh", "auditd", "unattended-upgrades", "prometheus-node-exporter"}
	commonPorts     = []Port{
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
	)
}

// commonChecks are the checks every role passes.
func commonChecks(r *Role) []Step {
	forbidden := append(append([]string{}, commonForbidden...), r.Forbidden...)
	services := append(append([]string{}, commonServices...), r.Services...)
	return []Step{
		{Desc: "sshd configuration is valid and hardened", Script: `sshd -t
sshd -T | grep -qx 'permitrootlogin no' || { echo "sshd permits root login" >&2; exit 1; }
sshd -T | grep -qx 'passwordauthentication no' || { echo "sshd permits passwords" >&2; exit 1; }`},
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
