package monitoring

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
)

// fakeMon plays a host of the monitoring role image on a remote.Fake: files live in the Fake's file table, and the
// package's scripts are answered from it.
type fakeMon struct {
	t *testing.T
	f *remote.Fake

	mu         sync.Mutex
	targetsDir bool
	active     map[string]string // unit: is-active
	enabled    map[string]string // unit: is-enabled
	deletedAt  map[string]int    // path: its upload count when it was removed
	promAnswer string            // /api/v1/targets' body ("" : Prometheus does not answer)
	stateReads int
	delay      time.Duration // each state read takes this long (widens races)
	starts     []string      // units started

	// A model of Prometheus' file discovery: the job files' mtimes, and the mtime it read of each.
	clock      int64
	uploads    map[string]int // uploads seen per path
	mtime      map[string]int64
	promRead   map[string]int64
	promReady  bool
	missEvents bool            // Prometheus misses the files written (as when it is starting)
	promNever  map[string]bool // files Prometheus never reads (a job missing from its configuration)
	nudges     []string
}

func newFakeMon(t *testing.T) *fakeMon {
	m := &fakeMon{t: t, f: remote.NewFake("debian@mon1:22"), targetsDir: true,
		active:    map[string]string{prometheusUnit: "active", alertmanagerUnit: "active"},
		enabled:   map[string]string{prometheusUnit: "enabled", alertmanagerUnit: "enabled"},
		deletedAt: map[string]int{}, clock: 1_700_000_000, uploads: map[string]int{}, mtime: map[string]int64{},
		promRead: map[string]int64{}, promReady: true, promNever: map[string]bool{}}
	m.f.Strict = true
	m.f.OnFunc(`(?m)^sec targetsdir$`, m.state)
	m.f.OnFunc(`(?m)^sec sd-files$`, func(remote.Cmd) (remote.Result, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		var b strings.Builder
		m.sd(&b)
		b.WriteString("\n==== mohd:end\n")
		return remote.Result{Stdout: []byte(b.String())}, nil
	})
	m.f.OnFunc(`\.mohd-nudge`, func(c remote.Cmd) (remote.Result, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, j := range Jobs() {
			p := JobFile(j)
			if strings.Contains(c.Command, "cp -p "+p+" ") {
				m.nudges = append(m.nudges, p)
				if !m.promNever[p] {
					m.promRead[p] = m.mtime[p]
				}
			}
		}
		return remote.Result{}, nil
	})
	m.f.OnFunc(`(?m)^sec url$`, m.alerting)
	m.f.OnFunc(`^rm -f -- `, func(c remote.Cmd) (remote.Result, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		p := strings.TrimPrefix(c.Command, "rm -f -- ")
		m.deletedAt[p] = m.uploadCount(p)
		return remote.Result{}, nil
	})
	m.f.OnFunc(`^systemctl enable --quiet (\S+) && systemctl start`, func(c remote.Cmd) (remote.Result, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		u := strings.Fields(c.Command)[3]
		m.active[u], m.enabled[u] = "active", "enabled"
		m.starts = append(m.starts, u)
		if u == prometheusUnit { // a start reads every file
			m.sync()
			for p, t := range m.mtime {
				if !m.promNever[p] {
					m.promRead[p] = t
				}
			}
		}
		return remote.Result{}, nil
	})
	return m
}

func (m *fakeMon) uploadCount(path string) int {
	n := 0
	for _, u := range m.f.Uploads() {
		if u.Path == path {
			n++
		}
	}
	return n
}

// file returns path's content when it exists (uploaded, or set, and not removed since).
func (m *fakeMon) file(path string) (remote.File, bool) {
	f, ok := m.f.File(path)
	if !ok {
		return f, false
	}
	if n, del := m.deletedAt[path]; del && m.uploadCount(path) <= n {
		return f, false
	}
	return f, true
}

func (m *fakeMon) fileOut(b *strings.Builder, path string) {
	if f, ok := m.file(path); ok {
		fmt.Fprintf(b, "%s %s %s %d\n%s\n", remote.ModeOctal(f.Mode), f.Owner, f.Group, m.mtime[path], sha256Hex(f.Content))
	}
}

