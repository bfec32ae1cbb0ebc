package demo

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"
	"text/template"
	"time"
)

// Markdown is the bench's result as markdown tables: the Terraform timings, then the load runs with the
// cluster-to-naive ratio per page.
func (r *BenchResult) Markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	code := "MOHD's Moodle-shaped test fixture"
	if !r.Fixture {
		code = "Moodle from `" + r.Code + "`"
	}
	p("Measured %s on %d CPUs, %s RAM (load average %s when the bench started), commit `%s`, with `%s`; code: %s.",
		r.Date.Format("2006-01-02 15:04 MST"), r.NProc, r.MemTotal, r.LoadBefore, r.Commit, r.Command, code)
	p("")
	p("| step | time | per resource, as Terraform printed it |")
	p("|---|---|---|")
	p("| start the 9 hosts (lab containers, role images present) | %s | |", fmtDur(r.HostsStart))
	p("| full create: first `terraform apply` on fresh hosts | %s | %s |", fmtDur(r.Create), fmtSteps(r.CreateSteps))
	p("| empty `terraform plan` of the applied site | %s | |", fmtDur(r.EmptyPlan))
	p("| add a backend: `terraform apply` with a third web node | %s | %s |", fmtDur(r.AddBackend), fmtSteps(r.AddSteps))
	p("| remove it again (drained first) | %s | |", fmtDur(r.RemoveBackend))
	p("")
	p("| page | target | requests/s | p50 | p99 | errors | requests/s of each run |")
	p("|---|---|---|---|---|---|---|")
	for _, page := range []string{"login", "dashboard"} {
		var cluster, naive *Load
		for i := range r.Loads {
			l := &r.Loads[i]
			if l.Page != page {
				continue
			}
			name := "MOHD: VIP → HAProxy → 2 web nodes (event + PHP-FPM, Redis sessions)"
			if l.Target == "naive" {
				naive = l
				name = "naive: 1 host, prefork + mod_php, sessions in " + firstWord(r.NaiveSessions)
			} else {
				cluster = l
			}
			runs := make([]string, len(l.AllRPS))
			for i, v := range l.AllRPS {
				runs[i] = fmt.Sprintf("%.1f", v)
			}
			p("| %s `%s` | %s | %.1f | %s | %s | %d | %s |", page, l.Path, name, l.RPS, fmtLatency(l.P50), fmtLatency(l.P99), l.Errors,
				strings.Join(runs, ", "))
		}
		if cluster != nil && naive != nil && naive.RPS > 0 {
			p("| %s | **ratio MOHD / naive** | **%.2f×** | %.2f× | %.2f× | | |", page, cluster.RPS/naive.RPS,
				ratio(cluster.P50, naive.P50), ratio(cluster.P99, naive.P99))
		}
	}
	return b.String()
}

// fmtSteps shortens resource addresses (module.moodle.moodle_backend.this["web1"] -> moodle_backend web1).
func fmtSteps(steps []Step) string {
	parts := make([]string, len(steps))
	for i, st := range steps {
		a := st.Resource
		if j := strings.LastIndex(a, "moodle_"); j >= 0 {
			a = a[j:]
		}
		a = strings.Replace(a, ".this", "", 1)
		if k := strings.Index(a, "[\""); k >= 0 {
			a = a[:k] + " " + strings.Trim(a[k:], `[]"`)
		}
		parts[i] = a + " " + st.Took
	}
	return strings.Join(parts, ", ")
}

func firstWord(s string) string { w, _, _ := strings.Cut(s, " "); return w }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func fmtDur(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%d min %02d s", int(d.Minutes()), int(d.Seconds())%60)
}

func fmtLatency(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

//go:embed benchmark.md.tmpl.tmpl
var guideTemplate string

// Guide is the docs page (templates/guides/benchmark.md.tmpl, which `make generate` renders into
// docs/guides/benchmark.md) with this run's tables.
func (r *BenchResult) Guide() (string, error) {
	t, err := template.New("guide").Delims("[[", "]]").Parse(guideTemplate)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	err = t.Execute(&b, map[string]any{
		"R":        r,
		"Tables":   r.Markdown(),
		"Duration": fmt.Sprintf("%d", int(r.Options.Duration.Seconds())),
		"Warmup":   fmt.Sprintf("%d", int(r.Options.Warmup.Seconds())),
		"Runs":     fmt.Sprintf("%d", r.Options.Runs),
		"CPUs":     WebCPUs,
		"Memory":   WebMemory,
	})
	return b.String(), err
}

// WriteTemplate writes Guide to path.
func (r *BenchResult) WriteTemplate(path string) error {
	g, err := r.Guide()
	if err != nil {
		return err
	}
	return writeFileAtomic(path, []byte(g), 0o644)
}
