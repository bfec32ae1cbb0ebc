package roles

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"time"

	"github.com/mohd-dev/mohd/internal/hostfacts"
	"github.com/mohd-dev/mohd/internal/imagemanifest"
	"github.com/mohd-dev/mohd/internal/remote"
)

// now is the manifest's clock (tests replace it).
var now = time.Now

// writeManifest records what the host was given. When only the build time would change, the manifest on
// the host stays as it is, so applying an unchanged role again changes nothing.
func writeManifest(ctx context.Context, h remote.Host, r *Role, p Params, rep *Report) error {
	keys := r.KeyPackages
	if len(keys) == 0 {
		keys = r.Packages
	}
	pkgs := append(slices.Clone(keys), p.ExtraPackages...)
	sort.Strings(pkgs)
	versions, err := installedPackages(ctx, h, slices.Compact(pkgs))
	if err != nil {
		return err
	}
	facts, err := hostfacts.Probe(ctx, h)
	if err != nil {
		return err
	}
	m := &imagemanifest.Manifest{
		Role:          r.Name,
		PluginVersion: p.PluginVersion,
		BuildTime:     now().UTC().Format(time.RFC3339),
		BaseOS:        imagemanifest.BaseOS{ID: facts.OSID, VersionID: facts.OSVersionID, PrettyName: facts.OSPrettyName},
		Hardening:     p.Hardening,
		ClusterCIDR:   p.ClusterCIDR,
		MoodleVersion: p.MoodleVersion,
		Packages:      versions,
	}
	if facts.Manifest != nil && m.SameExceptBuildTime(facts.Manifest) {
		m.BuildTime = facts.Manifest.BuildTime
	}
	content := m.Encode()
	if facts.ManifestRaw != "" && bytes.Equal([]byte(facts.ManifestRaw), content) {
		return nil
	}
	changed, err := h.Upload(ctx, remote.File{Path: imagemanifest.Path, Content: content, Mode: 0o644,
		Owner: "root", Group: "root", MkdirParents: true})
	if changed {
		rep.Files = append(rep.Files, imagemanifest.Path)
	}
	return err
}
