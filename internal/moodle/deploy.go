package moodle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Release is a deployed Moodle tree, as its version.php describes it.
type Release struct {
	// ID is the directory under Releases: "tar-" or "git-" and 16 hex digits of the content's hash or
	// commit, or Placeholder.
	ID       string
	Version  string // $version, e.g. "2024100700.00"
	Release  string // $release, e.g. "4.5 (Build: 20241007)"
	Branch   string // $branch, e.g. "405"
	Maturity string // $maturity, e.g. "MATURITY_STABLE"
}

// Deployed reports whether r is real code rather than the role's placeholder.
func (r Release) Deployed() bool { return r.ID != "" && r.ID != Placeholder }

// Dir is the release's directory on the web node.
func (r Release) Dir() string { return Releases + "/" + r.ID }

// marker is written into each release (a dotfile: Apache refuses to serve it) when it is complete; its time
// orders releases for pruning.
const marker = ".mohd-release"

// deployLock serializes deployments, rollbacks and pruning on one web node.
const deployLock = "moodle-deploy"

// Deploy makes src the current release on h: it builds releases/<id> (id derived from the content: the
// commit for git, the sha256 of the release tar for a local source) unless it exists, gives it the
// config.php shim, switches Root/current to it atomically (ln -s, mv -T), keeps the release it replaces as
// Root/previous for Rollback, reloads PHP-FPM gracefully, and prunes releases beyond KeepReleases. The same
// source deployed again changes nothing. progress (may be nil) receives one line per step.
//
// Write SiteConfig first (WriteConfig): the shim requires it. Deploy never touches the database: after
// deploying new code, run Upgrade (in maintenance) and PurgeCaches.
func Deploy(ctx context.Context, h remote.Host, src Source, progress func(string)) (Release, bool, error) {
	say := func(format string, a ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, a...))
		}
	}
	if err := src.Validate(); err != nil {
		return Release{}, false, err
	}
	var lt *localTree
	var sum string
	var size int64
	if src.Path != "" {
		var err error
		if lt, err = prepareLocal(src); err != nil {
			return Release{}, false, err
		}
		say("hashing %s", src.Path)
		if sum, size, err = lt.digest(); err != nil {
			return Release{}, false, err
		}
	}

	unlock, err := h.Lock(ctx, deployLock)
	if err != nil {
		return Release{}, false, err
	}
	defer func() { _ = unlock() }()

	var id, commit string
	if lt != nil {
		id = tarID(sum)
	} else {
		say("resolving %s on %s", src, h.Name())
		if commit, err = resolveGit(ctx, h, src); err != nil {
			return Release{}, false, err
		}
		id = gitID(commit)
	}

	changed := false
	exists, err := releaseExists(ctx, h, id)
	if err != nil {
		return Release{}, false, err
	}
	if !exists {
		tmp := Releases + "/.tmp-" + id
		if lt != nil {
			say("uploading release %s (%.1f MB) to %s", id, float64(size)/1e6, h.Name())
			err = uploadTree(ctx, h, lt, sum, tmp)
		} else {
			say("fetching commit %s into release %s on %s", commit, id, h.Name())
			err = fetchGit(ctx, h, src, commit, tmp)
		}
		if err != nil {
			return Release{}, false, err
		}
		if err := finishRelease(ctx, h, src, id, tmp); err != nil {
			return Release{}, false, err
		}
		changed = true
	}
	// Also in an existing release: the shim may come from an older MOHD.
	up, err := h.Upload(ctx, remote.File{Path: Releases + "/" + id + "/config.php", Content: shimPHP, Mode: 0o644, Owner: "root", Group: "root"})
	if err != nil {
		return Release{}, changed, err
	}
	changed = changed || up

	switched, err := switchCurrent(ctx, h, id)
	if err != nil {
		return Release{}, changed, err
	}
	if switched {
		say("switched %s to release %s", CurrentLink, id)
		if err := reloadFPM(ctx, h); err != nil {
			return Release{}, true, err
		}
		changed = true
	}
	pruned, err := prune(ctx, h)
	if err != nil {
		return Release{}, changed, err
	}
	if len(pruned) > 0 {
		say("removed old releases %s", strings.Join(pruned, ", "))
		changed = true
	}
	rel, err := readRelease(ctx, h, id)
	return rel, changed, err
}

