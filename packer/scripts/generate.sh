#!/usr/bin/env bash
# Regenerates what is generated in packer/, as packer-plugin-scaffolding's `make generate` does:
#   - go generate ./packer/...: the HCL2 specs (packer-sdc mapstructure-to-hcl2) and the docs partials in
#     packer/docs-partials/ (packer-sdc struct-markdown, through scripts/struct-markdown.sh);
#   - packer-sdc renderdocs: packer/docs with its @include partials filled in;
#   - the integration docs in packer/.web-docs/: README.md and components/<type>/<slug>/README.md.
#
#   packer/scripts/generate.sh           # regenerate
#   packer/scripts/generate.sh --check   # regenerate, and fail if that changed anything
#
# Needs go and packer-sdc; tools/bin (scripts/tools.sh packer-sdc) comes first on PATH when it exists.
set -euo pipefail

plugin=$(cd "$(dirname "$0")/.." && pwd)
repo=$(dirname "$plugin")
[ -d "$repo/tools/bin" ] && PATH="$repo/tools/bin:$PATH"
command -v packer-sdc >/dev/null || { echo "generate.sh: packer-sdc is not on PATH (scripts/tools.sh packer-sdc)" >&2; exit 1; }

check=false
[ "${1:-}" = --check ] && check=true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# generated lists the generated files, relative to packer/.
generated() {
	(cd "$plugin" && find . -name '*.hcl2spec.go' -o -path ./docs-partials -prune -o -path ./.web-docs -prune | sort)
}
if $check; then
	mkdir -p "$work/before"
	(cd "$plugin" && generated | xargs -I{} cp -a --parents {} "$work/before/")
fi

cd "$repo"
go generate ./packer/...

rendered="$work/rendered"
packer-sdc renderdocs -src "$plugin/docs" -partials "$plugin/docs-partials" -dst "$rendered" 2>"$work/renderdocs.log" ||
	{ cat "$work/renderdocs.log" >&2; exit 1; }

# The integration layout: docs/README.md as is; each component page (docs/<kind>/<slug>.mdx) without its
# front matter and its H1 title (the web adds them) as components/<type>/<slug>/README.md.
web="$plugin/.web-docs"
rm -rf "$web/components" "$web/README.md"
cp "$rendered/README.md" "$web/README.md"
for page in "$rendered"/*/*.mdx; do
	kind=$(basename "$(dirname "$page")")
	case $kind in
	builders) type=builder ;;
	provisioners) type=provisioner ;;
	post-processors) type=post-processor ;;
	datasources) type=data-source ;;
	*) echo "generate.sh: $page: component pages go in builders, provisioners, post-processors or datasources" >&2; exit 1 ;;
	esac
	slug=$(basename "$page" .mdx)
	mkdir -p "$web/components/$type/$slug"
	awk '
		fm < 2 { if ($0 == "---") fm++; next }          # front matter
		!title && /^[[:space:]]*$/ { next }            # blank lines before the title
		!title && /^# / { title = 1; skip = 1; next }  # the H1 title
		skip && /^[[:space:]]*$/ { next }              # blank lines after it
		{ skip = 0; title = 1; print }
	' "$page" >"$web/components/$type/$slug/README.md"
done

if $check; then
	mkdir -p "$work/after"
	(cd "$plugin" && generated | xargs -I{} cp -a --parents {} "$work/after/")
	if ! diff -r "$work/before" "$work/after"; then
		echo "generate.sh: the generated files were not current (they are now): commit the regenerated files" >&2
		exit 1
	fi
	echo "generate.sh: generated files are current"
fi
