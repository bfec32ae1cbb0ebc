package roles

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"text/template"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Configuration templates, one folder per role (files/<role>/...), rendered with text/template.
//
//go:embed files
var filesFS embed.FS

// render executes the template files/<name> with data.
func render(name string, data any) ([]byte, error) {
	src, err := filesFS.ReadFile("files/" + name)
	if err != nil {
		return nil, err
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// fileSpec is a compact way to list a role's files: rendered from a template, root-owned unless told.
type fileSpec struct {
	Path     string
	Template string
	Mode     os.FileMode
	Owner    string
	Group    string
	Restart  []string
	Reload   []string
}

// renderAll renders specs with data.
func renderAll(data any, specs ...fileSpec) ([]File, error) {
	out := make([]File, 0, len(specs))
	for _, s := range specs {
		b, err := render(s.Template, data)
		if err != nil {
			return nil, err
		}
		owner, group := s.Owner, s.Group
		if owner == "" {
			owner = "root"
		}
		if group == "" {
			group = "root"
		}
		mode := s.Mode
		if mode == 0 {
			mode = 0o644
		}
		out = append(out, File{
			File:    remote.File{Path: s.Path, Content: b, Mode: mode, Owner: owner, Group: group, MkdirParents: true},
			Restart: s.Restart,
			Reload:  s.Reload,
		})
	}
	return out, nil
}
