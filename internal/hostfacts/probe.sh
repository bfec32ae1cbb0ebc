# Prints a host's facts as key=value lines. It only reads: /etc/os-release, /proc, /sys, lsblk and df.
set -u
. /etc/os-release
echo "os_id=${ID:-}"
echo "os_version_id=${VERSION_ID:-}"
echo "os_pretty_name=${PRETTY_NAME:-}"
echo "hostname=$(hostname)"
echo "kernel=$(uname -r)"
echo "arch=$(uname -m)"
echo "cpus=$(nproc)"
echo "mem_total_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
# A VM's RAM is MemTotal; a container's is the smallest memory limit on its cgroup path (v1 or v2),
# which /proc/meminfo ignores. Walk from our own cgroup up to the root.
if [ -d /sys/fs/cgroup/memory ]; then
	base=/sys/fs/cgroup/memory file=memory.limit_in_bytes
	cg=$(awk -F: '$2=="memory" {print $3}' /proc/self/cgroup)
else
	base=/sys/fs/cgroup file=memory.max
	cg=$(sed -n 's/^0:://p' /proc/self/cgroup)
fi
limit=
while [ -n "$cg" ]; do
	if [ -r "$base$cg/$file" ]; then
		v=$(cat "$base$cg/$file")
		if [ "$v" != max ] && { [ -z "$limit" ] || [ "$v" -lt "$limit" ]; }; then limit=$v; fi
	fi
	[ "$cg" = / ] && break
	cg=${cg%/*}
	[ -n "$cg" ] || cg=/
done
[ -n "$limit" ] && echo "mem_limit_bytes=$limit"
echo "virtualization=$(systemd-detect-virt 2>/dev/null || echo none)"
if command -v lsblk >/dev/null 2>&1; then
	lsblk -b -d -n -r -o NAME,SIZE,ROTA,TYPE 2>/dev/null | awk '$4=="disk" {print "disk=" $1 " " $2 " " $3}'
fi
df -B1 -P -T -x tmpfs -x devtmpfs -x squashfs -x proc -x sysfs 2>/dev/null |
	awk 'NR>1 {print "fs=" $7 " " $2 " " $3 " " $5}'
# The role manifest that MOHD's Packer provisioner writes into every role image.
m=/etc/mohd/image-manifest.json
[ -r "$m" ] && echo "manifest=$(base64 -w0 "$m")"
exit 0
