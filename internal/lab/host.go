package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Host is one lab host: what a test needs to reach it like a VM, and handles to break it.
type Host struct {
	Name      string
	Addr      string
	Port      int
	User      string
	Container string
	// HostKey is the host's ed25519 public key (authorized_keys format), read out of band from the
	// container, as a cloud's console log or metadata gives it: tests verify SSH host keys against it.
	HostKey string

	lab *Lab
}

// Endpoint is "addr:port".
func (h *Host) Endpoint() string { return net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)) }

// PrivateKey is the lab's cloud-user key that this host accepts.
func (h *Host) PrivateKey() []byte { return h.lab.privateKey }

// Exec runs a shell command on the host as root (docker exec, not SSH: for test assertions and faults).
func (h *Host) Exec(ctx context.Context, script string) (string, error) {
	out, err := docker(ctx, "exec", h.Container, "sh", "-c", script)
	if err != nil {
		return out, fmt.Errorf("lab: on %s: %w", h.Name, err)
	}
	return out, nil
}

// waitReady waits for first boot: host key generated, authorized key installed, sshd listening.
func (h *Host) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := waitFor(ctx, 300*time.Millisecond, func() error {
		key, err := h.Exec(ctx, "cat /etc/ssh/ssh_host_ed25519_key.pub && test -s /home/"+h.User+"/.ssh/authorized_keys")
		if err != nil {
			return err
		}
		f := strings.Fields(key)
		if len(f) < 2 {
			return fmt.Errorf("unexpected host key %q", key)
		}
		h.HostKey = f[0] + " " + f[1]
		return h.dialSSH(ctx)
	})
	if err != nil {
		state, _ := h.Exec(context.Background(), "systemctl is-system-running; systemctl --failed --no-legend")
		return fmt.Errorf("lab: host %s did not come up: %w (systemd: %s)", h.Name, err, state)
	}
	return nil
}

// dialSSH checks that sshd answers with its banner on the host's own address.
func (h *Host) dialSSH(ctx context.Context) error {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", h.Endpoint())
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	if _, err := c.Read(buf); err != nil {
		return err
	}
	if string(buf) != "SSH-" {
		return errors.New("no SSH banner")
	}
	return nil
}

// WaitSSH waits until sshd answers again (after a restart, say).
func (h *Host) WaitSSH(ctx context.Context) error {
	return waitFor(ctx, 300*time.Millisecond, func() error { return h.dialSSH(ctx) })
}

// Stop shuts the host down cleanly (systemd receives SIGRTMIN+3, as on a VM's ACPI shutdown).
func (h *Host) Stop(ctx context.Context) error {
	_, err := docker(ctx, "stop", "-t", "30", h.Container)
	return err
}

// Kill powers the host off at once, as a dead hypervisor would.
func (h *Host) Kill(ctx context.Context) error {
	_, err := docker(ctx, "kill", "-s", "KILL", h.Container)
	return err
}

// Boot starts a stopped or killed host and waits for SSH. It keeps its address, disks and host key.
func (h *Host) Boot(ctx context.Context) error {
	if _, err := docker(ctx, "start", h.Container); err != nil {
		return err
	}
	return h.WaitSSH(ctx)
}

// Restart reboots the host and waits for SSH.
func (h *Host) Restart(ctx context.Context) error {
	if _, err := docker(ctx, "restart", "-t", "30", h.Container); err != nil {
		return err
	}
	return h.WaitSSH(ctx)
}

// Pause freezes every process of the host (a hung VM: TCP connections stay open, nothing answers).
func (h *Host) Pause(ctx context.Context) error {
	_, err := docker(ctx, "pause", h.Container)
	return err
}

// Unpause thaws a paused host.
func (h *Host) Unpause(ctx context.Context) error {
	_, err := docker(ctx, "unpause", h.Container)
	return err
}

// Disconnect cuts the host off the lab network (a pulled cable: its peers get no answer at all).
func (h *Host) Disconnect(ctx context.Context) error {
	_, err := docker(ctx, "network", "disconnect", "--force", h.lab.Network, h.Container)
	return err
}

// Reconnect plugs the host back in with its old address.
func (h *Host) Reconnect(ctx context.Context) error {
	_, err := docker(ctx, "network", "connect", "--ip", h.Addr, h.lab.Network, h.Container)
	return err
}

// Running reports whether the host's container runs (and is not paused).
func (h *Host) Running(ctx context.Context) (bool, error) {
	out, err := docker(ctx, "inspect", "--format", "{{.State.Running}} {{.State.Paused}}", h.Container)
	if err != nil {
		return false, err
	}
	return out == "true false", nil
}
