package moodle

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mohd-dev/mohd/internal/remote"
)

// fakeNode scripts a web node's answers to Deploy: whether the release exists, what current points at.
type fakeNode struct {
	*remote.Fake
	exists  bool
	current string
	tar     []byte
}

func newFakeNode() *fakeNode {
	n := &fakeNode{Fake: remote.NewFake("root@web1:22"), current: "releases/placeholder"}
	n.Strict = true
	n.OnFunc(`^if \[ -f /var/www/moodle/releases/`, func(remote.Cmd) (remote.Result, error) {
		if n.exists {
			return remote.Result{Stdout: []byte("yes\n")}, nil
		}
		return remote.Result{Stdout: []byte("no\n")}, nil
	})
	n.OnFunc(`^set -e\nrm -rf /var/www/moodle/releases/\.tmp-`, func(c remote.Cmd) (remote.Result, error) {
		n.tar = c.Stdin
		return remote.Result{}, nil
	})
	n.OnFunc(`^set -e\nif \[ ! -f .*version.php`, func(remote.Cmd) (remote.Result, error) {
		n.exists = true
		return remote.Result{}, nil
	})
	n.OnFunc(`cur=\$\(readlink current`, func(c remote.Cmd) (remote.Result, error) {
		want := "releases/" + strings.Fields(strings.SplitAfter(c.Command, "want=releases/")[1])[0]
		if n.current == want {
			return remote.Result{}, nil
		}
		n.current = want
		return remote.Result{Stdout: []byte("switched\n")}, nil
	})
	n.On(`systemctl reload php8.2-fpm`, remote.Result{})
	n.On(`rm -rf \.tmp-\*`, remote.Result{})
	n.On(`(?s)-n -r .*version\.php`, remote.Result{Stdout: []byte(`{"version":"2024100700.00","release":"4.5 (Build: 20241007)","branch":"405","maturity":"MATURITY_STABLE"}` + "\n")})
	return n
}

