package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrPoolClosed is returned by hosts of a closed Pool.
var ErrPoolClosed = errors.New("ssh: pool is closed")

// AuthError is a rejected login. It is never retried.
type AuthError struct {
	Host string // "user@host:port"
	Err  error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("ssh: authentication failed for %s: %v (check user, private_key/certificate, agent_identity, and that the key is in the user's authorized_keys)", e.Host, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// ConnectError is the final failure to connect to a host (after retries
// for transient errors, at once for permanent ones).
type ConnectError struct {
	Host     string   // "user@host:port"
	Via      []string // bastions, outermost first
	Attempts int
	Elapsed  time.Duration
	// TimedOut is true when retries stopped because the connect timeout or
	// the caller's deadline was reached.
	TimedOut bool
	Err      error // the last attempt's error
}

func (e *ConnectError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ssh: cannot connect to %s", e.Host)
	if len(e.Via) > 0 {
		fmt.Fprintf(&b, " via %s", strings.Join(e.Via, " -> "))
	}
	if e.TimedOut {
		fmt.Fprintf(&b, ": gave up after %d attempts in %s", e.Attempts, e.Elapsed.Round(time.Millisecond))
	} else if e.Attempts > 1 {
		fmt.Fprintf(&b, " (attempt %d, after %s)", e.Attempts, e.Elapsed.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *ConnectError) Unwrap() error { return e.Err }

// handshakeTimeoutError: the server accepted TCP but did not finish the SSH
// handshake in time (typical of a booting host).
type handshakeTimeoutError struct{ after time.Duration }

func (e *handshakeTimeoutError) Error() string {
	return fmt.Sprintf("ssh handshake timed out after %s", e.after)
}
func (e *handshakeTimeoutError) Timeout() bool { return true }

// permanentError marks an error that must not be retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// retryable reports whether a connection attempt that failed with err may
// succeed later (host booting, sshd starting, network not yet up).
func retryable(err error) bool {
	if err == nil {
		return false
	}
	var pe *permanentError
	var hk *HostKeyError
	var ae *AuthError
	var ce *ConnectError
	var ane *ssh.AlgorithmNegotiationError
	if errors.As(err, &pe) || errors.As(err, &hk) || errors.As(err, &ae) || errors.As(err, &ce) || errors.As(err, &ane) {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var oce *ssh.OpenChannelError
	if errors.As(err, &oce) {
		// a bastion could not reach the next hop
		return oce.Reason == ssh.ConnectionFailed || oce.Reason == ssh.ResourceShortage
	}
	for _, errno := range []syscall.Errno{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.ETIMEDOUT,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.ENETDOWN, syscall.EPIPE,
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true // connection closed during the handshake: sshd starting, MaxStartups
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true // the name may not resolve yet for a fresh machine
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "no route to host", "network is unreachable", "i/o timeout", "broken pipe", "handshake failed: EOF", "host is down"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func isAuthFailure(err error) bool {
	return err != nil && strings.Contains(err.Error(), "unable to authenticate")
}
