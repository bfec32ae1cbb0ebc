// Package lab runs MOHD's test hosts: Docker containers with systemd as PID 1 and real OpenSSH, each with
// its own address on a private network, that tests and the local demo treat as the VMs of a real site. It
// also injects the faults those tests need (stop, kill, pause, cut off the network).
package lab

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Label marks every container and network the lab creates, so leftovers can be found (make lab-clean).
const Label = "org.mohd.lab"

// DefaultUser is the cloud image's non-root user, as on Debian's genericcloud images.
const DefaultUser = "debian"

// Options configure a lab.
type Options struct {
	// Name prefixes containers and the network; a random suffix keeps parallel labs apart.
	Name string
	// Progress, when set, receives one line per step.
	Progress func(string)
}

// Lab is one private network and the hosts on it.
type Lab struct {
	ID      string
	Network string
	Subnet  *net.IPNet

	user       string
	privateKey []byte // PEM, OpenSSH format
	publicKey  string // authorized_keys line
	seedDir    string
	progress   func(string)

	mu     sync.Mutex
	hosts  []*Host
	nextIP int
}

// HostSpec describes one host to start.
type HostSpec struct {
	Name  string
	Image string // default: the base image
	// CapAdd lists extra kernel capabilities (NET_ADMIN for a keepalived VIP, SYS_ADMIN for FUSE...).
	CapAdd []string
	// Volumes are docker -v arguments (a named volume standing in for an SSD disk or an NFS mount).
	Volumes []string
	// Devices are docker --device arguments ("/dev/fuse" for a FUSE client).
	Devices []string
	// Memory limits the host's RAM like a VM size ("2g"); empty leaves it unlimited.
	Memory string
	CPUs   string
}

// New creates a lab: a user key pair for the cloud user and a private network with its own subnet.
func New(ctx context.Context, opts Options) (*Lab, error) {
	if err := Available(ctx); err != nil {
		return nil, err
	}
	id := randomHex(4)
	name := opts.Name
	if name == "" {
		name = "mohd"
	}
	l := &Lab{ID: name + "-" + id, user: DefaultUser, progress: opts.Progress, nextIP: 10}
	if err := l.makeKeys(); err != nil {
		return nil, err
	}
	if err := l.createNetwork(ctx); err != nil {
		_ = os.RemoveAll(l.seedDir)
		return nil, err
	}
	return l, nil
}

func (l *Lab) logf(format string, args ...any) {
	if l.progress != nil {
		l.progress(fmt.Sprintf(format, args...))
	}
}

func (l *Lab) makeKeys() error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "mohd-lab")
	if err != nil {
		return err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return err
	}
	l.privateKey = pem.EncodeToMemory(block)
	l.publicKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " mohd-lab"
	l.seedDir, err = os.MkdirTemp("", "mohd-lab-seed-")
	if err != nil {
		return err
	}
	// The seed is mounted into every host read-only: the public key and the user only, never the private key.
	if err := os.Chmod(l.seedDir, 0o755); err != nil { //nolint:gosec // hosts read it through a bind mount
		return err
	}
	if err := os.WriteFile(filepath.Join(l.seedDir, "authorized_keys"), []byte(l.publicKey+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(l.seedDir, "user"), []byte(l.user+"\n"), 0o644)
}

// createNetwork picks a free /24 in 172.30.0.0/16 (the engine refuses overlapping pools, so a refusal means
// "taken, try the next"); a fixed subnet lets a host keep its address when it is cut off and reconnected.
func (l *Lab) createNetwork(ctx context.Context) error {
	start := int(randomByte())
	var lastErr error
	for i := 0; i < 256; i++ {
		third := (start + i) % 256
		subnet := fmt.Sprintf("172.30.%d.0/24", third)
		_, err := docker(ctx, "network", "create", "--driver", "bridge", "--subnet", subnet,
			"--label", Label+"="+l.ID, l.ID)
		if err == nil {
			_, l.Subnet, _ = net.ParseCIDR(subnet)
			l.Network = l.ID
			return nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "overlap") {
			return err
		}
	}
	return fmt.Errorf("no free /24 in 172.30.0.0/16 for the lab network: %w", lastErr)
}

// PrivateKey returns the cloud user's private key (OpenSSH PEM), as a user would give it to the provider.
func (l *Lab) PrivateKey() []byte { return l.privateKey }

// PublicKey returns the cloud user's authorized_keys line.
func (l *Lab) PublicKey() string { return l.publicKey }

// User returns the cloud user's name.
func (l *Lab) User() string { return l.user }

// Hosts returns the hosts started so far.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Host(nil), l.hosts...)
}

