// Package version holds the version of packer-plugin-moodle.
package version

import "github.com/hashicorp/packer-plugin-sdk/version"

var (
	// Version is the plugin's version (SemVer core).
	Version = "0.1.0"

	// VersionPrerelease marks a pre-release such as "dev" or "rc1"; empty for a release. Release builds set
	// it with -ldflags "-X github.com/mohd-dev/mohd/packer/version.VersionPrerelease=". A pre-release
	// build is fine for `packer plugins install --path`, but `packer init` then looks for a release
	// that satisfies the template's constraint online.
	VersionPrerelease = "dev"

	// VersionMetadata is optional build metadata (ignored when versions are compared).
	VersionMetadata = ""

	// PluginVersion is what the plugin reports to Packer.
	PluginVersion = version.NewPluginVersion(Version, VersionPrerelease, VersionMetadata)
)
