package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mohd-dev/mohd/internal/repo"
)

// ClusterCIDR is the cluster network the lab's role images are baked for: every lab network is a /24 in it
// (createNetwork), so a role's cluster ports are open to its peers in any lab.
const ClusterCIDR = "172.30.0.0/16"

// RoleTemplate is the Packer template that bakes the lab's role images, relative to the repository's root.
const RoleTemplate = "packer/templates/docker/moodle-role.pkr.hcl"

// RoleRepository is the image repository of a role's images: mohd/role-<role>.
func RoleRepository(role string) string { return "mohd/role-" + role }

// roleCapabilities are the kernel capabilities a role's host needs as a container beyond those every lab host
// has (SYS_ADMIN, NET_ADMIN): its build container is given them, and so must its hosts (RoleHostSpec).
var roleCapabilities = map[string][]string{
	// NFS-Ganesha's VFS backend: open_by_handle_at (docs/lab-capabilities.md).
	"nfs": {"DAC_READ_SEARCH"},
}

// RoleCapabilities returns the extra kernel capabilities a host of role needs in the lab.
func RoleCapabilities(role string) []string { return slices.Clone(roleCapabilities[role]) }

// RoleHostSpec is a lab host named name booted from img, with the capabilities its role needs. A db host's
// data directory is a volume of its own, as on a VM (the SSD disk), and because the container's overlay root
// cannot take a restored copy: a file renamed away over an image's file brings the image's back.
func RoleHostSpec(name string, img RoleImage) HostSpec {
	spec := HostSpec{Name: name, Image: img.Ref, CapAdd: RoleCapabilities(img.Role)}
	if img.Role == "db" {
		spec.Volumes = []string{"/var/lib/mysql"}
	}
	return spec
}

// RoleImage is a role's image for the lab.
type RoleImage struct {
	Role string
	// Ref is mohd/role-<role>:<Hash>.
	Ref  string
	Hash string
	// Built is false when the engine had the image already.
	Built bool
	// Duration is how long the Packer build took, when Built.
	Duration time.Duration
}

// RoleImageOptions configure EnsureRoleImages.
type RoleImageOptions struct {
	// Roles to bake, in order.
	Roles []string
	// Progress receives one line per step.
	Progress func(string)
	// Output receives Packer's output, each line prefixed with "[<role>] " (nil: discarded; a failed
	// build's error quotes its last lines in any case).
	Output io.Writer
}

