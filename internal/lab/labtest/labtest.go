// Package labtest gives tests a lab that is removed when the test ends, pass or fail.
package labtest

import (
	"context"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/remote"
	"github.com/mohd-dev/mohd/internal/sshx"
)

// New returns a fresh lab for t. Lab tests need a Docker engine and real hosts, so `go test -short` skips
// them (saying so); otherwise a missing engine fails the test rather than hiding it.
func New(t testing.TB) *lab.Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("lab test: skipped under -short (needs the Docker engine and the lab's base image)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l, err := lab.New(ctx, lab.Options{Name: "mohd-test", Progress: func(s string) { t.Log("lab: " + s) }})
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.Close(ctx); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
	})
	return l
}

// Start starts hosts on l, failing the test when one does not come up.
func Start(t testing.TB, l *lab.Lab, specs ...lab.HostSpec) []*lab.Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	hosts, err := l.Start(ctx, specs...)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	return hosts
}

// Exec runs a root shell command on h, failing the test on error.
func Exec(t testing.TB, h *lab.Host, script string) string {
	t.Helper()
	out, err := h.Exec(context.Background(), script)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Remote connects to h over SSH as its cloud user, verifying its host key: what domain code gets in
// production. The pool is closed when the test ends.
func Remote(t testing.TB, h *lab.Host) remote.Host {
	t.Helper()
	pool, err := sshx.NewPool(sshx.Config{
		Auth:           sshx.Auth{User: h.User, PrivateKey: string(h.PrivateKey())},
		ConnectTimeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pool.Close() })
	rh, err := pool.Host(sshx.Target{Host: h.Addr, Port: h.Port, HostKey: h.HostKey})
	if err != nil {
		t.Fatal(err)
	}
	return rh
}
