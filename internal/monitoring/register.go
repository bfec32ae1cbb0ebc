package monitoring

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Register makes targets the whole set of member's scrape targets on the monitoring host h (an empty set
// unregisters member), leaving the other members' alone, and re-asserts everything the registry holds: every
// job's file, Prometheus running. Prometheus picks the new targets up within seconds, without a reload. changed
// reports whether anything on the host changed.
func Register(ctx context.Context, h remote.Host, member string, targets []Target) (changed bool, err error) {
	if err := validMember(member); err != nil {
		return false, err
	}
	ts, err := normalizeTargets(targets)
	if err != nil {
		return false, fmt.Errorf("member %s: %w", member, err)
	}
	return apply(ctx, h, func(r *registry) error {
		if len(ts) == 0 {
			delete(r.Members, member)
		} else {
			r.Members[member] = ts
		}
		return nil
	})
}

// Unregister removes member's targets from the monitoring host h. A member the registry does not have is left
// alone: nothing on the host changes.
func Unregister(ctx context.Context, h remote.Host, member string) error {
	if err := validMember(member); err != nil {
		return err
	}
	_, err := apply(ctx, h, func(r *registry) error {
		if _, ok := r.Members[member]; !ok {
			return errNoop
		}
		delete(r.Members, member)
		return nil
	})
	return err
}

// errNoop makes apply return at once, changing nothing.
var errNoop = errors.New("nothing to do")

// registryFile and jobFile are the files as Register writes them. The registry is readable by Prometheus'
// group only (it names every host of the site); the job files are like the role's other files in /etc/prometheus.
func registryFile(r registry) remote.File {
	return remote.File{Path: RegistryFile, Content: r.marshal(), Mode: 0o640, Owner: "root", Group: prometheusGroup}
}

func jobFile(r registry, job string) remote.File {
	return remote.File{Path: JobFile(job), Content: renderJob(r, job), Mode: 0o644, Owner: "root", Group: "root"}
}

// desiredFiles are the registry, then every job's file.
func desiredFiles(r registry) []remote.File {
	files := []remote.File{registryFile(r)}
	for _, j := range Jobs() {
		files = append(files, jobFile(r, j))
	}
	return files
}

func (hs *hostState) file(path string) fileState {
	if path == RegistryFile {
		return hs.regFile
	}
	for _, j := range Jobs() {
		if JobFile(j) == path {
			return hs.jobFiles[j]
		}
	}
	return fileState{}
}

// apply is the one way the registry changes: under the lock, read the registry, let mutate change it, write the
// registry and then every job's file that is not what the registry renders, and start Prometheus if it is down.
func apply(ctx context.Context, h remote.Host, mutate func(*registry) error) (bool, error) {
	unlock, err := h.Lock(ctx, LockName)
	if err != nil {
		return false, fmt.Errorf("monitoring: taking the lock of Prometheus' targets on %s: %w", h.Name(), err)
	}
	defer func() { _ = unlock() }()

	hs, err := readHostState(ctx, h, false)
	if err != nil {
		return false, err
	}
	if !hs.targetsDir {
		return false, fmt.Errorf("monitoring: %s has no %s: is it a host of MOHD's monitoring role image?", h.Name(), TargetsDir)
	}
	if hs.regErr != nil {
		return false, fmt.Errorf("monitoring: %s: %w", h.Name(), hs.regErr)
	}
	reg := hs.reg.clone()
	if err := mutate(&reg); err != nil {
		if errors.Is(err, errNoop) {
			return false, nil
		}
		return false, err
	}
	changed := false
	wrote := false
	// The registry first: should a job file fail, the next apply renders it from what was asked. Upload writes
	// atomically (rename), so Prometheus never reads half a file.
	for _, f := range desiredFiles(reg) {
		if hs.file(f.Path).matches(f) {
			continue
		}
		c, err := h.Upload(ctx, f)
		if err != nil {
			return changed, fmt.Errorf("monitoring: writing %s: %w", f.Path, err)
		}
		changed = changed || c
		wrote = wrote || f.Path != RegistryFile
	}
	started, err := ensureRunning(ctx, h, hs, prometheusUnit)
	if err != nil {
		return changed || started, err
	}
	if !wrote && !started && len(hs.promSD.unread()) == 0 {
		return changed, nil
	}
	nudged, err := settle(ctx, h)
	return changed || started || nudged, err
}

// How long settle waits for Prometheus to read the job files, and how long a file may stay unread before it
// is nudged (Prometheus normally reads a changed file within milliseconds). Variables for the tests.
var (
	settleTimeout    = 30 * time.Second
	settleNudgeAfter = 2 * time.Second
	settlePoll       = 300 * time.Millisecond
)

// settle waits until Prometheus has read every job file as it is on disk, so that Register returns with the
// targets in Prometheus' hands. A file Prometheus missed (changed while it was starting: see sdState) is
// nudged: renamed over itself, unchanged, which makes its file discovery read it again. nudged reports
// whether it had to. A Prometheus that is not ready within settleTimeout (a long start) is left to read the
// files when it is; one that runs but never reads a file is an error.
func settle(ctx context.Context, h remote.Host) (nudged bool, err error) {
	deadline := time.Now().Add(settleTimeout)
	var firstUnread, lastNudge time.Time
	for {
		select {
		case <-ctx.Done():
			return nudged, fmt.Errorf("monitoring: %s: waiting for Prometheus to read its targets: %w", h.Name(), ctx.Err())
		case <-time.After(settlePoll):
		}
		res, err := h.Run(ctx, remote.Cmd{Command: "sec() { printf '\\n==== mohd:%s\\n' \"$1\"; }\n" + sdScript + "sec end\n",
			Desc: "check that Prometheus has read its target files"})
		if err != nil {
			return nudged, fmt.Errorf("monitoring: %w", err)
		}
		secs := splitSections(string(res.Stdout))
		if _, ok := secs["end"]; !ok {
			return nudged, fmt.Errorf("monitoring: %s: the check's output is incomplete: %q", h.Name(), remote.Tail(string(res.Stdout)))
		}
		sd := parseSD(secs)
		unread := sd.unread()
		now := time.Now()
		switch {
		case !sd.ready || sd.mtimes == nil:
			if now.After(deadline) {
				return nudged, nil
			}
			continue
		case len(unread) == 0:
			return nudged, nil
		case now.After(deadline):
			return nudged, fmt.Errorf("monitoring: %s: Prometheus runs but has not read %s within %s: check that /etc/prometheus/prometheus.yml is the monitoring role's (a file_sd job per file) and see journalctl -u prometheus",
				h.Name(), strings.Join(unread, ", "), settleTimeout)
		case firstUnread.IsZero():
			firstUnread = now
			continue
		case now.Sub(firstUnread) < settleNudgeAfter || now.Sub(lastNudge) < settleNudgeAfter:
			continue
		}
		if _, err := h.Run(ctx, remote.Cmd{Command: nudgeScript(unread), Desc: "make Prometheus read " + strings.Join(unread, ", ") + " again"}); err != nil {
			return nudged, fmt.Errorf("monitoring: %w", err)
		}
		nudged, lastNudge = true, now
	}
}

// nudgeScript renames each file over itself through a copy (same content, owner, mode and mtime): a new
// directory entry, which Prometheus' file discovery watches.
func nudgeScript(files []string) string {
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, f := range files {
		q := remote.Quote(f)
		b.WriteString("cp -p " + q + " " + q + ".mohd-nudge && mv -f " + q + ".mohd-nudge " + q + "\n")
	}
	return b.String()
}
