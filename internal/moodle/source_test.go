package moodle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestSourceValidate(t *testing.T) {
	dir := t.TempDir()
	tree := writeTree(t, filepath.Join(dir, "moodle"), map[string]string{"version.php": "<?php\n"})
	noVersion := writeTree(t, filepath.Join(dir, "other"), map[string]string{"index.php": "<?php\n"})
	archive := filepath.Join(dir, "moodle.tgz")
	writeArchive(t, archive, "moodle/", map[string]string{"version.php": "<?php\n"})
	zip := filepath.Join(dir, "moodle.zip")
	if err := os.WriteFile(zip, []byte("PK"), 0o644); err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("ab", 20)
	cases := []struct {
		src Source
		ok  bool
		msg string
	}{
		{src: Source{GitURL: "https://github.com/moodle/moodle.git", Ref: "MOODLE_405_STABLE"}, ok: true},
		{src: Source{GitURL: "https://github.com/moodle/moodle.git", Ref: "v4.5.6"}, ok: true},
		{src: Source{GitURL: "git@github.com:moodle/moodle.git", Ref: "main"}, ok: true},
		{src: Source{GitURL: "ssh://git@git.example.edu/moodle.git", Ref: "refs/heads/prod"}, ok: true},
		{src: Source{GitURL: "file:///srv/moodle.git", Ref: sha}, ok: true},
		{src: Source{Path: tree}, ok: true},
		{src: Source{Path: archive}, ok: true},

		{src: Source{}, msg: "set a git repository"},
		{src: Source{GitURL: "https://x/y.git", Ref: "main", Path: tree}, msg: "not both"},
		{src: Source{Path: tree, Ref: "main"}, msg: "a ref goes with a git repository"},
		{src: Source{GitURL: "https://github.com/moodle/moodle.git"}, msg: "needs a ref"},
		{src: Source{GitURL: "--upload-pack=evil", Ref: "main"}, msg: "not a repository URL"},
		{src: Source{GitURL: "ext::sh -c evil", Ref: "main"}, msg: "not a repository URL"},
		{src: Source{GitURL: "ftp://x/y.git", Ref: "main"}, msg: "not supported"},
		{src: Source{GitURL: "https://x/y.git", Ref: "-f"}, msg: "not a valid branch"},
		{src: Source{GitURL: "https://x/y.git", Ref: "a..b"}, msg: "not a valid branch"},
		{src: Source{GitURL: "https://x/y.git", Ref: "main branch"}, msg: "not a valid branch"},
		{src: Source{Path: filepath.Join(dir, "missing")}, msg: "no such file"},
		{src: Source{Path: noVersion}, msg: "no version.php"},
		{src: Source{Path: zip}, msg: "neither a directory nor a .tar.gz"},
	}
	for _, c := range cases {
		err := c.src.Validate()
		if c.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.msg)) {
			t.Errorf("Validate(%+v) = %v, want ok=%v or an error with %q", c.src, err, c.ok, c.msg)
		}
	}
}

func TestSourceRedactsGitPassword(t *testing.T) {
	s := Source{GitURL: "https://deploy:s3cret@git.example.edu/moodle.git", Ref: "main"}
	if strings.Contains(s.String(), "s3cret") || !strings.Contains(s.String(), "deploy") {
		t.Fatalf("String() = %q", s.String())
	}
	if got := s.secrets(); len(got) != 1 || got[0] != "s3cret" {
		t.Fatalf("secrets() = %q", got)
	}
}

var fixtureFiles = map[string]string{
	"version.php":          "<?php\n$version = 2024100700.00;\n",
	"index.php":            "<?php echo 'hi';\n",
	"lib/setup.php":        "<?php\n",
	"admin/cli/cron.php":   "<?php\n",
	"admin/tool/x/run.sh":  "#!/bin/sh\n",
	"theme/boost/logo.svg": "<svg/>",
}

// TestReleaseIDIsDeterministic: the id depends on content only (not on times, owners, the tree's
// location or file order on disk), and on every byte of it.
func TestReleaseIDIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	a := writeTree(t, filepath.Join(dir, "a"), fixtureFiles)
	mustChmod(t, filepath.Join(a, "admin/tool/x/run.sh"), 0o700)
	id, err := ReleaseID(Source{Path: a})
	if err != nil {
		t.Fatal(err)
	}
	if !releaseIDRe.MatchString(id) || !strings.HasPrefix(id, "tar-") {
		t.Fatalf("id %q", id)
	}
	again, err := ReleaseID(Source{Path: a})
	if err != nil || again != id {
		t.Fatalf("the same tree gave %q then %q (%v)", id, again, err)
	}

	// Elsewhere, written in another order, other times, other group/other bits, version control data and
	// a config.php: the same release.
	b := filepath.Join(dir, "b")
	names := make([]string, 0, len(fixtureFiles))
	for n := range fixtureFiles {
		names = append(names, n)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, n := range names {
		writeTree(t, b, map[string]string{n: fixtureFiles[n]})
	}
	mustChmod(t, filepath.Join(b, "admin/tool/x/run.sh"), 0o755)
	mustChmod(t, filepath.Join(b, "index.php"), 0o664)
	writeTree(t, b, map[string]string{".git/HEAD": "ref: refs/heads/main\n", "lib/.git": "gitdir: x", "config.php": "<?php $CFG->dbpass = 'x';"})
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	_ = filepath.WalkDir(b, func(p string, _ fs.DirEntry, _ error) error { return os.Chtimes(p, old, old) })
	if idb, err := ReleaseID(Source{Path: b}); err != nil || idb != id {
		t.Fatalf("an identical tree elsewhere gave %q, want %q (%v)", idb, id, err)
	}

	// The same tree as an archive with a top directory, as Moodle's downloads come (group-writable modes,
	// times, owner names): the same release.
	archive := filepath.Join(dir, "moodle-4.5.tgz")
	archiveDir(t, archive, "moodle/", a)
	if ida, err := ReleaseID(Source{Path: archive}); err != nil || ida != id {
		t.Fatalf("the tree as an archive gave %q, want %q (%v)", ida, id, err)
	}

	// One byte more: another release. An executable bit: another release.
	writeTree(t, b, map[string]string{"index.php": "<?php echo 'hi!';\n"})
	if idc, _ := ReleaseID(Source{Path: b}); idc == id {
		t.Fatal("changed content kept its id")
	}
	writeTree(t, b, map[string]string{"index.php": fixtureFiles["index.php"]})
	mustChmod(t, filepath.Join(b, "index.php"), 0o755)
	if idd, _ := ReleaseID(Source{Path: b}); idd == id {
		t.Fatal("a file made executable kept its id")
	}
}