// resolveGit returns the commit src.Ref names in src.GitURL, asking the repository from the web node.
func resolveGit(ctx context.Context, h remote.Host, src Source) (string, error) {
	if sha1Re.MatchString(src.Ref) {
		return src.Ref, nil
	}
	res, err := h.Run(ctx, remote.Cmd{
		Command: "GIT_TERMINAL_PROMPT=0 timeout 120 git ls-remote -- " + remote.Quote(src.GitURL) + " " + remote.Quote(src.Ref),
		Desc:    "git ls-remote " + src.redactedURL() + " " + src.Ref,
		Secrets: src.secrets(),
	})
	if err != nil {
		return "", fmt.Errorf("resolving %s (is the repository reachable from the web node, and public or with credentials in the URL?): %w", src, err)
	}
	// Prefer the commit of an annotated tag, then the tag, then the branch or the exact ref given, then
	// any ref ending in /Ref.
	ranks := map[string]int{
		"refs/tags/" + src.Ref + "^{}": 0,
		"refs/tags/" + src.Ref:         1,
		"refs/heads/" + src.Ref:        2,
		src.Ref:                        2,
	}
	best, rank := "", 99
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || !sha1Re.MatchString(f[0]) {
			continue
		}
		r, ok := ranks[f[1]]
		if !ok {
			if !strings.HasSuffix(f[1], "/"+src.Ref) {
				continue
			}
			r = 3
		}
		if r < rank {
			best, rank = f[0], r
		}
	}
	if best == "" {
		return "", wrap(h, "git repository %s has no branch or tag %q", src.redactedURL(), src.Ref)
	}
	return best, nil
}

func releaseExists(ctx context.Context, h remote.Host, id string) (bool, error) {
	d := Releases + "/" + id
	res, err := h.Run(ctx, remote.Cmd{
		Command: fmt.Sprintf("if [ -f %s/%s ] && [ -f %s/version.php ]; then echo yes; else echo no; fi", d, marker, d),
		Desc:    "look for release " + id,
	})
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(res.Stdout)) == "yes", nil
}

// uploadTree streams the release tar of lt into tmp on h, checking that what was sent is what was hashed.
func uploadTree(ctx context.Context, h remote.Host, lt *localTree, sum, tmp string) error {
	pr, pw := io.Pipe()
	hash := sha256.New()
	done := make(chan error, 1)
	go func() {
		err := lt.writeTar(io.MultiWriter(pw, hash))
		_ = pw.CloseWithError(err)
		done <- err
	}()
	_, err := h.Run(ctx, remote.Cmd{
		Command: fmt.Sprintf(`set -e
rm -rf %[1]s
mkdir -m 0755 %[1]s
# -m: files get the time of extraction (the tar's are all 1970), so Apache's ETag and Last-Modified change
# with each release. Owned by root, modes from the tar (0644, 0755).
tar -x -m --no-same-owner -f - -C %[1]s`, tmp),
		StdinStream: pr,
		Desc:        "extract the release into " + tmp,
	})
	_ = pr.CloseWithError(io.ErrClosedPipe) // unblocks the writer if the command ended early
	werr := <-done
	if err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != sum {
		return fmt.Errorf("moodle source %s changed while it was uploaded (sha256 %s, then %s): deploy again", lt.path, sum[:16], got[:16])
	}
	return nil
}

