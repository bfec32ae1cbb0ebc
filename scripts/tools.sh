#!/usr/bin/env bash
# Builds MOHD's pinned tools from the Go module proxy and links them into tools/bin.
#
#   scripts/tools.sh [TOOL...]      # no TOOL: all of them; `scripts/tools.sh --list` names them
#
# Pins live in tools/versions.env. Each tool is built once per version into a cache outside the clone
# (MOHD_TOOLS_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/mohd/tools), so a fresh clone on the same machine,
# as CI uses, reuses it. A binary of the pinned version already on PATH is reused instead of built.
# Two build recipes recur (see docs/development.md): `go install`, and a "copy build" of the module out of
# the module cache for modules whose go.mod has replace directives or whose version list the proxy refuses.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tools/versions.env
. "$root/tools/versions.env"
cache=${MOHD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mohd/tools}
bin="$root/tools/bin"
mkdir -p "$cache" "$bin"
export GOFLAGS=-buildvcs=false CGO_ENABLED=0 CHECKPOINT_DISABLE=1

ALL="terraform terraform-compat tofu packer packer-plugin-docker packer-plugin-vsphere packer-plugin-openstack
terraform-provider-openstack terraform-provider-vsphere vcsim packer-sdc tfplugindocs golangci-lint terraform-docs"

log() { printf '==> tools: %s\n' "$*" >&2; }

