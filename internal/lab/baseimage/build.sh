#!/usr/bin/env bash
# Builds the lab's base image: Debian 12 as a cloud image would ship it (a non-root "debian" user with
# passwordless sudo, OpenSSH with host keys generated at first boot, systemd as PID 1), then imports it.
#   build.sh IMAGE_TAG FILES_DIR
# The Debian mirror comes from this machine's own apt sources (MOHD_DEBIAN_MIRROR overrides it).
set -euo pipefail
tag=$1 files=$2
mirror=${MOHD_DEBIAN_MIRROR:-$(sed -n 's/^URIs:[[:space:]]*\([^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
[ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "no Debian mirror found in this machine's apt sources; set MOHD_DEBIAN_MIRROR" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }

work=$(mktemp -d /var/tmp/mohd-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
echo "==> base image: debootstrap bookworm from $mirror"
debootstrap --variant=minbase \
	--include=systemd,systemd-sysv,dbus,openssh-server,sudo,iproute2,iputils-ping,ca-certificates,procps,less,nftables,python3-minimal \
	bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log" >&2; exit 1; }

# Apt sources as on this machine (main + security + updates), so images can take security updates.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
	cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
	rm -f "$rootfs/etc/apt/sources.list"
fi

install -m 0644 "$files/mohd-firstboot.service" "$rootfs/etc/systemd/system/mohd-firstboot.service"
install -m 0755 "$files/mohd-firstboot" "$rootfs/usr/local/sbin/mohd-firstboot"
install -m 0644 "$files/sshd-mohd.conf" "$rootfs/etc/ssh/sshd_config.d/10-mohd-base.conf"

chroot "$rootfs" /bin/sh -eux <<'CHROOT'
useradd --create-home --shell /bin/bash --groups sudo debian
passwd --lock debian
echo 'debian ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-cloud-user
chmod 0440 /etc/sudoers.d/90-cloud-user
systemctl enable mohd-firstboot.service ssh.service
# Units that make no sense in a container or would fight the engine.
systemctl mask getty@tty1.service console-getty.service systemd-resolved.service systemd-timesyncd.service \
	systemd-networkd-wait-online.service 2>/dev/null || true
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/* /var/log/*.log /var/cache/debconf/*-old
CHROOT

echo "==> base image: importing as $tag"
tar --numeric-owner -C "$rootfs" -c . | docker import \
	-c 'CMD ["/sbin/init"]' -c 'ENV container=docker' \
	-c "LABEL org.mohd.image=base" - "$tag" >/dev/null
