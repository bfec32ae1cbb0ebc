// Package imagemanifest is the record a MOHD role image carries of what it was baked as: written by the
// Packer provisioner (and by the provider when it converges a host), read by the provider to refuse wiring a
// host of the wrong role.
package imagemanifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"
)

// Path is where the manifest lives on a host.
const Path = "/etc/mohd/image-manifest.json"

// Manifest is the image manifest.
type Manifest struct {
	Role          string `json:"role"`
	PluginVersion string `json:"plugin_version"`
	// BuildTime is when the manifest's content last changed (RFC 3339, UTC): applying the role again without
	// a change keeps it.
	BuildTime     string            `json:"build_time"`
	BaseOS        BaseOS            `json:"base_os"`
	Hardening     string            `json:"hardening"`
	ClusterCIDR   string            `json:"cluster_cidr"`
	MoodleVersion string            `json:"moodle_version,omitempty"`
	Packages      map[string]string `json:"packages"`
}

// BaseOS is the image's operating system, from os-release(5).
type BaseOS struct {
	ID         string `json:"id"`
	VersionID  string `json:"version_id"`
	PrettyName string `json:"pretty_name"`
}

// Encode renders m as indented JSON with a final newline.
func (m *Manifest) Encode() []byte {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err) // strings and a map of strings always encode
	}
	return append(b, '\n')
}

// Decode parses a manifest and checks it names a role.
func Decode(b []byte) (*Manifest, error) {
	m := &Manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("image manifest is not valid JSON: %w", err)
	}
	if m.Role == "" {
		return nil, errors.New("image manifest names no role")
	}
	return m, nil
}

// SameExceptBuildTime reports whether m and prev differ in nothing but their build time.
func (m *Manifest) SameExceptBuildTime(prev *Manifest) bool {
	if _, err := time.Parse(time.RFC3339, prev.BuildTime); err != nil {
		return false
	}
	return m.Role == prev.Role && m.PluginVersion == prev.PluginVersion && m.BaseOS == prev.BaseOS &&
		m.Hardening == prev.Hardening && m.ClusterCIDR == prev.ClusterCIDR && m.MoodleVersion == prev.MoodleVersion &&
		maps.Equal(m.Packages, prev.Packages)
}