// archiveDir writes dir as a .tar.gz under top, in the order of a walk of dir, as tar(1) would.
func archiveDir(t *testing.T, p, top, dir string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	_ = tw.WriteHeader(&tar.Header{Name: top, Typeflag: tar.TypeDir, Mode: 0o775, ModTime: time.Now()})
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, _ := d.Info()
		hdr := &tar.Header{Name: top + filepath.ToSlash(rel), ModTime: time.Now(), Uname: "dev", Gname: "dev", Uid: 1000, Gid: 1000}
		if d.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o775
			return tw.WriteHeader(hdr)
		}
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, int64(len(content)), int64(info.Mode().Perm()|0o020)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = tw.Write(content)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReleaseTar: what the web node extracts: relative names, normalized modes and owners, one fixed
// time, no version control data, no config.php.
func TestReleaseTar(t *testing.T) {
	dir := writeTree(t, t.TempDir(), fixtureFiles)
	writeTree(t, dir, map[string]string{".git/config": "[core]", "config.php": "<?php"})
	mustChmod(t, filepath.Join(dir, "admin/tool/x/run.sh"), 0o750)
	if runtime.GOOS != "windows" {
		if err := os.Symlink("../index.php", filepath.Join(dir, "lib/index.php")); err != nil {
			t.Fatal(err)
		}
	}
	lt, err := prepareLocal(Source{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := lt.writeTar(&buf); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	got := map[string]*tar.Header{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[hdr.Name] = hdr
		if !hdr.ModTime.Equal(time.Unix(0, 0)) || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" {
			t.Errorf("%s: time %v, owner %d:%d %q", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname)
		}
	}
	for name, mode := range map[string]int64{"version.php": 0o644, "admin/": 0o755, "admin/tool/x/run.sh": 0o755, "lib/index.php": 0o777} {
		if h := got[name]; h == nil || h.Mode != mode {
			t.Errorf("%s: %+v, want mode %o", name, h, mode)
		}
	}
	for _, absent := range []string{"config.php", ".git/", ".git/config"} {
		if got[absent] != nil {
			t.Errorf("the release tar holds %s", absent)
		}
	}
}

func TestReleaseTarRefusesEscapes(t *testing.T) {
	dir := writeTree(t, t.TempDir(), fixtureFiles)
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReleaseID(Source{Path: dir}); err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Fatalf("an absolute symbolic link: %v", err)
	}
	dir = writeTree(t, t.TempDir(), fixtureFiles)
	if err := os.Symlink("../../secret", filepath.Join(dir, "lib/secret")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReleaseID(Source{Path: dir}); err == nil || !strings.Contains(err.Error(), "out of the tree") {
		t.Fatalf("a symbolic link out of the tree: %v", err)
	}
	// An archive entry with ../ in its name.
	archive := filepath.Join(t.TempDir(), "evil.tgz")
	writeArchive(t, archive, "", map[string]string{"version.php": "<?php", "../evil.php": "<?php"})
	if _, err := ReleaseID(Source{Path: archive}); err == nil || !strings.Contains(err.Error(), "leaves the tree") {
		t.Fatalf("an archive entry out of the tree: %v", err)
	}
	// An archive with no version.php at its top or in its one top directory.
	archive = filepath.Join(t.TempDir(), "two-tops.tgz")
	writeArchive(t, archive, "", map[string]string{"a/version.php": "<?php", "b/index.php": "<?php"})
	if _, err := ReleaseID(Source{Path: archive}); err == nil || !strings.Contains(err.Error(), "not a Moodle archive") {
		t.Fatalf("an archive without version.php at its top: %v", err)
	}
}

func writeTree(t *testing.T, root string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func mustChmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

// writeArchive writes a .tar.gz of files under top ("moodle/" or ""), in name order, with the directories.
func writeArchive(t *testing.T, p, top string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	if top != "" {
		dirs[top] = true
		_ = tw.WriteHeader(&tar.Header{Name: top, Typeflag: tar.TypeDir, Mode: 0o775, ModTime: time.Now()})
	}
	for _, n := range names {
		for d := filepath.ToSlash(filepath.Dir(n)); d != "." && !dirs[top+d+"/"]; d = filepath.ToSlash(filepath.Dir(d)) {
			dirs[top+d+"/"] = true
			_ = tw.WriteHeader(&tar.Header{Name: top + d + "/", Typeflag: tar.TypeDir, Mode: 0o775, ModTime: time.Now()})
		}
		_ = tw.WriteHeader(&tar.Header{Name: top + n, Typeflag: tar.TypeReg, Mode: 0o664, Size: int64(len(files[n])), ModTime: time.Now(), Uname: "dev"})
		_, _ = tw.Write([]byte(files[n]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
