package lab_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
)

// dial connects as the cloud user, accepting only the host key the lab read out of band.
func dial(t *testing.T, h *lab.Host, hostKey string) (*ssh.Client, error) {
	t.Helper()
	signer, err := ssh.ParsePrivateKey(h.PrivateKey())
	if err != nil {
		t.Fatal(err)
	}
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostKey))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", h.Endpoint(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	// A paused host completes the TCP handshake in the kernel and then never speaks: bound the SSH one too.
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	sc, chans, reqs, err := ssh.NewClientConn(conn, h.Endpoint(), &ssh.ClientConfig{
		User:              h.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   ssh.FixedHostKey(want),
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
	})
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

func run(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestLabHosts(t *testing.T) {
	l := labtest.New(t)
	hosts := labtest.Start(t, l, lab.HostSpec{Name: "alpha"}, lab.HostSpec{Name: "beta"})
	a, b := hosts[0], hosts[1]
	ctx := context.Background()

	if a.Addr == b.Addr || !l.Subnet.Contains(net.ParseIP(a.Addr)) {
		t.Fatalf("hosts need distinct addresses in %s: %s %s", l.Subnet, a.Addr, b.Addr)
	}
	if a.HostKey == b.HostKey {
		t.Fatal("two clones share an SSH host key: first boot did not regenerate it")
	}

	c, err := dial(t, a, a.HostKey)
	if err != nil {
		t.Fatalf("ssh to %s: %v", a.Name, err)
	}
	if got := run(t, c, "hostname"); got != "alpha" {
		t.Fatalf("hostname = %q", got)
	}
	if got := run(t, c, "sudo -n id -u"); got != "0" {
		t.Fatalf("sudo -n as %s: uid %q", a.User, got)
	}
	if got := run(t, c, "ps -p 1 -o comm="); got != "systemd" {
		t.Fatalf("PID 1 is %q, want systemd", got)
	}
	if got := run(t, c, "systemctl is-system-running --wait || true"); got != "running" {
		t.Fatalf("systemd state %q: %s", got, run(t, c, "systemctl --failed --no-legend"))
	}
	// Hosts reach each other on the private network.
	run(t, c, "ping -c1 -W2 "+b.Addr)
	_ = c.Close()

	// A wrong host key is refused.
	if _, err := dial(t, a, b.HostKey); err == nil {
		t.Fatal("connection with the wrong host key succeeded")
	}

	// Cut off: no answer; reconnected: same address.
	if err := b.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, b, b.HostKey); err == nil {
		t.Fatal("a disconnected host still answers")
	}
	if err := b.Reconnect(ctx); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := b.WaitSSH(wait); err != nil {
		t.Fatalf("after reconnect: %v", err)
	}

	// Paused: the TCP handshake may succeed but SSH never answers.
	if err := b.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if running, _ := b.Running(ctx); running {
		t.Fatal("a paused host reports running")
	}
	if _, err := dial(t, b, b.HostKey); err == nil {
		t.Fatal("a paused host answered SSH")
	}
	if err := b.Unpause(ctx); err != nil {
		t.Fatal(err)
	}

	// Killed and booted again: same address, same host key (it is a disk, not a new clone).
	if err := b.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Boot(wait); err != nil {
		t.Fatal(err)
	}
	c, err = dial(t, b, b.HostKey)
	if err != nil {
		t.Fatalf("after kill+boot: %v", err)
	}
	_ = c.Close()

}

func TestRecipeHashChangesWithContent(t *testing.T) {
	tag, err := lab.BaseImageTag()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tag, lab.BaseRepository+":") || len(tag) != len(lab.BaseRepository)+1+16 {
		t.Fatalf("tag %q", tag)
	}
}
