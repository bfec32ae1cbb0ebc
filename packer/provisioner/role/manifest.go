package role

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/mohd-dev/mohd/packer/version"
)

// Manifest is the image manifest: what an image was baked as, and from what.
type Manifest struct {
	Role          string `json:"role"`
	PluginVersion string `json:"plugin_version"`
	// BuildTime is when the manifest's content last changed (RFC 3339, UTC): provisioning again without
	// a change keeps it.
	BuildTime     string `json:"build_time"`
	BaseOS        BaseOS `json:"base_os"`
	Hardening     string `json:"hardening"`
	ClusterCIDR   string `json:"cluster_cidr"`
	MoodleVersion string `json:"moodle_version,omitempty"`
	// Packages are the installed versions (dpkg-query) of the role's key packages and of extra_packages.
	Packages map[string]string `json:"packages"`
}

// BaseOS is the image's operating system, from os-release(5).
type BaseOS struct {
	ID              string `json:"id"`
	VersionID       string `json:"version_id"`
	VersionCodename string `json:"version_codename,omitempty"`
	PrettyName      string `json:"pretty_name"`
}

func (m *Manifest) encode() []byte {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err) // strings and a map of strings always encode
	}
	return append(b, '\n')
}

// manifestMode is the mode and owner (as `stat -c '%a %u %g'` prints them) of a manifest in place.
const manifestMode = "644 0 0"

// writeManifest writes the image manifest at c.ManifestPath. When only its build_time would change it keeps
// the manifest as it is, so that provisioning an unchanged machine again changes nothing.
func writeManifest(ctx context.Context, h *host, c *Config, keyPackages []string, now time.Time) error {
	h.ui.Say("Writing the image manifest " + c.ManifestPath)
	osRelease, err := h.user(ctx, "manifest: read the base OS", "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release", runOpts{})
	if err != nil {
		return err
	}
	pkgs := unique(append(append([]string{}, keyPackages...), c.ExtraPackages...))
	sort.Strings(pkgs)
	versions, err := queryPackages(ctx, h, "manifest: record package versions", pkgs)
	if err != nil {
		return err
	}
	m := &Manifest{
		Role:          c.Role,
		PluginVersion: version.PluginVersion.String(),
		BuildTime:     now.UTC().Format(time.RFC3339),
		BaseOS:        parseOSRelease(osRelease),
		Hardening:     c.Hardening,
		ClusterCIDR:   c.ClusterCIDR,
		MoodleVersion: c.MoodleVersion,
		Packages:      versions,
	}

	current, err := h.root(ctx, "manifest: read the current manifest",
		"if [ -f "+shellQuote(c.ManifestPath)+" ]; then stat -c '%a %u %g' "+shellQuote(c.ManifestPath)+"; cat "+shellQuote(c.ManifestPath)+"; fi",
		runOpts{})
	if err != nil {
		return err
	}
	mode, old, exists := strings.Cut(current, "\n")
	if exists && current != "" {
		var prev Manifest
		if err := json.Unmarshal([]byte(old), &prev); err != nil {
			h.ui.Say(fmt.Sprintf("The current manifest is not valid JSON (%v): replacing it", err))
		} else if sameExceptBuildTime(m, &prev) {
			m.BuildTime = prev.BuildTime
		}
	}
	content := m.encode()
	if exists && current != "" && bytes.Equal(content, []byte(old)) && strings.TrimSpace(mode) == manifestMode {
		h.ui.Say("The manifest is up to date (build_time " + m.BuildTime + "): left as it is")
		return nil
	}

	// Upload to a file of the communicator's user, then move it into place as root: a temporary file next to
	// the manifest and a rename, so that the manifest is never seen half-written.
	tmp, err := h.user(ctx, "manifest: create an upload file", "mktemp /tmp/mohd-manifest.XXXXXX", runOpts{})
	if err != nil {
		return err
	}
	tmp = strings.TrimSpace(tmp)
	if !strings.HasPrefix(tmp, "/") {
		return fmt.Errorf("step %q: mktemp printed %q, not a path", "manifest: create an upload file", tmp)
	}
	if err := h.comm.Upload(tmp, bytes.NewReader(content), nil); err != nil {
		return fmt.Errorf("step %q: uploading the manifest to %s: %w", "manifest: upload", tmp, err)
	}
	dir, base := path.Split(c.ManifestPath)
	script := strings.Join([]string{
		"set -e",
		"src=" + shellQuote(tmp) + " dst=" + shellQuote(c.ManifestPath),
		`tmp=""`,
		`trap 'rm -f "$src" ${tmp:+"$tmp"}' EXIT`,
		`if [ -d "$dst" ]; then echo "$dst is a directory" >&2; exit 1; fi`,
		"umask 022",
		"mkdir -p " + shellQuote(dir),
		"tmp=$(mktemp " + shellQuote(dir+"."+base+".") + "XXXXXX)",
		`cat "$src" > "$tmp"`,
		`chown 0:0 "$tmp"`,
		`chmod 0644 "$tmp"`,
		`mv -f "$tmp" "$dst"`,
		`tmp=""`,
	}, "\n")
	if _, err := h.root(ctx, "manifest: move into place", script, runOpts{}); err != nil {
		return err
	}
	h.ui.Say(fmt.Sprintf("Wrote %s (build_time %s, %d package version(s))", c.ManifestPath, m.BuildTime, len(m.Packages)))
	return nil
}

func sameExceptBuildTime(m, prev *Manifest) bool {
	if _, err := time.Parse(time.RFC3339, prev.BuildTime); err != nil {
		return false
	}
	a, b := *m, *prev
	a.BuildTime = b.BuildTime
	if a.Packages == nil {
		a.Packages = map[string]string{}
	}
	if b.Packages == nil {
		b.Packages = map[string]string{}
	}
	return reflect.DeepEqual(a, b)
}

// parseOSRelease reads the fields of os-release(5) the manifest records.
func parseOSRelease(s string) BaseOS {
	vals := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		vals[k] = unquoteOSRelease(v)
	}
	return BaseOS{ID: vals["ID"], VersionID: vals["VERSION_ID"], VersionCodename: vals["VERSION_CODENAME"], PrettyName: vals["PRETTY_NAME"]}
}

// unquoteOSRelease undoes the shell-style quoting os-release values may have.
func unquoteOSRelease(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		inner := v[1 : len(v)-1]
		for i := 0; i < len(inner); i++ {
			if inner[i] == '\\' && i+1 < len(inner) && strings.ContainsRune("\"\\$`", rune(inner[i+1])) {
				i++
			}
			b.WriteByte(inner[i])
		}
		return b.String()
	}
	return v
}
