package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"sync"
	"time"
)

// Fake is an in-memory Host for unit tests of code that uses Host (like
// Packer's MockCommunicator). Commands are answered by scripted rules,
// uploads go to an in-memory file table, locks are in-process mutexes; all
// calls are recorded. The zero value is not usable: call NewFake.
type Fake struct {
	// Strict makes commands that match no rule fail with exit code 127
	// instead of succeeding with empty output.
	Strict bool
	// Redactor (optional) is applied to ExitError messages like sshx does.
	Redactor *Redactor

	name  string
	mu    sync.Mutex
	rules []*FakeRule
	calls []Cmd
	ups   []File
	files map[string]File
	locks map[string]chan struct{}
	taken []string
}

// FakeRule is a scripted answer; see Fake.On.
type FakeRule struct {
	re    *regexp.Regexp
	res   Result
	fn    func(Cmd) (Result, error)
	times int // remaining uses; <0 unlimited
	used  int
}

// Times limits the rule to n uses; after that it no longer matches.
func (r *FakeRule) Times(n int) *FakeRule { r.times = n; return r }

// NewFake returns a Fake whose Name() is name ("root@fake:22" when empty).
func NewFake(name string) *Fake {
	if name == "" {
		name = "root@fake:22"
	}
	return &Fake{name: name, files: map[string]File{}, locks: map[string]chan struct{}{}}
}

// On answers commands matching the regular expression pattern with res.
// A non-zero res.ExitCode makes Run return an *ExitError too. Rules are
// tried in the order they were added; the first match wins.
func (f *Fake) On(pattern string, res Result) *FakeRule {
	r := &FakeRule{re: regexp.MustCompile(pattern), res: res, times: -1}
	f.mu.Lock()
	f.rules = append(f.rules, r)
	f.mu.Unlock()
	return r
}

// OnFunc answers commands matching pattern by calling fn. A non-zero
// ExitCode with a nil error is turned into an *ExitError.
func (f *Fake) OnFunc(pattern string, fn func(Cmd) (Result, error)) *FakeRule {
	r := &FakeRule{re: regexp.MustCompile(pattern), fn: fn, times: -1}
	f.mu.Lock()
	f.rules = append(f.rules, r)
	f.mu.Unlock()
	return r
}

// Name implements Host.
func (f *Fake) Name() string { return f.name }

// Run implements Host.
func (f *Fake) Run(ctx context.Context, c Cmd) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	// Streams become plain bytes, so rules and Calls see what a command was fed.
	if c.StdinStream != nil {
		in, err := io.ReadAll(c.StdinStream)
		if err != nil {
			return Result{}, err
		}
		c.Stdin, c.StdinStream = in, nil
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	var rule *FakeRule
	for _, r := range f.rules {
		if r.times >= 0 && r.used >= r.times {
			continue
		}
		if r.re.MatchString(c.Command) {
			rule = r
			r.used++
			break
		}
	}
	strict := f.Strict
	f.mu.Unlock()

	start := time.Now()
	var res Result
	var err error
	switch {
	case rule == nil && strict:
		res = Result{ExitCode: 127, Stderr: []byte("fake: no rule matches command: " + ShortCommand(c.Command) + "\n")}
	case rule == nil:
	case rule.fn != nil:
		res, err = rule.fn(c)
	default:
		res = rule.res
		res.Stdout = bytes.Clone(res.Stdout)
		res.Stderr = bytes.Clone(res.Stderr)
	}
	if res.Duration == 0 {
		res.Duration = time.Since(start)
	}
	if c.StdoutStream != nil && len(res.Stdout) > 0 {
		if _, werr := c.StdoutStream.Write(res.Stdout); werr != nil && err == nil {
			err = werr
		}
		res.Stdout = nil
	}
	if err == nil && res.ExitCode != 0 {
		err = NewExitError(f.name, c, res.ExitCode, "", res.Stderr, f.Redactor)
	}
	return res, err
}

// Upload implements Host: the file table keeps the last written version.
func (f *Fake) Upload(ctx context.Context, file File) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if file.Path == "" || file.Path[0] != '/' {
		return false, fmt.Errorf("%s: upload: path %q is not absolute", f.name, file.Path)
	}
	file.Content = bytes.Clone(file.Content)
	file.Mode = file.FileMode()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ups = append(f.ups, file)
	old, ok := f.files[file.Path]
	if ok && bytes.Equal(old.Content, file.Content) && old.Mode == file.Mode &&
		(file.Owner == "" || old.Owner == file.Owner) && (file.Group == "" || old.Group == file.Group) {
		return false, nil
	}
	f.files[file.Path] = file
	return true, nil
}

// Lock implements Host with an in-process mutex per name.
func (f *Fake) Lock(ctx context.Context, name string) (func() error, error) {
	if err := ValidLockName(name); err != nil {
		return nil, err
	}
	for {
		f.mu.Lock()
		ch, held := f.locks[name]
		if !held {
			ch = make(chan struct{})
			f.locks[name] = ch
			f.taken = append(f.taken, name)
			f.mu.Unlock()
			var once sync.Once
			return func() error {
				once.Do(func() {
					f.mu.Lock()
					delete(f.locks, name)
					f.mu.Unlock()
					close(ch)
				})
				return nil
			}, nil
		}
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: waiting for lock %q: %w", f.name, name, ctx.Err())
		}
	}
}

// SetFile puts a file into the table as if it already existed on the host.
func (f *Fake) SetFile(file File) {
	file.Content = bytes.Clone(file.Content)
	file.Mode = file.FileMode()
	f.mu.Lock()
	f.files[file.Path] = file
	f.mu.Unlock()
}

// File returns the current content of path in the file table.
func (f *Fake) File(path string) (File, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	file, ok := f.files[path]
	return file, ok
}

// Calls returns every Cmd passed to Run, in order.
func (f *Fake) Calls() []Cmd {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Cmd(nil), f.calls...)
}

// Commands returns the Command of every Run call, in order.
func (f *Fake) Commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.calls))
	for i, c := range f.calls {
		out[i] = c.Command
	}
	return out
}

// Uploads returns every File passed to Upload (changed or not), in order.
func (f *Fake) Uploads() []File {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]File(nil), f.ups...)
}

// LocksTaken returns the names of every lock acquired, in order.
func (f *Fake) LocksTaken() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.taken...)
}

var _ Host = (*Fake)(nil)
