package lab

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/repo"
)

func TestRoleImagesHash(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h1, err := RoleImagesHash(ctx, root, "mohd/base:aaaa")
	if err != nil {
		t.Fatal(err)
	}
	h2, err := RoleImagesHash(ctx, root, "mohd/base:aaaa")
	if err != nil {
		t.Fatal(err)
	}
	h3, err := RoleImagesHash(ctx, root, "mohd/base:bbbb")
	if err != nil {
		t.Fatal(err)
	}
	if len(h1) != 16 || h1 != h2 {
		t.Errorf("the hash is not a stable 16-digit tag: %q, %q", h1, h2)
	}
	if h1 == h3 {
		t.Error("another base image gives the same hash")
	}
}

func TestRoleHostSpec(t *testing.T) {
	img := RoleImage{Role: "nfs", Ref: "mohd/role-nfs:abc"}
	s := RoleHostSpec("nfs-a", img)
	if s.Name != "nfs-a" || s.Image != "mohd/role-nfs:abc" || strings.Join(s.CapAdd, ",") != "DAC_READ_SEARCH" {
		t.Errorf("spec %+v", s)
	}
	s.CapAdd[0] = "X"
	if RoleCapabilities("nfs")[0] != "DAC_READ_SEARCH" {
		t.Error("RoleCapabilities returns the table itself")
	}
	if len(RoleCapabilities("redis")) != 0 || RoleRepository("redis") != "mohd/role-redis" {
		t.Error("redis")
	}
}

func TestPrefixWriter(t *testing.T) {
	var out bytes.Buffer
	w := &prefixWriter{w: &out, prefix: "[redis] "}
	_, _ = w.Write([]byte("one\ntw"))
	_, _ = w.Write([]byte("o\r\n"))
	for i := range 50 {
		_, _ = w.Write([]byte(strings.Repeat("x", i) + "\n"))
	}
	_, _ = w.Write([]byte("last"))
	w.flush()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if lines[0] != "[redis] one" || lines[1] != "[redis] two" || lines[len(lines)-1] != "[redis] last" || len(lines) != 53 {
		t.Errorf("output:\n%s", out.String())
	}
	if len(w.tail) != tailLines || w.tail[len(w.tail)-1] != "last" {
		t.Errorf("tail %q", w.tail)
	}
}

func TestLockFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	unlock, err := lockFile(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	waited := false
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := lockFile(ctx, p, func() { waited = true }); err == nil || !waited {
		t.Errorf("a second holder got the lock (err %v, waited %v)", err, waited)
	}
	unlock()
	unlock2, err := lockFile(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
	if _, err := os.Stat(p); err != nil {
		t.Error(err)
	}
}
