package roles

import "testing"

// renderedFiles renders a role's files (common ones included) for p, by path.
func renderedFiles(t *testing.T, role string, p Params) map[string]File {
	t.Helper()
	r, err := Get(role)
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.render(p.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]File{}
	for _, f := range files {
		out[f.Path] = f
	}
	return out
}
