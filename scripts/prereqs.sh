#!/usr/bin/env bash
# Installs the Debian packages MOHD's build and lab need, when missing, and checks the Docker engine.
# Needs root for apt-get (CI and the build machines run as root); otherwise it says what to install.
set -euo pipefail
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v git >/dev/null || need+=(git)
command -v make >/dev/null || need+=(make)
# Lynis audits the role images in their acceptance test (the hardening index of each role).
command -v lynis >/dev/null || need+=(lynis)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "prereqs: missing Debian packages: ${need[*]} (apt-get install ${need[*]})" >&2
		exit 1
	fi
	echo "==> prereqs: apt-get install ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "prereqs: Go is not on PATH (https://go.dev/doc/install; go.mod names the version)" >&2; exit 1; }
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
	{ echo "prereqs: no Docker engine answers (the lab runs its hosts as containers): start dockerd" >&2; exit 1; }
# Every lab host runs systemd, journald, fail2ban... each holding inotify instances, counted per user across
# all containers: Linux's default of 128 is exhausted by about 15 hosts, and then hosts fail to boot.
inotify=$(cat /proc/sys/fs/inotify/max_user_instances)
if [ "$inotify" -lt 8192 ]; then
	if [ "$(id -u)" -eq 0 ]; then
		echo "==> prereqs: fs.inotify.max_user_instances $inotify -> 8192 (systemd in every lab host)"
		sysctl -q -w fs.inotify.max_user_instances=8192
	else
		echo "prereqs: fs.inotify.max_user_instances is $inotify: lab hosts fail to boot past about 15; as root: sysctl -w fs.inotify.max_user_instances=8192" >&2
	fi
fi
echo "==> prereqs: ok (go $(go env GOVERSION), docker engine $(docker version --format '{{.Server.Version}}'))"
