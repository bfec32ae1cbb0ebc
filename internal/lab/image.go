package lab

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
)

// BaseRepository is the image repository of the lab's base image; the tag is a hash of its recipe.
const BaseRepository = "mohd/base"

//go:embed baseimage
var baseFiles embed.FS

// RecipeHash hashes every file of a recipe (names and contents, in order), so an image is rebuilt exactly
// when what builds it changed and a second run reuses it.
func RecipeHash(fsys fs.FS) (string, error) {
	var names []string
	if err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	}); err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// BaseImageTag is the tag the current recipe builds.
func BaseImageTag() (string, error) {
	sub, err := fs.Sub(baseFiles, "baseimage")
	if err != nil {
		return "", err
	}
	hash, err := RecipeHash(sub)
	if err != nil {
		return "", err
	}
	return BaseRepository + ":" + hash, nil
}

var baseMu sync.Mutex

// EnsureBaseImage returns the base image, building it from Debian packages (debootstrap, then docker import)
// when the engine does not have the current recipe's tag yet. progress receives the build's output lines.
func EnsureBaseImage(ctx context.Context, progress func(string)) (string, error) {
	baseMu.Lock()
	defer baseMu.Unlock()
	tag, err := BaseImageTag()
	if err != nil {
		return "", err
	}
	if ImageExists(ctx, tag) {
		return tag, nil
	}
	dir, err := os.MkdirTemp("", "mohd-baseimage-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := os.CopyFS(dir, mustSub(baseFiles, "baseimage")); err != nil {
		return "", err
	}
	if progress != nil {
		progress(fmt.Sprintf("building base image %s (debootstrap, about two minutes)", tag))
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(dir, "build.sh"), tag, dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the base image %s failed: %w\n%s", tag, err, out)
	}
	// A stable name beside the hash, for people and for Packer templates.
	if _, err := docker(ctx, "tag", tag, BaseRepository+":bookworm"); err != nil {
		return "", err
	}
	return tag, nil
}

// ImageExists reports whether the engine holds an image by that reference.
func ImageExists(ctx context.Context, ref string) bool {
	_, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	return err == nil
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
