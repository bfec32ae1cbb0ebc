package roles

// The nfs role serves Moodle's shared data directory with NFS-Ganesha, a user-space NFS server, on every
// platform: VMs and the lab's containers alike (their kernel has no nfsd), so that the lab tests the server
// that production runs. It serves NFSv3, as the original deployment, and NFSv4.0-4.2. The kernel's server
// (nfs-kernel-server) would be an alternative on VMs; files/nfs/ganesha.conf says how.
//
// In a container, Ganesha's VFS backend needs CAP_SYS_ADMIN (name_to_handle_at under Docker's seccomp
// profile) and CAP_DAC_READ_SEARCH (open_by_handle_at): lab hosts are started with both
// (docs/lab-capabilities.md). VMs run it as root with every capability.

// nfsExportDir is moodledata on the server: owned by www-data (uid/gid 33 on Debian), as Moodle writes it.
const nfsExportDir = "/srv/moodledata"

func init() {
	register(&Role{
		Name:    "nfs",
		Summary: "NFS server (NFS-Ganesha) exporting moodledata to the cluster over NFSv3 and NFSv4",
		// rpcbind for v3 (MOUNT, NLM, statd); libnfs-utils lets the checks list the export without a kernel
		// NFS client.
		Packages:    []string{"nfs-ganesha", "nfs-ganesha-vfs", "rpcbind", "libnfs-utils"},
		KeyPackages: []string{"nfs-ganesha", "nfs-ganesha-vfs"},
		// The kernel's server would take port 2049 from Ganesha.
		Forbidden: []string{"nfs-kernel-server"},
		Ports: []Port{
			{Port: 2049, What: "NFS"},
			{Port: 111, What: "rpcbind (NFSv3)"},
			{Port: 111, Proto: "udp", What: "rpcbind (NFSv3)"},
			{Port: 20048, What: "NFSv3 MOUNT"},
			{Port: 32803, What: "NFSv3 locks (NLM)"},
			{Port: 32765, What: "rpc.statd (NFSv3 lock recovery)"},
			{Port: 32765, Proto: "udp", What: "rpc.statd (NFSv3 lock recovery)"},
		},
		Files: func(p Params) ([]File, error) {
			return renderAll(p,
				fileSpec{Path: "/etc/ganesha/ganesha.conf", Template: "nfs/ganesha.conf", Restart: []string{"nfs-ganesha"}},
				fileSpec{Path: "/etc/nfs.conf.d/mohd-statd.conf", Template: "nfs/mohd-statd.conf", Restart: []string{"nfs-ganesha-lock"}},
				fileSpec{Path: "/etc/systemd/system/nfs-ganesha.service.d/50-mohd.conf", Template: "nfs/nfs-ganesha.service.conf",
					Restart: []string{"nfs-ganesha"}},
			)
		},
		Setup: []Step{
			// Never recursive: on a converged host the directory holds the site's data.
			{Desc: "moodledata " + nfsExportDir + " (www-data, 2770)", Script: `d=` + nfsExportDir + `
changed=
[ -d "$d" ] || { mkdir -p "$d"; changed=1; }
[ "$(stat -c '%u:%g' "$d")" = 33:33 ] || { chown 33:33 "$d"; changed=1; }
[ "$(stat -c '%a' "$d")" = 2770 ] || { chmod 2770 "$d"; changed=1; }
[ -z "$changed" ] || echo changed`},
		},
		// In this order: Ganesha registers its ports with rpcbind and talks to rpc.statd (nfs-ganesha-lock).
		Services: []string{"rpcbind", "nfs-ganesha-lock", "nfs-ganesha"},
		Checks: []Step{
			{Desc: "moodledata belongs to www-data", Script: `test "$(stat -c '%u:%g %a' ` + nfsExportDir + `)" = "33:33 2770"`},
			{Desc: "NFS-Ganesha listens on 2049", Script: `ss -Hltn 'sport = :2049' | grep -q .`},
			{Desc: "rpcbind maps NFS, MOUNT, NLM and statd to their fixed ports", Script: `m=$(rpcinfo -p)
fail=
for want in '100003 3 tcp 2049' '100003 4 tcp 2049' '100005 3 tcp 20048' '100021 4 tcp 32803' '100024 1 tcp 32765'; do
	echo "$m" | awk '{print $1, $2, $3, $4}' | grep -qx "$want" || { echo "rpcbind has no '$want' (program version proto port)" >&2; fail=1; }
done
[ -z "$fail" ] || { echo "$m" >&2; exit 1; }`},
			// Ganesha loads its export just after it starts: retry for a while.
			{Desc: "the export answers NFSv3 and NFSv4 on the loopback address", Script: `for v in 3 4; do
	i=0
	until out=$(nfs-ls "nfs://127.0.0.1/moodledata?uid=33&gid=33&version=$v" 2>&1); do
		i=$((i + 1))
		if [ "$i" -ge 20 ]; then
			echo "nfs-ls over NFSv$v: $out" >&2
			bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
			[ $(( 0x$bnd >> 2 & 1 )) = 1 ] || echo "this host lacks CAP_DAC_READ_SEARCH, which NFS-Ganesha's VFS backend needs (a container: add it)" >&2
			exit 1
		fi
		sleep 1
	done
done`},
		},
	})
}
