#!/bin/sh
# MOHD: mounts the database's own disk at MariaDB's data directory /var/lib/mysql. Run by cloud-init's
# bootcmd, at every boot, before the login user and the SSH host keys exist (sshd starts after
# cloud-init's init stage): MOHD cannot reach the host, and so cannot configure MariaDB, before its data
# directory is the disk. The disk is formatted only when it carries nothing at all; a new, empty disk is
# initialized by MariaDB's own start (mohd-mariadb-prestart), a disk that already holds a data directory
# (a rebuilt server) is reused.
# Usage: sh -c "$script" mohd-data-disk '<glob of the disk under /dev/disk>'
set -eu
pattern="$1"
mnt=/var/lib/mysql

# MariaDB waits for the mount at every boot, and fails rather than start on the root disk without it.
dropin=/etc/systemd/system/mariadb.service.d/40-mohd-datadir.conf
if [ ! -f "$dropin" ]; then
	mkdir -p "${dropin%/*}"
	printf '# Written by cloud-init (MOHD): the data directory is the database disk.\n[Unit]\nRequiresMountsFor=%s\n' "$mnt" >"$dropin"
	systemctl daemon-reload
fi

if findmnt --mountpoint "$mnt" >/dev/null 2>&1; then
	exit 0
fi

# The disk may be attached after the server boots (OpenStack attaches volumes once the server runs).
dev=""
waited=0
while :; do
	for d in $pattern; do
		if [ -b "$d" ]; then
			dev=$(readlink -f "$d")
			break
		fi
	done
	[ -n "$dev" ] && break
	if [ "$waited" -ge 900 ]; then
		echo "mohd-data-disk: no disk matches $pattern after ${waited}s: is the database disk attached?" >&2
		exit 1
	fi
	sleep 3
	waited=$((waited + 3))
done

fstype=$(blkid -p -o value -s TYPE "$dev" 2>/dev/null || true)
case "$fstype" in
ext4 | xfs) ;;
"")
	# Nothing at all on it (no filesystem, partition table or other signature): a new disk.
	if blkid -p "$dev" >/dev/null 2>&1 || [ -n "$(lsblk -n -o NAME "$dev" | tail -n +2)" ]; then
		echo "mohd-data-disk: $dev holds partitions or an unknown signature: refusing to format it" >&2
		exit 1
	fi
	echo "mohd-data-disk: formatting the new disk $dev (ext4)" >&2
	mkfs.ext4 -q -L mohd-mysql "$dev"
	fstype=ext4
	;;
*)
	echo "mohd-data-disk: $dev holds $fstype, not a data directory's filesystem: refusing to use it" >&2
	exit 1
	;;
esac
uuid=$(blkid -p -o value -s UUID "$dev")

if systemctl is-active --quiet mariadb.service; then
	systemctl stop mariadb.service
fi
grep -q "^UUID=$uuid " /etc/fstab || echo "UUID=$uuid $mnt $fstype defaults,noatime,nofail 0 2" >>/etc/fstab
systemctl daemon-reload
mount "$mnt"
chown mysql:mysql "$mnt"
chmod 0755 "$mnt"
# Queued, not waited for: MariaDB is ordered after the boot stage this runs in.
systemctl start --no-block mariadb.service
echo "mohd-data-disk: $dev ($fstype, UUID $uuid) mounted at $mnt" >&2
