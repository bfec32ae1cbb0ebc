package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
)

// State is what Inspect found on the monitoring host for one member.
type State struct {
	// Member is the inspected member.
	Member string
	// Registered: the registry has targets for the member; Targets are they, sorted by job and address.
	Registered bool
	Targets    []Target
	// RegistryInSync: the member's targets in the registry are exactly the wanted ones.
	RegistryInSync bool
	// FilesInSync: the registry file and every job's file are what Register writes (content, mode, owner): no
	// file edited by hand, none missing.
	FilesInSync bool
	// PrometheusActive and AlertmanagerActive: the services run and start at boot.
	PrometheusActive, AlertmanagerActive bool
	// PrometheusRead: Prometheus has read every job file as it is on disk (true when it cannot tell: it is not
	// ready). A file it missed is re-read within 5 minutes; Register makes it read at once.
	PrometheusRead bool

	// Scrapes is Prometheus' view of the member's targets (those registered, and those wanted but not
	// registered), by job and address. Not drift: a target that is down is an alert.
	Scrapes []Scrape
	// PrometheusError says why Scrapes has no view ("" when Prometheus' API answered).
	PrometheusError string

	// InSync: the registry holds the wanted targets, the files are the registry's, Prometheus runs and has read
	// them.
	InSync bool
	// Diffs says what is not in sync, one line each (empty when InSync).
	Diffs []string
}

// Scrape is one target as Prometheus sees it.
type Scrape struct {
	Job, Address string
	// Member is the member whose entry Prometheus scrapes: the inspected member, or another that registered the
	// same job and address first by name (one scrape for both). Empty when the registry has no such target.
	Member string
	// Discovered: Prometheus has the target (it reads a changed job file within seconds).
	Discovered bool
	// Health is Prometheus' "up", "down" or "unknown" (not scraped yet); empty when not discovered.
	Health string
	// LastError is the last scrape's error ("" when it succeeded).
	LastError  string
	LastScrape time.Time
	ScrapeURL  string
}

// Scrape returns the scrape of job and address.
func (st State) Scrape(job, address string) (Scrape, bool) {
	for _, s := range st.Scrapes {
		if s.Job == job && s.Address == address {
			return s, true
		}
	}
	return Scrape{}, false
}

// Inspect compares member's targets on the monitoring host h with want (as Register takes them), checks the
// job files against the registry, and reads Prometheus' view of the member's targets. It changes nothing (it
// waits for the lock so that it never sees a Register half-way).
func Inspect(ctx context.Context, h remote.Host, member string, want []Target) (State, error) {
	if err := validMember(member); err != nil {
		return State{}, err
	}
	want, err := normalizeTargets(want)
	if err != nil {
		return State{}, fmt.Errorf("member %s: %w", member, err)
	}
	unlock, err := h.Lock(ctx, LockName)
	if err != nil {
		return State{}, fmt.Errorf("monitoring: taking the lock of Prometheus' targets on %s: %w", h.Name(), err)
	}
	defer func() { _ = unlock() }()
	hs, err := readHostState(ctx, h, true)
	if err != nil {
		return State{}, err
	}
	if !hs.targetsDir {
		return State{}, fmt.Errorf("monitoring: %s has no %s: is it a host of MOHD's monitoring role image?", h.Name(), TargetsDir)
	}
	if hs.regErr != nil {
		return State{}, fmt.Errorf("monitoring: %s: %w", h.Name(), hs.regErr)
	}
	return hs.state(member, want), nil
}

func (hs *hostState) state(member string, want []Target) State {
	reg := hs.reg
	st := State{Member: member, PrometheusActive: hs.running(prometheusUnit), AlertmanagerActive: hs.running(alertmanagerUnit)}
	st.Targets, st.Registered = reg.Members[member]
	st.Targets = slices.Clone(st.Targets)
	st.RegistryInSync = equalTargets(st.Targets, want)
	if !st.RegistryInSync {
		st.Diffs = append(st.Diffs, targetDiffs(member, st.Targets, want)...)
	}
	// A host where nothing was ever registered (no registry, no job file: the image's state) has the files of
	// an empty registry, as far as drift goes.
	st.FilesInSync = true
	if hs.regFile.exists || hs.anyJobFile() {
		for _, f := range desiredFiles(reg) {
			what := "the registry's rendering"
			if f.Path == RegistryFile {
				what = "what MOHD wrote"
			}
			if d := hs.file(f.Path).describe(f, what); d != "" {
				st.Diffs = append(st.Diffs, d)
				st.FilesInSync = false
			}
		}
	}
	if d := hs.serviceDiff(prometheusUnit); d != "" {
		st.Diffs = append(st.Diffs, d)
	}
	unread := hs.promSD.unread()
	st.PrometheusRead = len(unread) == 0
	for _, f := range unread {
		st.Diffs = append(st.Diffs, "Prometheus has not read "+f+" since it changed (it re-reads it within 5 minutes)")
	}
	st.Scrapes, st.PrometheusError = hs.scrapes(st.Targets, want)
	st.InSync = len(st.Diffs) == 0
	return st
}