# copy_build MODULE@VERSION OUT PKG [LDFLAGS] [PREP]: builds PKG of a module copied out of the module cache.
copy_build() {
	local modver=$1 out=$2 pkg=$3 ldflags=${4:-} prep=${5:-}
	local dir
	dir=$(go mod download -json "$modver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -n "$dir" ] || { log "the module proxy did not serve $modver"; return 1; }
	local work
	work=$(mktemp -d "$cache/.build.XXXXXX")
	cp -r "$dir/." "$work/src" 2>/dev/null || cp -r "$dir" "$work/src"
	chmod -R u+w "$work/src"
	(cd "$work/src" && { [ -z "$prep" ] || eval "$prep"; } && GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags "$ldflags" -o "$out" "$pkg")
	rm -rf "$work"
}

# go_install PKG@VERSION OUT: `go install` into a scratch GOBIN, then moved to OUT.
go_install() {
	local pkgver=$1 out=$2 gobin
	gobin=$(mktemp -d "$cache/.gobin.XXXXXX")
	GOBIN=$gobin go install -trimpath "$pkgver"
	mv "$gobin"/* "$out"
	rmdir "$gobin"
}

tf_patch='sed -i -E "/backend(Azure|Consul|Cos|GCS|Kubernetes|OCI|OSS|Pg|S3)[ .]/d" internal/backend/init/init.go && gofmt -w internal/backend/init/init.go &&
for m in azure consul cos gcs kubernetes oss pg s3 oci; do go mod edit -dropreplace=github.com/hashicorp/terraform/internal/backend/remote-state/$m -droprequire=github.com/hashicorp/terraform/internal/backend/remote-state/$m; done &&
go mod edit -dropreplace=github.com/hashicorp/terraform/internal/legacy -droprequire=github.com/hashicorp/terraform/internal/legacy'

# spec TOOL: prints "VERSION BINARY PATH-PROBE" for a tool; PATH-PROBE is the command whose output names the
# version when a copy on PATH may be reused ("-" when it may not).
spec() {
	case $1 in
	terraform) echo "$TERRAFORM_VERSION terraform terraform version" ;;
	terraform-compat) echo "$TERRAFORM_COMPAT_VERSION terraform-$TERRAFORM_COMPAT_VERSION -" ;;
	tofu) echo "$OPENTOFU_VERSION tofu tofu version" ;;
	packer) echo "$PACKER_VERSION packer packer version" ;;
	packer-plugin-docker) echo "$PACKER_PLUGIN_DOCKER_VERSION packer-plugin-docker -" ;;
	packer-plugin-vsphere) echo "$PACKER_PLUGIN_VSPHERE_VERSION packer-plugin-vsphere -" ;;
	packer-plugin-openstack) echo "$PACKER_PLUGIN_OPENSTACK_VERSION packer-plugin-openstack -" ;;
	terraform-provider-openstack) echo "$TERRAFORM_PROVIDER_OPENSTACK_VERSION terraform-provider-openstack -" ;;
	terraform-provider-vsphere) echo "$TERRAFORM_PROVIDER_VSPHERE_VERSION terraform-provider-vsphere -" ;;
	vcsim) echo "$GOVMOMI_VERSION vcsim -" ;;
	packer-sdc) echo "$PACKER_SDC_VERSION packer-sdc -" ;;
	tfplugindocs) echo "$TFPLUGINDOCS_VERSION tfplugindocs -" ;;
	golangci-lint) echo "$GOLANGCI_LINT_VERSION golangci-lint golangci-lint --version" ;;
	terraform-docs) echo "$TERRAFORM_DOCS_VERSION terraform-docs terraform-docs --version" ;;
	*) return 1 ;;
	esac
}

# build TOOL VERSION OUT
build() {
	local v=$2 out=$3
	case $1 in
	terraform) copy_build "github.com/hashicorp/terraform@v$v" "$out" . "-s -w -X github.com/hashicorp/terraform/version.dev=no" "$tf_patch" ;;
	terraform-compat) go_install "github.com/hashicorp/terraform@v$v" "$out" ;;
	tofu) copy_build "github.com/opentofu/opentofu@v$v" "$out" ./cmd/tofu "-s -w -X github.com/opentofu/opentofu/version.dev=no" ;;
	packer) copy_build "github.com/hashicorp/packer@v$v" "$out" . "-s -w" ;;
	packer-plugin-docker | packer-plugin-vsphere | packer-plugin-openstack)
		copy_build "github.com/hashicorp/$1@v$v" "$out" . "-s -w -X github.com/hashicorp/$1/version.VersionPrerelease=" ;;
	terraform-provider-openstack)
		copy_build "github.com/terraform-provider-openstack/terraform-provider-openstack/v3@v$v" "$out" . "-s -w" ;;
	terraform-provider-vsphere) copy_build "github.com/hashicorp/terraform-provider-vsphere@v$v" "$out" . "-s -w" ;;
	vcsim) go_install "github.com/vmware/govmomi/vcsim@v$v" "$out" ;;
	packer-sdc) copy_build "github.com/hashicorp/packer-plugin-sdk@v$v" "$out" ./cmd/packer-sdc "-s -w" ;;
	tfplugindocs) go_install "github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs@v$v" "$out" ;;
	golangci-lint) go_install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v$v" "$out" ;;
	terraform-docs) copy_build "github.com/terraform-docs/terraform-docs@v$v" "$out" . "-s -w" ;;
	esac
}

ensure() {
	local tool=$1 v name probe
	read -r v name probe < <(spec "$tool") || { log "unknown tool '$tool' (known: $(echo $ALL))"; return 2; }
	local cached="$cache/$tool-$v/$name"
	if [ ! -x "$cached" ] && [ "$probe" != "-" ]; then
		# Reuse a matching binary on PATH (not our own link, which would be circular).
		local onpath
		onpath=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vx "$bin" | paste -sd:) command -v "${probe%% *}" || true)
		if [ -n "$onpath" ] && "$onpath" ${probe#* } 2>/dev/null | head -1 | grep -qF "$v"; then
			ln -sfn "$onpath" "$bin/$name"
			log "$tool $v: reusing $onpath"
			return 0
		fi
	fi
	if [ ! -x "$cached" ]; then
		log "$tool $v: building from the Go module proxy (cold: minutes)"
		local start=$SECONDS
		mkdir -p "$cache/$tool-$v"
		build "$tool" "$v" "$cached.tmp"
		mv "$cached.tmp" "$cached"
		log "$tool $v: built in $((SECONDS - start))s"
	fi
	ln -sfn "$cached" "$bin/$name"
}

if [ "${1:-}" = --list ]; then echo $ALL; exit 0; fi
for t in ${@:-$ALL}; do ensure "$t"; done