// sync advances the clock and gives the files uploaded since the last command their mtime; Prometheus reads
// them at once, unless it misses events.
func (m *fakeMon) sync() {
	m.clock++
	counts := map[string]int{}
	for _, u := range m.f.Uploads() {
		counts[u.Path]++
	}
	for p, n := range counts {
		if n <= m.uploads[p] {
			continue
		}
		m.uploads[p] = n
		m.mtime[p] = m.clock
		// The write's event: Prometheus reads the file, unless it misses it.
		if !m.missEvents && m.active[prometheusUnit] == "active" && !m.promNever[p] {
			m.promRead[p] = m.clock
		}
	}
}

// sd prints the sections of sdScript.
func (m *fakeMon) sd(b *strings.Builder) {
	m.sync()
	b.WriteString("\n==== mohd:sd-files\n")
	for _, j := range Jobs() {
		if _, ok := m.file(JobFile(j)); ok {
			fmt.Fprintf(b, "%d %s\n", m.mtime[JobFile(j)], JobFile(j))
		}
	}
	up := m.active[prometheusUnit] == "active"
	b.WriteString("\n==== mohd:sd-ready\n")
	if up && m.promReady {
		b.WriteString("200\n")
	} else {
		b.WriteString("000\n")
	}
	b.WriteString("\n==== mohd:sd-read\n")
	if up {
		b.WriteString("ok\n")
		for p, t := range m.promRead {
			fmt.Fprintf(b, "prometheus_sd_file_mtime_seconds{filename=%q} %g\n", p, float64(t))
		}
	}
}

func (m *fakeMon) state(c remote.Cmd) (remote.Result, error) {
	if m.delay > 0 {
		time.Sleep(m.delay)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stateReads++
	var b strings.Builder
	sec := func(s string) { b.WriteString("\n==== mohd:" + s + "\n") }
	sec("targetsdir")
	if m.targetsDir {
		b.WriteString("yes\n")
	}
	sec("registry")
	m.fileOut(&b, RegistryFile)
	sec("registry-content")
	if f, ok := m.file(RegistryFile); ok {
		b.Write(f.Content)
	}
	m.sync()
	for _, j := range Jobs() {
		sec("job:" + j)
		m.fileOut(&b, JobFile(j))
	}
	m.sd(&b)
	for _, u := range []string{prometheusUnit, alertmanagerUnit} {
		sec("active:" + u)
		b.WriteString(m.active[u] + "\n")
		sec("enabled:" + u)
		b.WriteString(m.enabled[u] + "\n")
	}
	if strings.Contains(c.Command, "/api/v1/targets") {
		sec("targets")
		if m.promAnswer == "" {
			b.WriteString("curl: (7) Failed to connect to 127.0.0.1 port 9090: Connection refused\n000\n")
		} else {
			b.WriteString(m.promAnswer + "\n200\n")
		}
	}
	sec("end")
	return remote.Result{Stdout: []byte(b.String())}, nil
}

func (m *fakeMon) alerting(remote.Cmd) (remote.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	b.WriteString("\n==== mohd:url\n")
	m.fileOut(&b, MattermostURLFile)
	for _, s := range []string{"active", "enabled"} {
		b.WriteString("\n==== mohd:" + s + ":" + alertmanagerUnit + "\n")
		if s == "active" {
			b.WriteString(m.active[alertmanagerUnit] + "\n")
		} else {
			b.WriteString(m.enabled[alertmanagerUnit] + "\n")
		}
	}
	b.WriteString("\n==== mohd:end\n")
	return remote.Result{Stdout: []byte(b.String())}, nil
}

// content returns path's content, failing the test when it does not exist.
func (m *fakeMon) content(path string) string {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.file(path)
	if !ok {
		m.t.Fatalf("%s does not exist", path)
	}
	return string(f.Content)
}

// handEdit writes path as an administrator would (same owner and mode); Prometheus reads it.
func (m *fakeMon) handEdit(path, content string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, _ := m.f.File(path)
	f.Content = []byte(content)
	m.f.SetFile(f)
	m.clock++
	m.mtime[path] = m.clock
	m.promRead[path] = m.clock
}

func TestMain(m *testing.M) {
	// Prometheus' model reacts at once: settle need not wait long.
	settlePoll, settleNudgeAfter, settleTimeout = 2*time.Millisecond, 20*time.Millisecond, 300*time.Millisecond
	m.Run()
}