// targetDiffs says how have (the registry's) differs from want, one line per target.
func targetDiffs(member string, have, want []Target) []string {
	var d []string
	h := map[string]Target{}
	for _, t := range have {
		h[t.key()] = t
	}
	w := map[string]bool{}
	for _, t := range want {
		w[t.key()] = true
		got, ok := h[t.key()]
		switch {
		case !ok:
			d = append(d, fmt.Sprintf("member %s: target %s is not registered", member, t))
		case !equalTargets([]Target{got}, []Target{t}):
			d = append(d, fmt.Sprintf("member %s: target %s has labels %s, want %s", member, t, labelString(got.Labels), labelString(t.Labels)))
		}
	}
	for _, t := range have {
		if !w[t.key()] {
			d = append(d, fmt.Sprintf("member %s: target %s is registered but not wanted", member, t))
		}
	}
	return d
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(l) // sorted keys
	return string(b)
}

// promTarget is one of Prometheus' active targets (/api/v1/targets).
type promTarget struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	Labels           map[string]string `json:"labels"`
	ScrapePool       string            `json:"scrapePool"`
	ScrapeURL        string            `json:"scrapeUrl"`
	LastError        string            `json:"lastError"`
	LastScrape       time.Time         `json:"lastScrape"`
	Health           string            `json:"health"`
}

func parsePromTargets(b []byte) ([]promTarget, error) {
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ActiveTargets []promTarget `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, fmt.Errorf("the answer of Prometheus' /api/v1/targets is not JSON: %w", err)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("the answer of Prometheus' /api/v1/targets is %s: %s", resp.Status, resp.Error)
	}
	return resp.Data.ActiveTargets, nil
}

// scrapes matches the member's targets, registered or wanted, with Prometheus' active targets: by job (the scrape
// pool) and address, whichever member's entry Prometheus scrapes.
func (hs *hostState) scrapes(have, want []Target) ([]Scrape, string) {
	all := slices.Clone(have)
	for _, t := range want {
		if !slices.ContainsFunc(all, func(x Target) bool { return x.key() == t.key() }) {
			all = append(all, t)
		}
	}
	sortTargets(all)
	var active []promTarget
	errText := hs.targetsErr
	if errText == "" && hs.targetsJSON != nil {
		var err error
		if active, err = parsePromTargets(hs.targetsJSON); err != nil {
			errText = err.Error()
		}
	}
	if errText == "" && hs.targetsJSON == nil {
		errText = "Prometheus' view was not read"
	}
	out := make([]Scrape, 0, len(all))
	for _, t := range all {
		s := Scrape{Job: t.Job, Address: t.Address, Member: hs.reg.owner(t)}
		for _, p := range active {
			if p.ScrapePool == t.Job && p.DiscoveredLabels["__address__"] == t.Address {
				s.Discovered, s.Health, s.LastError, s.LastScrape, s.ScrapeURL = true, p.Health, p.LastError, p.LastScrape, p.ScrapeURL
				break
			}
		}
		out = append(out, s)
	}
	return out, errText
}

// Notes sums up, for people, what Prometheus makes of the member's targets: the ones not scraped yet, down, or
// scraped under another member's entry. They are not drift.
func (st State) Notes() []string {
	var n []string
	if st.PrometheusError != "" {
		return []string{st.PrometheusError}
	}
	for _, s := range st.Scrapes {
		t := s.Job + " " + s.Address
		switch {
		case s.Member != "" && s.Member != st.Member:
			n = append(n, fmt.Sprintf("target %s is scraped as member %s's (registered there too)", t, s.Member))
		case !s.Discovered:
			n = append(n, "target "+t+" is not in Prometheus' targets (yet)")
		case s.Health == "down":
			n = append(n, fmt.Sprintf("target %s is down: %s", t, s.LastError))
		case s.Health != "up":
			n = append(n, "target "+t+" has not been scraped yet")
		}
	}
	return n
}

// Report returns Prometheus' health of the member's targets as "job address: health" lines, for logs.
func (st State) Report() string {
	var b strings.Builder
	for _, s := range st.Scrapes {
		h := s.Health
		if !s.Discovered {
			h = "not discovered"
		}
		fmt.Fprintf(&b, "%s %s: %s", s.Job, s.Address, h)
		if s.LastError != "" {
			fmt.Fprintf(&b, " (%s)", s.LastError)
		}
		b.WriteString("\n")
	}
	return b.String()
}