// Start starts hosts in parallel and waits until each answers SSH with its first-boot host key.
func (l *Lab) Start(ctx context.Context, specs ...HostSpec) ([]*Host, error) {
	hosts := make([]*Host, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		h, err := l.create(ctx, spec)
		if err != nil {
			return nil, err
		}
		hosts[i] = h
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.waitReady(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return hosts, err
	}
	return hosts, nil
}

func (l *Lab) create(ctx context.Context, spec HostSpec) (*Host, error) {
	if spec.Name == "" {
		return nil, errors.New("lab: a host needs a name")
	}
	image := spec.Image
	if image == "" {
		var err error
		if image, err = EnsureBaseImage(ctx, l.progress); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	ip := make(net.IP, 4)
	copy(ip, l.Subnet.IP.To4())
	if l.nextIP > 254 {
		l.mu.Unlock()
		return nil, fmt.Errorf("lab: no address left in %s", l.Subnet)
	}
	ip[3] = byte(l.nextIP) //nolint:gosec // bounded above
	l.nextIP++
	l.mu.Unlock()

	h := &Host{
		Name:      spec.Name,
		Addr:      ip.String(),
		Port:      22,
		User:      l.user,
		Container: l.ID + "-" + spec.Name,
		lab:       l,
	}
	args := []string{"run", "-d", "--name", h.Container, "--hostname", spec.Name,
		"--label", Label + "=" + l.ID, "--network", l.Network, "--ip", h.Addr,
		// systemd shuts down cleanly on SIGRTMIN+3, as on a VM's ACPI power button.
		"--stop-signal", "SIGRTMIN+3",
		// systemd as PID 1 without --privileged (which this engine refuses): tmpfs for /run, the host's
		// cgroup tree read-only (cgroup v1) and a private cgroup namespace where the engine has cgroup v2.
		"--tmpfs", "/run:exec,mode=755", "--tmpfs", "/run/lock", "--tmpfs", "/tmp:exec,mode=1777",
		"-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
		"-v", l.seedDir + ":/var/lib/cloud/seed/mohd:ro",
		// What makes a container behave like a VM for Debian's units: systemd sets up their sandboxes
		// (PrivateUsers=, ProtectSystem=...: mount and user namespaces), which needs CAP_SYS_ADMIN and no
		// AppArmor profile of the engine's own; every role loads its nftables firewall (CAP_NET_ADMIN).
		"--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--security-opt", "apparmor=unconfined",
	}
	for _, c := range spec.CapAdd {
		args = append(args, "--cap-add", c)
	}
	for _, d := range spec.Devices {
		args = append(args, "--device", d)
	}
	for _, v := range spec.Volumes {
		args = append(args, "-v", v)
	}
	if spec.Memory != "" {
		args = append(args, "--memory", spec.Memory)
	}
	if spec.CPUs != "" {
		args = append(args, "--cpus", spec.CPUs)
	}
	args = append(args, image, "/sbin/init")
	l.logf("starting host %s (%s) from %s", spec.Name, h.Addr, image)
	if _, err := docker(ctx, args...); err != nil {
		return nil, fmt.Errorf("lab: starting host %s: %w", spec.Name, err)
	}
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	return h, nil
}

// Close removes every host and the network. It is safe to call twice.
func (l *Lab) Close(ctx context.Context) error {
	var errs []error
	if out, err := docker(ctx, "ps", "-aq", "--filter", "label="+Label+"="+l.ID); err == nil && out != "" {
		args := append([]string{"rm", "-f", "-v"}, strings.Fields(out)...)
		if _, err := docker(ctx, args...); err != nil {
			errs = append(errs, err)
		}
	}
	if l.Network != "" {
		if _, err := docker(ctx, "network", "rm", l.Network); err != nil && !strings.Contains(err.Error(), "not found") {
			errs = append(errs, err)
		}
	}
	if l.seedDir != "" {
		_ = os.RemoveAll(l.seedDir)
	}
	return errors.Join(errs...)
}

// CleanAll removes every container and network any lab left behind (a killed test run, say).
func CleanAll(ctx context.Context) (int, error) {
	var errs []error
	n := 0
	if out, err := docker(ctx, "ps", "-aq", "--filter", "label="+Label); err == nil && out != "" {
		ids := strings.Fields(out)
		n += len(ids)
		if _, err := docker(ctx, append([]string{"rm", "-f", "-v"}, ids...)...); err != nil {
			errs = append(errs, err)
		}
	}
	if out, err := docker(ctx, "network", "ls", "-q", "--filter", "label="+Label); err == nil && out != "" {
		ids := strings.Fields(out)
		n += len(ids)
		if _, err := docker(ctx, append([]string{"network", "rm"}, ids...)...); err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomByte() byte {
	b := make([]byte, 1)
	_, _ = rand.Read(b)
	return b[0]
}

// waitFor polls check until it succeeds or ctx ends, returning the last error.
func waitFor(ctx context.Context, every time.Duration, check func() error) error {
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), last)
		case <-time.After(every):
		}
	}
}
