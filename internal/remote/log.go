package remote

import (
	"sort"
	"strings"
	"sync"
)

// Logger receives structured log entries. The provider maps it to tflog,
// the Packer plugin to its UI log. Implementations must be safe for
// concurrent use. Messages and fields are already redacted.
type Logger interface {
	Debug(msg string, fields map[string]any)
	Info(msg string, fields map[string]any)
	Warn(msg string, fields map[string]any)
}

// NopLogger returns a Logger that discards everything.
func NopLogger() Logger { return nopLogger{} }

type nopLogger struct{}

func (nopLogger) Debug(string, map[string]any) {}
func (nopLogger) Info(string, map[string]any)  {}
func (nopLogger) Warn(string, map[string]any)  {}

// Redacted is what a secret is replaced with.
const Redacted = "***"

// minLineSecret is the shortest line of a multi-line secret (a PEM key, a
// certificate) that is redacted on its own, so that a partial dump is
// hidden too.
const minLineSecret = 8

// Redactor replaces every registered secret with "***". The zero value is
// ready to use; a nil *Redactor redacts nothing. Safe for concurrent use.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string // longest first
}

// NewRedactor returns a Redactor knowing secrets.
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Add(secrets...)
	return r
}

// Add registers secrets. Empty strings are ignored. A multi-line secret is
// registered whole and line by line (lines of 8+ characters).
func (r *Redactor) Add(secrets ...string) {
	if r == nil {
		return
	}
	var add []string
	for _, s := range secrets {
		add = append(add, expandSecret(s)...)
	}
	if len(add) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range add {
		dup := false
		for _, have := range r.secrets {
			if have == s {
				dup = true
				break
			}
		}
		if !dup {
			r.secrets = append(r.secrets, s)
		}
	}
	sort.SliceStable(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
}

func expandSecret(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	out := []string{s}
	if strings.ContainsAny(s, "\r\n") {
		for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
			line = strings.TrimSpace(line)
			if len(line) >= minLineSecret && !strings.HasPrefix(line, "-----") {
				out = append(out, line)
			}
		}
	}
	return out
}

// With returns a copy of r that also redacts extra (r itself is unchanged).
func (r *Redactor) With(extra ...string) *Redactor {
	n := &Redactor{}
	if r != nil {
		r.mu.RLock()
		n.secrets = append(n.secrets, r.secrets...)
		r.mu.RUnlock()
	}
	n.Add(extra...)
	return n
}

// Redact returns s with every secret replaced by "***".
func (r *Redactor) Redact(s string) string {
	if r == nil || s == "" {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Redacted)
		}
	}
	return s
}

// RedactFields returns a copy of fields with every string value redacted.
func (r *Redactor) RedactFields(fields map[string]any) map[string]any {
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		switch x := v.(type) {
		case string:
			out[k] = r.Redact(x)
		case error:
			out[k] = r.Redact(x.Error())
		default:
			out[k] = v
		}
	}
	return out
}
