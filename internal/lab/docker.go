package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// docker runs the Docker CLI. The lab drives the engine through its CLI rather than its Go SDK: the CLI is
// what a sysadmin reproduces a failing test with, and it keeps the module free of the engine's dependencies.
func docker(ctx context.Context, args ...string) (string, error) {
	return dockerIn(ctx, nil, args...)
}

func dockerIn(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(redactArgs(args), " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Docker runs the Docker CLI as the lab does (trimmed standard output; an error carries the command and its
// standard error), for the tools built on the lab (the demo).
func Docker(ctx context.Context, args ...string) (string, error) { return docker(ctx, args...) }

// DockerIn is Docker with stdin fed to the command.
func DockerIn(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	return dockerIn(ctx, stdin, args...)
}

// redactArgs shortens long arguments (scripts passed to sh -c) so errors stay readable.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if len(a) > 200 {
			a = a[:200] + "…"
		}
		out[i] = a
	}
	return out
}

// Available reports whether a Docker engine answers, with the reason when it does not.
func Available(ctx context.Context) error {
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("the docker CLI is not on PATH: %w", err)
	}
	if _, err := docker(ctx, "version", "--format", "{{.Server.Version}}"); err != nil {
		return fmt.Errorf("no Docker engine answers: %w", err)
	}
	return nil
}
