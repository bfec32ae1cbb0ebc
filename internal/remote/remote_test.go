package remote

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestQuoteRoundTripsThroughSh(t *testing.T) {
	for _, s := range []string{"", "plain", "with space", "it's", `"double" $HOME ${x} $(id) ` + "`id`", "new\nline", "back\\slash", "*?[a]", "-n", "'''", "ünïcode"} {
		out, err := exec.Command("/bin/sh", "-c", "printf '%s' "+Quote(s)).Output()
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if string(out) != s {
			t.Errorf("Quote(%q) through sh gave %q", s, out)
		}
	}
}

func TestRedactor(t *testing.T) {
	var nilR *Redactor
	if nilR.Redact("x") != "x" {
		t.Fatal("nil redactor changed text")
	}
	nilR.Add("y") // must not panic
	pem := "-----BEGIN KEY-----\nAAAABBBBCCCCDDDD\nEEEEFFFFGGGG\n-----END KEY-----\n"
	r := NewRedactor("pass", "", "  ", "password123", pem)
	got := r.Redact("password123 pass " + pem + " partial: EEEEFFFFGGGG")
	if strings.Contains(got, "pass") || strings.Contains(got, "AAAA") || strings.Contains(got, "EEEE") {
		t.Fatalf("not redacted: %q", got)
	}
	if !strings.HasPrefix(got, "*** *** ") {
		t.Fatalf("longest secret must win: %q", got)
	}
	w := r.With("extra-secret")
	if w.Redact("extra-secret") != Redacted || r.Redact("extra-secret") != "extra-secret" {
		t.Fatal("With must not modify the original")
	}
	f := r.RedactFields(map[string]any{"a": "pass", "b": 3, "c": errors.New("password123")})
	if f["a"] != Redacted || f["b"] != 3 || f["c"] != Redacted {
		t.Fatalf("fields %v", f)
	}
	// concurrent use
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Add(fmt.Sprintf("secret-%d", i))
			_ = r.Redact("secret-1 secret-2")
		}()
	}
	wg.Wait()
	if r.Redact("secret-7") != Redacted {
		t.Fatal("secret added concurrently lost")
	}
}

func TestTail(t *testing.T) {
	var b strings.Builder
	for i := 1; i <= 50; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	got := Tail(b.String())
	if !strings.HasPrefix(got, "line 31\n") || !strings.HasSuffix(got, "line 50") || strings.Count(got, "\n") != TailLines-1 {
		t.Fatalf("Tail = %q", got)
	}
	long := strings.Repeat("x", 5000) + "\nlast"
	got = Tail(long)
	if len(got) > TailBytes+3 || !strings.HasSuffix(got, "last") || !strings.HasPrefix(got, "...") {
		t.Fatalf("Tail of long text: %d bytes %q...", len(got), got[:10])
	}
	if Tail("") != "" || Tail("one\n") != "one" {
		t.Fatal("short tails")
	}
}

