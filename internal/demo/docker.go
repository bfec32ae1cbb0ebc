package demo

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/mohd-dev/mohd/internal/lab"
)

// docker and dockerIn are the lab's: one way to drive the engine.
var (
	docker   = lab.Docker
	dockerIn = lab.DockerIn
)

// execRoot runs a root shell script in a container (docker exec, as an operator's console would).
func execRoot(ctx context.Context, container, script string) (string, error) {
	out, err := docker(ctx, "exec", container, "sh", "-c", script)
	if err != nil {
		return out, fmt.Errorf("on %s: %w", container, err)
	}
	return out, nil
}

// running reports whether a container exists and whether it runs.
func running(ctx context.Context, container string) (exists, up bool) {
	out, err := docker(ctx, "container", "inspect", "--format", "{{.State.Running}}", container)
	if err != nil {
		return false, false
	}
	return true, out == "true"
}

// copyTree streams a tar of paths (relative to /) from one container into another, keeping owners and modes.
func copyTree(ctx context.Context, from, to string, paths ...string) error {
	src := exec.CommandContext(ctx, "docker", append([]string{"exec", from, "tar", "-C", "/", "-cf", "-"}, paths...)...)
	dst := exec.CommandContext(ctx, "docker", "exec", "-i", to, "tar", "-C", "/", "-xpf", "-")
	pipe, err := src.StdoutPipe()
	if err != nil {
		return err
	}
	var srcErr, dstErr bytes.Buffer
	src.Stderr, dst.Stderr, dst.Stdin = &srcErr, &dstErr, pipe
	if err := src.Start(); err != nil {
		return err
	}
	if err := dst.Run(); err != nil {
		_ = src.Process.Kill()
		_ = src.Wait()
		return fmt.Errorf("copying %s from %s to %s: %w: %s", strings.Join(paths, " "), from, to, err, lastLines(dstErr.String(), 5))
	}
	if err := src.Wait(); err != nil {
		return fmt.Errorf("copying %s from %s: %w: %s", strings.Join(paths, " "), from, err, lastLines(srcErr.String(), 5))
	}
	return nil
}

// lastLines is the last n lines of s, trimmed.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