// RoleImagesHash hashes what a role image is made of: the base image (its tag is its recipe's hash), the
// cluster network it is baked for, the role library (every file under internal/roles but tests), the
// sources of the Packer plugin and of every package of this module it is built from (so internal/remote,
// internal/hostfacts...), go.mod and go.sum (its dependencies), the pinned tool versions (Packer and its
// docker plugin) and the template. An image is rebuilt exactly when one of them changed. The hash is the
// same for every role: the role is in the image's repository.
func RoleImagesHash(ctx context.Context, root, baseTag string) (string, error) {
	files := map[string]bool{RoleTemplate: true, "go.mod": true, "go.sum": true, "tools/versions.env": true}
	rolesDir := filepath.Join(root, "internal", "roles")
	err := filepath.WalkDir(rolesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.go") {
			return err
		}
		rel, err := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = true
		return err
	})
	if err != nil {
		return "", err
	}
	// The plugin's own packages and those of this module it imports: their Go files and embedded files.
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{.Dir}}{{range .GoFiles}}|{{.}}{{end}}{{range .EmbedFiles}}|{{.}}{{end}}{{"\n"}}{{end}}{{end}}`, "./packer")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list ./packer: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.Split(line, "|")
		for _, f := range parts[1:] {
			rel, err := filepath.Rel(root, filepath.Join(parts[0], f))
			if err != nil {
				return "", err
			}
			files[filepath.ToSlash(rel)] = true
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	h := sha256.New()
	fmt.Fprintf(h, "base\x00%s\x00cluster_cidr\x00%s\x00", baseTag, ClusterCIDR)
	for _, r := range slices.Sorted(maps.Keys(roleCapabilities)) {
		fmt.Fprintf(h, "cap_add\x00%s\x00%s\x00", r, strings.Join(roleCapabilities[r], ","))
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(n))) //nolint:gosec // the repository's own files
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// EnsureRoleImages returns each role's image for the lab, baking with Packer (the docker template and this
// repository's plugin, built for the purpose) those the engine lacks at the current recipe's hash; each
// image is also tagged mohd/role-<role>:latest. The base image is built first when it is missing.
func EnsureRoleImages(ctx context.Context, opts RoleImageOptions) ([]RoleImage, error) {
	say := func(format string, a ...any) {
		if opts.Progress != nil {
			opts.Progress(fmt.Sprintf(format, a...))
		}
	}
	if len(opts.Roles) == 0 {
		return nil, errors.New("lab: no role to bake an image of")
	}
	if err := Available(ctx); err != nil {
		return nil, err
	}
	root, err := repo.Root()
	if err != nil {
		return nil, err
	}
	baseTag, err := EnsureBaseImage(ctx, opts.Progress)
	if err != nil {
		return nil, err
	}
	hash, err := RoleImagesHash(ctx, root, baseTag)
	if err != nil {
		return nil, err
	}
	images := make([]RoleImage, len(opts.Roles))
	var missing []int
	for i, r := range opts.Roles {
		images[i] = RoleImage{Role: r, Hash: hash, Ref: RoleRepository(r) + ":" + hash}
		if !ImageExists(ctx, images[i].Ref) {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		// Two runs at once (make images beside a test) would bake the same images twice: the second waits,
		// then finds them.
		unlock, err := lockFile(ctx, filepath.Join(os.TempDir(), "mohd-role-images.lock"), func() {
			say("another role-images build is running: waiting for it")
		})
		if err != nil {
			return nil, err
		}
		defer unlock()
		var b *roleBuilder
		defer func() {
			if b != nil {
				b.close()
			}
		}()
		for _, i := range missing {
			img := &images[i]
			if ImageExists(ctx, img.Ref) {
				continue
			}
			if b == nil {
				say("recipe %s: preparing Packer (this repository's plugin, the docker plugin)", hash)
				if b, err = newRoleBuilder(ctx, root); err != nil {
					return nil, err
				}
			}
			say("baking %s from %s with Packer", img.Ref, baseTag)
			start := time.Now()
			if err := b.build(ctx, img.Role, hash, baseTag, opts.Output); err != nil {
				return nil, err
			}
			img.Built, img.Duration = true, time.Since(start)
			say("baked %s in %s", img.Ref, img.Duration.Round(time.Second))
		}
	}
	for _, img := range images {
		label, err := docker(ctx, "image", "inspect", "--format", `{{index .Config.Labels "org.mohd.recipe"}}`, img.Ref)
		if err != nil {
			return nil, err
		}
		if label != hash {
			return nil, fmt.Errorf("lab: image %s is labelled with recipe %q, not %s", img.Ref, label, hash)
		}
		if _, err := docker(ctx, "tag", img.Ref, RoleRepository(img.Role)+":latest"); err != nil {
			return nil, err
		}
		if !img.Built {
			say("%s is current: reused", img.Ref)
		}
	}
	return images, nil
}

// roleBuilder runs Packer with this repository's plugin and the docker plugin installed in a directory of
// its own, offline, leaving the user's Packer configuration alone.
type roleBuilder struct {
	root, dir, packer string
	env               []string
}

func newRoleBuilder(ctx context.Context, root string) (*roleBuilder, error) {
	packer, err := repo.Tool("packer")
	if err != nil {
		return nil, err
	}
	dockerPlugin, err := repo.Tool("packer-plugin-docker")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mohd-role-images-")
	if err != nil {
		return nil, err
	}
	b := &roleBuilder{root: root, dir: dir, packer: packer, env: PackerEnv(dir)}
	// A release build: a -dev pre-release would not satisfy the template's version constraint offline.
	plugin := filepath.Join(dir, "packer-plugin-moodle")
	if out, err := b.run(ctx, "go", "build", "-ldflags", "-X github.com/mohd-dev/mohd/packer/version.VersionPrerelease=", "-o", plugin, "./packer"); err != nil {
		b.close()
		return nil, fmt.Errorf("building the Packer plugin: %w\n%s", err, out)
	}
	for _, p := range [][2]string{{plugin, "github.com/mohd-dev/moodle"}, {dockerPlugin, "github.com/hashicorp/docker"}} {
		if out, err := b.run(ctx, packer, "plugins", "install", "--path", p[0], p[1]); err != nil {
			b.close()
			return nil, fmt.Errorf("packer plugins install %s: %w\n%s", p[1], err, out)
		}
	}
	return b, nil
}

func (b *roleBuilder) close() { _ = os.RemoveAll(b.dir) }

func (b *roleBuilder) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = b.root, b.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// build runs `packer build` for role, streaming its output to w line by line.
func (b *roleBuilder) build(ctx context.Context, role, tag, baseTag string, w io.Writer) error {
	caps := make([]string, 0, len(roleCapabilities[role]))
	for _, c := range roleCapabilities[role] {
		caps = append(caps, strconv.Quote(c))
	}
	cmd := exec.CommandContext(ctx, b.packer, "build", "-color=false",
		"-var", "role="+role, "-var", "image_tag="+tag, "-var", "cluster_cidr="+ClusterCIDR, "-var", "base_image="+baseTag,
		"-var", "cap_add=["+strings.Join(caps, ", ")+"]",
		filepath.Dir(filepath.Join(b.root, RoleTemplate)))
	cmd.Dir, cmd.Env = b.root, b.env
	// Packer stops its build (and removes the container) on SIGINT; a killed Packer would leave it running.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 2 * time.Minute
	lw := &prefixWriter{w: w, prefix: "[" + role + "] "}
	cmd.Stdout, cmd.Stderr = lw, lw
	err := cmd.Run()
	lw.flush()
	if err != nil {
		return fmt.Errorf("lab: packer build of role %s failed: %w\nlast lines of its output:\n%s", role, err, strings.Join(lw.tail, "\n"))
	}
	return nil
}

// PackerEnv is this process's environment with Packer's directories under dir and no calls home (HOME is
// left as it is): what every offline run of the Packer CLI needs.
func PackerEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PACKER_PLUGIN_PATH", "PACKER_CONFIG_DIR", "PACKER_CACHE_DIR", "CHECKPOINT_DISABLE", "PACKER_LOG", "PACKER_LOG_PATH":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "CHECKPOINT_DISABLE=1",
		"PACKER_PLUGIN_PATH="+filepath.Join(dir, "plugins"),
		"PACKER_CONFIG_DIR="+filepath.Join(dir, "config"),
		"PACKER_CACHE_DIR="+filepath.Join(dir, "cache"))
}

// prefixWriter writes each complete line with a prefix and keeps the last lines.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
	tail   []string
}

const tailLines = 40

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.line(string(p.buf[:i]))
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.line(string(p.buf))
		p.buf = nil
	}
}

func (p *prefixWriter) line(l string) {
	l = strings.TrimRight(l, "\r")
	p.tail = append(p.tail, l)
	if len(p.tail) > tailLines {
		p.tail = p.tail[len(p.tail)-tailLines:]
	}
	if p.w != nil {
		_, _ = io.WriteString(p.w, p.prefix+l+"\n")
	}
}

// lockFile takes an exclusive flock on path, calling waiting once if another process holds it, until ctx
// ends.
func lockFile(ctx context.Context, path string, waiting func()) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600) //nolint:gosec // a lock file of ours
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd()) //nolint:gosec // a file descriptor fits an int
	told := false
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(fd, syscall.LOCK_UN); _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lab: locking %s: %w", path, err)
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
