// Package repo finds the repository's root and its pinned tools, for tests and commands run from anywhere
// inside the checkout.
package repo

import (
	"errors"
	"os"
	"path/filepath"
)

// Root walks up from the working directory to the directory holding go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Tool returns the path of a pinned tool in tools/bin (built by `make tools`), or an error naming the
// command that builds it.
func Tool(name string) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "tools", "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", errors.New(name + " is not built: run `make tools` (" + p + ")")
	}
	return p, nil
}