// fetchGit fetches commit from src into the node's git cache and exports it into tmp.
func fetchGit(ctx context.Context, h remote.Host, src Source, commit, tmp string) error {
	url := remote.Quote(src.GitURL)
	_, err := h.Run(ctx, remote.Cmd{
		Command: fmt.Sprintf(`set -e
export GIT_TERMINAL_PROMPT=0
repo=%[1]s
[ -d "$repo" ] || git init -q --bare "$repo"
# A commit by its id when the server allows it (it may have moved on since ls-remote), else the ref.
if ! git -C "$repo" fetch -q --depth 1 --no-tags -- %[2]s %[3]s 2>/dev/null; then
	git -C "$repo" fetch -q --depth 1 --no-tags -- %[2]s %[4]s
fi
got=$(git -C "$repo" rev-parse --verify -q 'FETCH_HEAD^{commit}')
if [ "$got" != %[3]s ]; then
	echo "the repository gave commit $got for %[5]s, not %[3]s: the ref moved while deploying; deploy again" >&2
	exit 3
fi
rm -rf %[6]s
mkdir -m 0755 %[6]s
# tar.umask 022: 0644 files, 0755 directories and executables.
git -C "$repo" -c tar.umask=022 archive --format=tar %[3]s | tar -x -m --no-same-owner -f - -C %[6]s
rm -f %[6]s/config.php`, GitCache, url, commit, remote.Quote(src.Ref), remote.Quote(src.Ref), tmp),
		Desc:    "fetch " + src.String() + " (" + commit[:12] + ")",
		Secrets: src.secrets(),
	})
	return err
}

// finishRelease checks tmp, writes its marker and renames it to its final name.
func finishRelease(ctx context.Context, h remote.Host, src Source, id, tmp string) error {
	m, _ := json.Marshal(map[string]string{"id": id, "source": src.String(), "deployed": time.Now().UTC().Format(time.RFC3339)})
	if _, err := h.Upload(ctx, remote.File{Path: tmp + "/" + marker, Content: append(m, '\n'), Mode: 0o644, Owner: "root", Group: "root"}); err != nil {
		return err
	}
	_, err := h.Run(ctx, remote.Cmd{
		Command: fmt.Sprintf(`set -e
if [ ! -f %[1]s/version.php ]; then
	echo "the source has no version.php at its top: it is not a Moodle tree" >&2
	rm -rf %[1]s
	exit 3
fi
chown -R root:root %[1]s
chmod -R go-w %[1]s
rm -rf %[2]s
mv -T %[1]s %[2]s`, tmp, Releases+"/"+id),
		Desc: "complete release " + id,
	})
	return err
}

// switchCurrent points current at releases/id; the release it replaces becomes previous.
func switchCurrent(ctx context.Context, h remote.Host, id string) (bool, error) {
	res, err := h.Run(ctx, remote.Cmd{
		Command: fmt.Sprintf(`set -e
cd %s
cur=$(readlink current || true)
want=releases/%s
[ "$cur" != "$want" ] || exit 0
case $cur in
releases/%s | "") ;;
*) ln -sfn "$cur" previous.tmp && mv -T previous.tmp previous ;;
esac
ln -sfn "$want" current.tmp
mv -T current.tmp current
echo switched`, Root, id, Placeholder),
		Desc: "switch " + CurrentLink + " to release " + id,
	})
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(res.Stdout)) == "switched", nil
}

// pruneScript removes the releases beyond KeepReleases (current and previous always stay), oldest first,
// and leftovers of interrupted deployments. Directories without MOHD's marker are left alone.
var pruneScript = fmt.Sprintf(`set -e
cd %s
rm -rf .tmp-*
cur=$(basename "$(readlink ../current 2>/dev/null || echo none)")
prev=$(basename "$(readlink ../previous 2>/dev/null || echo none)")
kept=0
for d in "$cur" "$prev"; do
	[ -f "$d/%[2]s" ] && kept=$((kept + 1))
done
for m in $(ls -1t -- */%[2]s 2>/dev/null); do
	d=${m%%/%[2]s}
	case $d in tar-???????????????? | git-????????????????) ;; *) continue ;; esac
	[ "$d" != "$cur" ] && [ "$d" != "$prev" ] || continue
	if [ "$kept" -lt %[3]d ]; then
		kept=$((kept + 1))
	else
		rm -rf -- "$d"
		echo "$d"
	fi
done`, Releases, marker, KeepReleases)

func prune(ctx context.Context, h remote.Host) ([]string, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: pruneScript, Desc: "prune old releases"})
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(res.Stdout)), nil
}

