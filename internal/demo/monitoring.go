package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// siteJobs are the scrape jobs of the monitoring role's Prometheus that the cluster's members fill (file_sd):
// a job missing from Prometheus' targets is one nothing registered with.
var siteJobs = []string{"node", "haproxy", "apache", "mysqld", "redis", "nfs"}

type promTarget struct {
	Labels    map[string]string `json:"labels"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
}

// scrapeWait bounds how long scrapeReport waits for Prometheus to discover and scrape every target.
var scrapeWait = 2 * time.Minute

// scrapeReport asks Prometheus at base (http://host:9090) what it scrapes, once every target has been
// scraped at least once and every job of the site has targets (up to two minutes after a registration), and says it per job: how many targets are
// up, which are down and why, and which of the site's jobs have no target.
func scrapeReport(ctx context.Context, base string) (string, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	var targets []promTarget
	deadline := time.Now().Add(scrapeWait)
	for {
		var err error
		if targets, err = activeTargets(ctx, client, base); err != nil {
			return "", err
		}
		// Pending: a target not scraped yet, or a job of the site Prometheus has not discovered a target of
		// yet (file discovery may read a file written while Prometheus was starting only later).
		pending := slices.ContainsFunc(targets, func(t promTarget) bool { return t.Health == "unknown" }) ||
			slices.ContainsFunc(siteJobs, func(j string) bool {
				return !slices.ContainsFunc(targets, func(t promTarget) bool { return t.Labels["job"] == j })
			})
		if !pending || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(3 * time.Second):
		}
	}
	type count struct{ up, all int }
	jobs := map[string]*count{}
	var down []string
	for _, t := range targets {
		job := t.Labels["job"]
		if jobs[job] == nil {
			jobs[job] = &count{}
		}
		jobs[job].all++
		if t.Health == "up" {
			jobs[job].up++
		} else {
			down = append(down, fmt.Sprintf("%s %s (%s: %s)", job, t.Labels["instance"], t.Health, t.LastError))
		}
	}
	names := make([]string, 0, len(jobs))
	for j := range jobs {
		names = append(names, j)
	}
	slices.Sort(names)
	var parts []string
	for _, j := range names {
		parts = append(parts, fmt.Sprintf("%s %d/%d up", j, jobs[j].up, jobs[j].all))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "scrapes %s", strings.Join(parts, ", "))
	var none []string
	for _, j := range siteJobs {
		if jobs[j] == nil {
			none = append(none, j)
		}
	}
	if len(none) > 0 {
		fmt.Fprintf(&b, "; no targets registered for %s", strings.Join(none, ", "))
	}
	for _, d := range down {
		fmt.Fprintf(&b, "\nDOWN: %s", d)
	}
	return b.String(), nil
}

func activeTargets(ctx context.Context, client *http.Client, base string) ([]promTarget, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/targets?state=active", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking Prometheus for its targets: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ActiveTargets []promTarget `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		return nil, fmt.Errorf("reading the targets of Prometheus at %s: %s %.200s", base, resp.Status, body)
	}
	return r.Data.ActiveTargets, nil
}