func TestDeployLocal(t *testing.T) {
	ctx := context.Background()
	dir := writeTree(t, t.TempDir(), fixtureFiles)
	id, err := ReleaseID(Source{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	n := newFakeNode()
	var lines []string
	rel, changed, err := Deploy(ctx, n, Source{Path: dir}, func(s string) { lines = append(lines, s) })
	if err != nil {
		t.Fatal(err)
	}
	if !changed || rel.ID != id || rel.Version != "2024100700.00" || rel.Branch != "405" || !rel.Deployed() {
		t.Fatalf("first deploy: changed=%v release=%+v (id %s)", changed, rel, id)
	}
	if n.current != "releases/"+id {
		t.Fatalf("current points at %s", n.current)
	}
	// What went to the node: the release tar, streamed; the shim and the marker as files.
	names := tarNames(t, n.tar)
	if !names["version.php"] || !names["lib/setup.php"] || names["config.php"] {
		t.Fatalf("the uploaded tar holds %v", names)
	}
	shim, ok := n.File(Releases + "/" + id + "/config.php")
	if !ok || !bytes.Equal(shim.Content, shimPHP) || shim.Owner != "root" || shim.Mode != 0o644 {
		t.Fatalf("shim %+v", shim)
	}
	if _, ok := n.File(Releases + "/.tmp-" + id + "/" + marker); !ok {
		t.Fatal("no marker written into the new release")
	}
	if !containsCmd(n.Commands(), "systemctl reload php8.2-fpm") {
		t.Fatal("PHP-FPM not reloaded after the switch")
	}
	if got := n.LocksTaken(); len(got) != 1 || got[0] != deployLock {
		t.Fatalf("locks taken: %v", got)
	}
	if len(lines) == 0 || !strings.Contains(strings.Join(lines, "\n"), "switched") {
		t.Fatalf("progress: %q", lines)
	}

	// The same source again: nothing uploaded, nothing switched, nothing reloaded.
	calls := len(n.Calls())
	n.tar = nil
	rel2, changed, err := Deploy(ctx, n, Source{Path: dir}, nil)
	if err != nil || changed || rel2 != rel {
		t.Fatalf("second deploy: changed=%v release=%+v err=%v", changed, rel2, err)
	}
	if n.tar != nil || containsCmd(n.Commands()[calls:], "reload") {
		t.Fatal("the second deploy uploaded or reloaded")
	}
}

func TestDeployRefusesASourceThatChangesDuringUpload(t *testing.T) {
	dir := writeTree(t, t.TempDir(), fixtureFiles)
	n := newFakeNode()
	// The tree is edited between hashing and uploading.
	lt, err := prepareLocal(Source{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	sum, _, err := lt.digest()
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, dir, map[string]string{"index.php": "<?php echo 'edited';\n"})
	err = uploadTree(context.Background(), n, lt, sum, Releases+"/.tmp-x")
	if err == nil || !strings.Contains(err.Error(), "changed while it was uploaded") {
		t.Fatalf("upload of a tree edited after hashing: %v", err)
	}
}

func TestDeployGit(t *testing.T) {
	ctx := context.Background()
	commit := "0123456789abcdef0123456789abcdef01234567"
	n := newFakeNode()
	n.On(`git ls-remote -- https://git.example.edu/moodle.git v4.5.6`, remote.Result{Stdout: []byte(
		"1111111111111111111111111111111111111111\trefs/heads/v4.5.6-fixes\n" +
			"2222222222222222222222222222222222222222\trefs/tags/v4.5.6\n" +
			commit + "\trefs/tags/v4.5.6^{}\n")})
	var fetch string
	n.OnFunc(`git -C "\$repo" fetch`, func(c remote.Cmd) (remote.Result, error) {
		fetch = c.Command
		return remote.Result{}, nil
	})
	rel, changed, err := Deploy(ctx, n, Source{GitURL: "https://git.example.edu/moodle.git", Ref: "v4.5.6"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !changed || rel.ID != "git-0123456789abcdef" || n.current != "releases/git-0123456789abcdef" {
		t.Fatalf("changed=%v release=%+v current=%s", changed, rel, n.current)
	}
	if !strings.Contains(fetch, commit) || !strings.Contains(fetch, "tar.umask=022") || !strings.Contains(fetch, "rm -f /var/www/moodle/releases/.tmp-git-0123456789abcdef/config.php") {
		t.Fatalf("fetch script:\n%s", fetch)
	}
}

func TestResolveGitRefs(t *testing.T) {
	ctx := context.Background()
	out := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\trefs/heads/main\n" +
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\trefs/remotes/origin/main\n"
	h := remote.NewFake("")
	h.On(`ls-remote`, remote.Result{Stdout: []byte(out)})
	got, err := resolveGit(ctx, h, Source{GitURL: "https://x/y.git", Ref: "main"})
	if err != nil || got != strings.Repeat("a", 40) {
		t.Fatalf("main: %s %v", got, err)
	}
	h = remote.NewFake("")
	h.On(`ls-remote`, remote.Result{})
	if _, err := resolveGit(ctx, h, Source{GitURL: "https://x/y.git", Ref: "nope"}); err == nil || !strings.Contains(err.Error(), `no branch or tag "nope"`) {
		t.Fatalf("a missing ref: %v", err)
	}
	// A full commit id is not looked up.
	h = remote.NewFake("")
	h.Strict = true
	if got, err := resolveGit(ctx, h, Source{GitURL: "https://x/y.git", Ref: strings.Repeat("c", 40)}); err != nil || got != strings.Repeat("c", 40) {
		t.Fatalf("a commit id: %s %v", got, err)
	}
	// A password in the URL never reaches a log.
	h = remote.NewFake("")
	h.On(`ls-remote`, remote.Result{ExitCode: 128, Stderr: []byte("fatal: could not read from https://u:pw123@x/y.git")})
	_, err = resolveGit(ctx, h, Source{GitURL: "https://u:pw123@x/y.git", Ref: "main"})
	if err == nil || strings.Contains(err.Error(), "pw123") {
		t.Fatalf("error with the URL's password: %v", err)
	}
}

func TestRollback(t *testing.T) {
	h := remote.NewFake("")
	h.Strict = true
	h.On(`prev=\$\(readlink previous`, remote.Result{Stdout: []byte("releases/tar-0123456789abcdef\n")})
	h.On(`systemctl reload php8.2-fpm`, remote.Result{})
	h.On(`version\.php`, remote.Result{Stdout: []byte(`{"version":"2024100700.00","release":"4.5","branch":"405","maturity":"MATURITY_STABLE"}`)})
	rel, err := Rollback(context.Background(), h)
	if err != nil || rel.ID != "tar-0123456789abcdef" {
		t.Fatalf("rollback: %+v %v", rel, err)
	}
	h = remote.NewFake("")
	h.On(`prev=\$\(readlink previous`, remote.Result{ExitCode: 3, Stderr: []byte("there is no previous release to roll back to\n")})
	if _, err := Rollback(context.Background(), h); err == nil || !strings.Contains(err.Error(), "no previous release") {
		t.Fatalf("rollback without a previous release: %v", err)
	}
}

func TestCurrentPlaceholder(t *testing.T) {
	h := remote.NewFake("")
	h.Strict = true
	h.On(`^readlink /var/www/moodle/current$`, remote.Result{Stdout: []byte("releases/placeholder\n")})
	rel, err := Current(context.Background(), h)
	if err != nil || rel.ID != Placeholder || rel.Deployed() {
		t.Fatalf("%+v %v", rel, err)
	}
}

func TestPruneKeepsCurrentAndPrevious(t *testing.T) {
	// The script's decisions, on a real shell: releases by marker time, current and previous always kept.
	if _, err := lookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	root := t.TempDir()
	rels := filepath.Join(root, "releases")
	ids := []string{"tar-0000000000000001", "tar-0000000000000002", "git-0000000000000003", "tar-0000000000000004", "tar-0000000000000005"}
	for i, id := range ids {
		writeTree(t, rels, map[string]string{id + "/" + marker: "{}", id + "/version.php": "<?php"})
		touch(t, filepath.Join(rels, id, marker), int64(1000+i))
	}
	writeTree(t, rels, map[string]string{"placeholder/.keep": "", "manual/version.php": "", ".tmp-tar-0000000000000009/x": ""})
	symlink(t, "releases/"+ids[0], filepath.Join(root, "current"))  // the oldest is current (after a rollback)
	symlink(t, "releases/"+ids[2], filepath.Join(root, "previous")) // and a middle one previous
	script := strings.Replace(pruneScript, Releases, rels, 1)
	out, err := runSh(script)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	left := listDir(t, rels)
	want := []string{"git-0000000000000003", "manual", "placeholder", "tar-0000000000000001", "tar-0000000000000005"}
	if strings.Join(left, " ") != strings.Join(want, " ") {
		t.Fatalf("after pruning: %v, want %v (removed: %s)", left, want, out)
	}
}

func tarNames(t *testing.T, b []byte) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[hdr.Name] = true
	}
}
