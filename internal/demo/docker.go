package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// docker runs the docker CLI and returns its trimmed standard output; an error carries its standard error.
func docker(ctx context.Context, args ...string) (string, error) {
	return dockerIn(ctx, nil, args...)
}

func dockerIn(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		shown := make([]string, len(args))
		for i, a := range args {
			if len(a) > 120 { // scripts given to sh -c
				a = a[:120] + "…"
			}
			shown[i] = a
		}
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(shown, " "), err, lastLines(stderr.String(), 15))
	}
	return strings.TrimSpace(stdout.String()), nil
}

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
