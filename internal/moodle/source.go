package moodle

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Source is where a release's code comes from: a git repository the web node fetches itself (GitURL and
// Ref), or a directory or .tar.gz/.tgz archive on the machine running MOHD (Path: air-gapped sites, tests).
type Source struct {
	GitURL string
	// Ref is a branch, a tag or a full 40-hex commit id.
	Ref  string
	Path string
}

var (
	sha1Re   = regexp.MustCompile(`^[0-9a-f]{40}$`)
	scpGitRe = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^ ]+$`)
)

// Validate checks s without reading a whole archive.
func (s Source) Validate() error {
	switch {
	case s.GitURL != "" && s.Path != "":
		return errors.New("moodle source: set either a git repository (url and ref) or a local path, not both")
	case s.GitURL == "" && s.Path == "":
		return errors.New("moodle source: set a git repository (url and ref) or a local path")
	case s.Path != "" && s.Ref != "":
		return errors.New("moodle source: a ref goes with a git repository, not with a local path")
	case s.GitURL != "":
		return s.validateGit()
	}
	return s.validatePath()
}

func (s Source) validateGit() error {
	u := s.GitURL
	if strings.HasPrefix(u, "-") || strings.ContainsAny(u, " \t\n\r") || strings.Contains(u, "::") {
		return fmt.Errorf("moodle source: git url %q is not a repository URL", s.redactedURL())
	}
	if !scpGitRe.MatchString(u) {
		p, err := url.Parse(u)
		if err != nil || p.Host == "" && p.Scheme != "file" {
			return fmt.Errorf("moodle source: git url %q is not a repository URL (https://, ssh://, git://, file:// or user@host:path)", s.redactedURL())
		}
		switch p.Scheme {
		case "https", "http", "ssh", "git", "file":
		default:
			return fmt.Errorf("moodle source: git url %q: scheme %q is not supported (https, http, ssh, git, file)", s.redactedURL(), p.Scheme)
		}
	}
	r := s.Ref
	switch {
	case r == "":
		return errors.New("moodle source: a git repository needs a ref (a branch, a tag or a commit id) to deploy")
	case sha1Re.MatchString(r):
		return nil
	case strings.HasPrefix(r, "-") || strings.HasPrefix(r, "/") || strings.HasSuffix(r, "/") || strings.HasSuffix(r, ".lock") ||
		strings.Contains(r, "..") || strings.Contains(r, "//") || strings.Contains(r, "@{") ||
		strings.ContainsAny(r, " \t\n~^:?*[\\\x7f"):
		return fmt.Errorf("moodle source: ref %q is not a valid branch or tag name (a commit id must be the full 40 hex digits)", r)
	}
	return nil
}

func (s Source) validatePath() error {
	fi, err := os.Stat(s.Path)
	if err != nil {
		return fmt.Errorf("moodle source: %w", err)
	}
	if fi.IsDir() {
		if v, err := os.Stat(filepath.Join(s.Path, "version.php")); err != nil || !v.Mode().IsRegular() {
			return fmt.Errorf("moodle source: %s is not a Moodle tree: it has no version.php at its top", s.Path)
		}
		return nil
	}
	if !fi.Mode().IsRegular() || !isArchive(s.Path) {
		return fmt.Errorf("moodle source: %s is neither a directory nor a .tar.gz/.tgz archive", s.Path)
	}
	return nil
}

func isArchive(p string) bool {
	l := strings.ToLower(p)
	return strings.HasSuffix(l, ".tar.gz") || strings.HasSuffix(l, ".tgz")
}

// String describes s for messages, without the password of a git URL.
func (s Source) String() string {
	if s.Path != "" {
		return s.Path
	}
	return s.redactedURL() + " " + s.Ref
}

func (s Source) redactedURL() string {
	if p, err := url.Parse(s.GitURL); err == nil && p.User != nil {
		if _, has := p.User.Password(); has {
			p.User = url.UserPassword(p.User.Username(), "***")
			return p.String()
		}
	}
	return s.GitURL
}

// secrets of s: a password in a git URL.
func (s Source) secrets() []string {
	if p, err := url.Parse(s.GitURL); err == nil && p.User != nil {
		if pw, has := p.User.Password(); has && pw != "" {
			return []string{pw}
		}
	}
	return nil
}

// localTree is a local source prepared for streaming: a directory, or an archive with the top directory to
// strip ("moodle/" in Moodle's own downloads).
type localTree struct {
	path  string
	strip string // "" or "dir/"
}

// tarEpoch is every entry's time in a release tar: the tar depends on the content only. Releases are
// extracted with the time of extraction instead (tar -m), so that Apache's validators (ETag,
// Last-Modified) change with each release.
var tarEpoch = time.Unix(0, 0)

func prepareLocal(s Source) (*localTree, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	lt := &localTree{path: s.Path}
	if fi, err := os.Stat(s.Path); err == nil && fi.IsDir() {
		return lt, nil
	}
	// An archive: find whether every entry sits in one top directory holding version.php.
	names, err := archiveNames(s.Path)
	if err != nil {
		return nil, err
	}
	top, rootVersion, topVersion := "", false, false
	for i, n := range names {
		first, _, _ := strings.Cut(n, "/")
		if i == 0 {
			top = first
		} else if first != top {
			top = "\x00" // more than one top-level entry
		}
		switch n {
		case "version.php":
			rootVersion = true
		case top + "/version.php":
			topVersion = true
		}
	}
	switch {
	case rootVersion:
	case top != "\x00" && topVersion:
		lt.strip = top + "/"
	default:
		return nil, fmt.Errorf("moodle source: %s is not a Moodle archive: no version.php at its top or in its one top directory", s.Path)
	}
	return lt, nil
}

// archiveNames lists the cleaned entry names of a .tar.gz archive.
func archiveNames(p string) ([]string, error) {
	var names []string
	err := readArchive(p, func(hdr *tar.Header, name string, _ io.Reader) error {
		names = append(names, name)
		return nil
	})
	return names, err
}

// readArchive calls fn for every entry of a .tar.gz archive with its cleaned, relative name.
func readArchive(p string, fn func(hdr *tar.Header, name string, r io.Reader) error) error {
	f, err := os.Open(p) //nolint:gosec // the operator's own archive
	if err != nil {
		return fmt.Errorf("moodle source: %w", err)
	}
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("moodle source %s: %w", p, err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("moodle source %s: %w", p, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := cleanEntry(hdr.Name)
		if err != nil {
			return fmt.Errorf("moodle source %s: %w", p, err)
		}
		if name == "" {
			continue
		}
		if err := fn(hdr, name, tr); err != nil {
			return err
		}
	}
}

// cleanEntry makes an archive entry name relative and clean, refusing names that leave the tree.
func cleanEntry(n string) (string, error) {
	n = strings.TrimPrefix(n, "./")
	if strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("entry %q has an absolute path", n)
	}
	c := path.Clean(n)
	if c == "." {
		return "", nil
	}
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("entry %q leaves the tree", n)
	}
	return c, nil
}

// skipped reports whether a release leaves out rel: version control data, and a config.php at the top
// (every release gets MOHD's shim instead).
func skipped(rel string) bool {
	if rel == "config.php" {
		return true
	}
	for _, part := range strings.Split(rel, "/") {
		if part == ".git" {
			return true
		}
	}
	return false
}

// checkLink refuses a symbolic link that is absolute or points out of the tree.
func checkLink(rel, target string) error {
	if path.IsAbs(target) {
		return fmt.Errorf("moodle source: symbolic link %s points to the absolute path %s (a release must be self-contained)", rel, target)
	}
	if c := path.Clean(path.Join(path.Dir(rel), target)); c == ".." || strings.HasPrefix(c, "../") {
		return fmt.Errorf("moodle source: symbolic link %s points out of the tree (%s)", rel, target)
	}
	return nil
}

func normMode(m int64, dir bool) int64 {
	if dir || m&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

// writeTar writes the release tar: entries in name order (a directory) or archive order (an archive),
// with normalized modes (0755 directories and executables, 0644 files), root as owner and tarEpoch as
// time, so that the same content always gives the same bytes.
func (lt *localTree) writeTar(w io.Writer) error {
	tw := tar.NewWriter(w)
	var err error
	if lt.strip == "" && !isArchive(lt.path) {
		err = lt.tarDir(tw)
	} else {
		err = lt.tarArchive(tw)
	}
	if err != nil {
		return err
	}
	return tw.Close()
}

func (lt *localTree) tarDir(tw *tar.Writer) error {
	return filepath.WalkDir(lt.path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("moodle source: %w", err)
		}
		rel, err := filepath.Rel(lt.path, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skipped(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("moodle source: %w", err)
		}
		hdr := &tar.Header{Name: rel, ModTime: tarEpoch, Mode: normMode(int64(info.Mode().Perm()), d.IsDir())}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("moodle source: %w", err)
			}
			if err := checkLink(rel, target); err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, target, 0o777
		case info.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		default:
			return fmt.Errorf("moodle source: %s is neither a file, a directory nor a symbolic link", p)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(p) //nolint:gosec // the operator's own tree
		if err != nil {
			return fmt.Errorf("moodle source: %w", err)
		}
		defer func() { _ = f.Close() }()
		n, err := io.Copy(tw, f)
		if err != nil {
			return fmt.Errorf("moodle source: %s: %w", p, err)
		}
		if n != hdr.Size {
			return fmt.Errorf("moodle source: %s changed while it was read (%d bytes, then %d)", p, hdr.Size, n)
		}
		return nil
	})
}

func (lt *localTree) tarArchive(tw *tar.Writer) error {
	return readArchive(lt.path, func(in *tar.Header, name string, r io.Reader) error {
		if lt.strip != "" {
			if name+"/" == lt.strip {
				return nil
			}
			name = strings.TrimPrefix(name, lt.strip)
		}
		if skipped(name) {
			return nil
		}
		hdr := &tar.Header{Name: name, ModTime: tarEpoch, Mode: normMode(in.Mode, in.Typeflag == tar.TypeDir)}
		switch in.Typeflag {
		case tar.TypeDir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives still use TypeRegA
			hdr.Typeflag, hdr.Size = tar.TypeReg, in.Size
		case tar.TypeSymlink:
			if err := checkLink(name, in.Linkname); err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, in.Linkname, 0o777
		case tar.TypeLink:
			target, err := cleanEntry(in.Linkname)
			if err != nil || target == "" {
				return fmt.Errorf("moodle source %s: hard link %s: bad target %q", lt.path, name, in.Linkname)
			}
			if lt.strip != "" {
				target = strings.TrimPrefix(target, lt.strip)
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, target
		default:
			return fmt.Errorf("moodle source %s: entry %s is neither a file, a directory nor a link", lt.path, name)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, r); err != nil {
				return fmt.Errorf("moodle source %s: %w", lt.path, err)
			}
		}
		return nil
	})
}

// digest returns the sha256 of the release tar and its size.
func (lt *localTree) digest() (sum string, size int64, err error) {
	h := sha256.New()
	cw := &countWriter{w: h}
	if err := lt.writeTar(cw); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReleaseID returns the release id a local source deploys as ("tar-" and the first 16 hex digits of the
// sha256 of its release tar), reading the whole tree. A git source's id is known on the web node only
// (Deploy resolves the ref there).
func ReleaseID(s Source) (string, error) {
	if s.GitURL != "" {
		if err := s.Validate(); err != nil {
			return "", err
		}
		if sha1Re.MatchString(s.Ref) {
			return gitID(s.Ref), nil
		}
		return "", errors.New("moodle source: the release id of a git branch or tag is resolved on the web node")
	}
	lt, err := prepareLocal(s)
	if err != nil {
		return "", err
	}
	sum, _, err := lt.digest()
	if err != nil {
		return "", err
	}
	return tarID(sum), nil
}

func tarID(sha256hex string) string { return "tar-" + sha256hex[:16] }
func gitID(commit string) string    { return "git-" + commit[:16] }

var releaseIDRe = regexp.MustCompile(`^(tar|git)-[0-9a-f]{16}$`)
