#!/bin/sh
# Managed by MOHD (role web): sizes the Moodle PHP-FPM pool from this machine's memory. It runs at every
# boot (mohd-php-fpm-size.service, before php8.2-fpm.service), so an image never keeps the size of the
# machine it was built on, and a resized VM gets a pool that fits after its reboot.
#
#   memory            = the smaller of MemTotal and the lowest cgroup memory limit on our cgroup path
#                       (a container's limit, which /proc/meminfo ignores)
#   pm.max_children   = (memory - RESERVE_MB) / CHILD_MB, clamped to [MIN_CHILDREN, MAX_CHILDREN]
#   min_spare_servers = max(1, max_children / 8)
#   max_spare_servers = max(min_spare_servers + 1, max_children / 4)
#   start_servers     = (min_spare_servers + max_spare_servers) / 2
#
# RESERVE_MB (default 512) is what the rest of the machine needs: the OS, Apache, the exporters and
# OPcache's 128 MB shared memory. CHILD_MB (default 80) is the memory of one busy Moodle PHP process.
# Examples: 1 GiB -> 6, 2 GiB -> 19, 4 GiB -> 44, 8 GiB -> 96, 16 GiB and more -> 200.
# A site overrides these in /etc/default/mohd-php-fpm-size (RESERVE_MB=, CHILD_MB=, MIN_CHILDREN=,
# MAX_CHILDREN=), then: systemctl restart mohd-php-fpm-size php8.2-fpm
#
# Usage: mohd-php-fpm-size [--memory BYTES] [--stdout]
#   --memory BYTES  size for BYTES instead of this machine's memory; --stdout prints instead of writing.
set -eu

RESERVE_MB=${RESERVE_MB:-512}
CHILD_MB=${CHILD_MB:-80}
MIN_CHILDREN=${MIN_CHILDREN:-4}
MAX_CHILDREN=${MAX_CHILDREN:-200}
out={{.FPMSizeFile}}

memory= stdout=
while [ $# -gt 0 ]; do
	case $1 in
	--memory) memory=$2; shift 2 ;;
	--stdout) stdout=1; shift ;;
	*) echo "usage: $0 [--memory BYTES] [--stdout]" >&2; exit 2 ;;
	esac
done

for v in "$RESERVE_MB" "$CHILD_MB" "$MIN_CHILDREN" "$MAX_CHILDREN" ${memory:+"$memory"}; do
	case $v in '' | *[!0-9]*) echo "mohd-php-fpm-size: not a number: '$v'" >&2; exit 2 ;; esac
done
[ "$CHILD_MB" -gt 0 ] || { echo "mohd-php-fpm-size: CHILD_MB must be positive" >&2; exit 2; }

source=argument
if [ -z "$memory" ]; then
	source=MemTotal
	memory=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 1024 ))
	# cgroup v1 or v2: walk from our own cgroup up to the root and keep the lowest limit.
	if [ -d /sys/fs/cgroup/memory ]; then
		base=/sys/fs/cgroup/memory file=memory.limit_in_bytes
		cg=$(awk -F: '$2=="memory" {print $3}' /proc/self/cgroup)
	else
		base=/sys/fs/cgroup file=memory.max
		cg=$(sed -n 's/^0:://p' /proc/self/cgroup)
	fi
	while [ -n "$cg" ]; do
		if [ -r "$base$cg/$file" ]; then
			v=$(cat "$base$cg/$file")
			case $v in
			'' | max | *[!0-9]*) ;;
			*) if [ "$v" -lt "$memory" ]; then memory=$v source="cgroup limit"; fi ;;
			esac
		fi
		[ "$cg" = / ] && break
		cg=${cg%/*}
		[ -n "$cg" ] || cg=/
	done
fi

mb=$((memory / 1048576))
n=$(((mb - RESERVE_MB) / CHILD_MB))
[ "$n" -ge "$MIN_CHILDREN" ] || n=$MIN_CHILDREN
[ "$n" -le "$MAX_CHILDREN" ] || n=$MAX_CHILDREN
min=$((n / 8))
[ "$min" -ge 1 ] || min=1
max=$((n / 4))
[ "$max" -gt "$min" ] || max=$((min + 1))
[ "$max" -le "$n" ] || max=$n
start=$(((min + max) / 2))

conf="; Written by mohd-php-fpm-size at boot: do not edit (see /usr/local/lib/mohd/php-fpm-size).
; memory $mb MiB ($source), reserve $RESERVE_MB MiB, $CHILD_MB MiB per worker, clamped to [$MIN_CHILDREN, $MAX_CHILDREN]
[moodle]
pm.max_children = $n
pm.start_servers = $start
pm.min_spare_servers = $min
pm.max_spare_servers = $max"

if [ -n "$stdout" ]; then
	printf '%s\n' "$conf"
	exit 0
fi
# Rewritten only when it changes, and atomically: PHP-FPM may read it at any time.
if [ -f "$out" ] && [ "$(cat "$out")" = "$conf" ]; then
	echo "pm.max_children = $n (unchanged)"
	exit 0
fi
tmp=$(mktemp "$out.XXXXXX")
printf '%s\n' "$conf" >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
echo "pm.max_children = $n ($mb MiB, $source)"