// versionScript prints a release's version.php as JSON; run as the web server's user with the release
// directory as argument. Moodle's version.php needs MOODLE_INTERNAL and the MATURITY_ constants.
const versionScript = `define('MOODLE_INTERNAL', true);
define('MATURITY_ALPHA', 50); define('MATURITY_BETA', 100); define('MATURITY_RC', 150); define('MATURITY_STABLE', 200);
define('ANY_VERSION', 'any');
$version = $release = $branch = $maturity = null;
require $argv[1] . '/version.php';
$names = [50 => 'MATURITY_ALPHA', 100 => 'MATURITY_BETA', 150 => 'MATURITY_RC', 200 => 'MATURITY_STABLE'];
echo json_encode([
    'version' => is_float($version) ? sprintf('%.2f', $version) : (string) $version,
    'release' => (string) $release,
    'branch' => (string) $branch,
    'maturity' => $names[$maturity] ?? (string) $maturity,
]), "\n";`

// readRelease reads releases/id/version.php.
func readRelease(ctx context.Context, h remote.Host, id string) (Release, error) {
	if id == Placeholder {
		return Release{ID: id}, nil
	}
	res, err := h.Run(ctx, remote.Cmd{
		Command: "cd / && " + PHP + " -n -r " + remote.Quote(versionScript) + " " + remote.Quote(Releases+"/"+id),
		AsUser:  WebUser,
		Desc:    "read the version of release " + id,
	})
	if err != nil {
		return Release{ID: id}, err
	}
	var v struct{ Version, Release, Branch, Maturity string }
	if err := json.Unmarshal(res.Stdout, &v); err != nil || v.Version == "" {
		return Release{ID: id}, wrap(h, "release %s: version.php gives no $version (output %q)", id, lastLine(res.Stdout))
	}
	return Release{ID: id, Version: v.Version, Release: v.Release, Branch: v.Branch, Maturity: v.Maturity}, nil
}

// currentID returns the release current points at.
func currentID(ctx context.Context, h remote.Host) (string, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: "readlink " + CurrentLink, Desc: "read " + CurrentLink})
	if err != nil {
		return "", fmt.Errorf("%w (is this a web node? the role web creates %s)", err, CurrentLink)
	}
	return path.Base(strings.TrimSpace(string(res.Stdout))), nil
}

// Current returns the release current points at (Release.ID is Placeholder before the first deployment).
func Current(ctx context.Context, h remote.Host) (Release, error) {
	id, err := currentID(ctx, h)
	if err != nil {
		return Release{}, err
	}
	return readRelease(ctx, h, id)
}

// Rollback switches current back to previous (and previous to the release it replaces, so a second
// Rollback goes forward again), then reloads PHP-FPM. It does not touch the database: rolling back code
// after Upgrade changed the database leaves a site Moodle refuses to run (a downgrade); restore the
// database too, or deploy forward.
func Rollback(ctx context.Context, h remote.Host) (Release, error) {
	unlock, err := h.Lock(ctx, deployLock)
	if err != nil {
		return Release{}, err
	}
	defer func() { _ = unlock() }()
	res, err := h.Run(ctx, remote.Cmd{
		Command: fmt.Sprintf(`set -e
cd %s
prev=$(readlink previous 2>/dev/null || true)
if [ -z "$prev" ] || [ ! -f "$prev/version.php" ]; then
	echo "there is no previous release to roll back to" >&2
	exit 3
fi
cur=$(readlink current || true)
ln -sfn "$prev" current.tmp
mv -T current.tmp current
case $cur in
releases/%s | "") rm -f previous ;;
*) ln -sfn "$cur" previous.tmp && mv -T previous.tmp previous ;;
esac
echo "$prev"`, Root, Placeholder),
		Desc: "roll " + CurrentLink + " back to the previous release",
	})
	if err != nil {
		return Release{}, err
	}
	if err := reloadFPM(ctx, h); err != nil {
		return Release{}, err
	}
	return readRelease(ctx, h, path.Base(strings.TrimSpace(string(res.Stdout))))
}