func TestExitErrorMessage(t *testing.T) {
	red := NewRedactor("s3cr3t")
	e := NewExitError("deploy@h:22", Cmd{Command: "echo s3cr3t | tool --x\nsecond line", Secrets: []string{"tool-token"}}, 2, "", []byte("bad s3cr3t tool-token\n"), red)
	msg := e.Error()
	for _, want := range []string{"deploy@h:22", `step "echo *** | tool --x ..."`, "exit code 2", "bad *** ***"} {
		if !strings.Contains(msg, want) {
			t.Errorf("lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "tool-token") {
		t.Fatalf("leak: %s", msg)
	}
	e = NewExitError("h", Cmd{Command: "sleep 9", Desc: "wait"}, 143, "TERM", nil, nil)
	if !strings.Contains(e.Error(), `step "wait" failed: killed by signal TERM`) {
		t.Fatal(e.Error())
	}
	e.Err = ErrSudoPasswordRequired
	if !errors.Is(e, ErrSudoPasswordRequired) {
		t.Fatal("Unwrap")
	}
}

func TestValidLockNameAndModes(t *testing.T) {
	for _, ok := range []string{"moodle", "apt.lock", "a_b-1"} {
		if err := ValidLockName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "../x", "a b", "-n", ".hidden", "x;rm", strings.Repeat("a", 65)} {
		if ValidLockName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if ModeOctal(0o640) != "640" || ModeOctal(0o755|os.ModeSetuid) != "4755" || ModeOctal(0o1777|os.ModeSticky) != "1777" {
		t.Fatal("ModeOctal")
	}
	if (File{}).FileMode() != 0o644 || (File{Mode: 0o600}).FileMode() != 0o600 {
		t.Fatal("FileMode default")
	}
}

func TestFake(t *testing.T) {
	ctx := context.Background()
	f := NewFake("")
	f.On(`^apt-get install`, Result{Stdout: []byte("ok\n")})
	f.On(`^false`, Result{ExitCode: 1, Stderr: []byte("boom\n")})
	f.On(`^flaky`, Result{ExitCode: 2}).Times(1)
	f.On(`^flaky`, Result{Stdout: []byte("second\n")})
	f.OnFunc(`^echo `, func(c Cmd) (Result, error) {
		return Result{Stdout: []byte(strings.TrimPrefix(c.Command, "echo ") + string(c.Stdin))}, nil
	})

	if r, err := f.Run(ctx, Cmd{Command: "apt-get install php"}); err != nil || string(r.Stdout) != "ok\n" {
		t.Fatalf("%q %v", r.Stdout, err)
	}
	_, err := f.Run(ctx, Cmd{Command: "false", Desc: "fail step"})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 1 || ee.Step != "fail step" || ee.Stderr != "boom" || ee.Host != "root@fake:22" {
		t.Fatalf("%#v", err)
	}
	if _, err := f.Run(ctx, Cmd{Command: "flaky"}); err == nil {
		t.Fatal("first flaky should fail")
	}
	if r, err := f.Run(ctx, Cmd{Command: "flaky"}); err != nil || string(r.Stdout) != "second\n" {
		t.Fatalf("second flaky: %q %v", r.Stdout, err)
	}
	if r, _ := f.Run(ctx, Cmd{Command: "echo hi ", Stdin: []byte("there")}); string(r.Stdout) != "hi there" {
		t.Fatalf("%q", r.Stdout)
	}
	if _, err := f.Run(ctx, Cmd{Command: "unmatched"}); err != nil {
		t.Fatal("lenient fake failed an unmatched command")
	}
	f.Strict = true
	if _, err := f.Run(ctx, Cmd{Command: "unmatched"}); err == nil {
		t.Fatal("strict fake accepted an unmatched command")
	}
	if got := f.Commands(); len(got) != 7 || got[0] != "apt-get install php" || len(f.Calls()) != 7 {
		t.Fatalf("commands %q", got)
	}

	// uploads
	file := File{Path: "/etc/x", Content: []byte("a"), Owner: "root"}
	for i, want := range []bool{true, false} {
		if ch, err := f.Upload(ctx, file); err != nil || ch != want {
			t.Fatalf("upload %d: %v %v", i, ch, err)
		}
	}
	file.Mode = 0o600
	if ch, _ := f.Upload(ctx, file); !ch {
		t.Fatal("mode change not detected")
	}
	if got, ok := f.File("/etc/x"); !ok || got.Mode != 0o600 || string(got.Content) != "a" {
		t.Fatalf("%+v", got)
	}
	if len(f.Uploads()) != 3 {
		t.Fatal("uploads not recorded")
	}
	if _, err := f.Upload(ctx, File{Path: "rel"}); err == nil {
		t.Fatal("relative path accepted")
	}
	f.SetFile(File{Path: "/pre", Content: []byte("z")})
	if ch, _ := f.Upload(ctx, File{Path: "/pre", Content: []byte("z")}); ch {
		t.Fatal("preloaded identical file reported changed")
	}

	// locks
	unlock, err := f.Lock(ctx, "moodle")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := f.Lock(short, "moodle"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock: %v", err)
	}
	got := make(chan struct{})
	go func() {
		u, err := f.Lock(ctx, "moodle")
		if err == nil {
			_ = u()
		}
		close(got)
	}()
	time.Sleep(20 * time.Millisecond)
	_ = unlock()
	_ = unlock()
	select {
	case <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("waiter not woken")
	}
	if l := f.LocksTaken(); len(l) != 2 {
		t.Fatalf("locks %v", l)
	}
	if _, err := f.Lock(ctx, "bad name"); err == nil {
		t.Fatal("bad lock name accepted")
	}
}
