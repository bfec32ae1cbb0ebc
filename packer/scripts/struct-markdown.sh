#!/bin/sh
# Runs `packer-sdc struct-markdown` on $GOFILE; `go generate` runs it from the package's directory.
#
# packer-sdc guesses the plugin's root by walking up from the file to a directory named packer-plugin-*, and
# stops without generating anything at a directory named "packer", which ours is (<repo>/packer). So this runs
# it through a temporary symlink named packer-plugin-moodle to that directory: the partials then land in
# <repo>/packer/docs-partials/<package path>/, as in packer-plugin-scaffolding.
set -eu
: "${GOFILE:?run by go generate (GOFILE is not set)}"
plugin_root=$(cd "$(dirname "$0")/.." && pwd -P)
pkg_dir=$(pwd -P)
case $pkg_dir in
"$plugin_root"/*) rel=${pkg_dir#"$plugin_root"/} ;;
*) echo "struct-markdown.sh: $pkg_dir is not inside $plugin_root" >&2; exit 1 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ln -s "$plugin_root" "$tmp/packer-plugin-moodle"
packer-sdc struct-markdown "$tmp/packer-plugin-moodle/$rel/$GOFILE"
