package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mohd-dev/mohd/internal/tfmirror"
)

// terraform runs the Terraform CLI in the root module, offline: providers come from the demo's own
// filesystem mirror (written by prepareTerraform) and nothing else is contacted.
type terraform struct {
	bin, module, cliConfig string
	out                    io.Writer
}

// prepareTerraform publishes the provider binary in dir/mirror and runs `terraform init` in module. The lock
// file is written afresh each time: a rebuilt provider of the same version has another checksum, which a
// kept lock file would refuse.
func prepareTerraform(ctx context.Context, o *Options) (*terraform, error) {
	cfg, err := tfmirror.Write(filepath.Join(o.Dir, "mirror"),
		tfmirror.Provider{Namespace: "mohd-dev", Type: "moodle", Version: o.ProviderVersion, Binary: o.Provider})
	if err != nil {
		return nil, fmt.Errorf("writing the provider mirror: %w", err)
	}
	tf := &terraform{bin: o.Terraform, module: o.Module, cliConfig: cfg, out: o.Out}
	if err := os.Remove(filepath.Join(o.Module, ".terraform.lock.hcl")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if out, err := tf.run(ctx, false, "init", "-input=false", "-no-color"); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, lastLines(out, 30))
	}
	return tf, nil
}

// run runs terraform with args; stream copies its output to the demo's output as it comes. It returns the
// whole output.
func (tf *terraform) run(ctx context.Context, stream bool, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, tf.bin, args...)
	cmd.Dir = tf.module
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+tf.cliConfig, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1",
		"TF_INPUT=0")
	// Terraform's interrupt handling: on cancellation it gets SIGINT and time to save its state.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 2 * time.Minute
	var buf bytes.Buffer
	w := io.Writer(&buf)
	if stream {
		w = io.MultiWriter(&buf, tf.out)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	// The state holds the site's secrets (sensitive attributes are stored in clear): owner only.
	for _, f := range []string{"terraform.tfstate", "terraform.tfstate.backup"} {
		if cerr := os.Chmod(filepath.Join(tf.module, f), 0o600); cerr != nil && !errors.Is(cerr, os.ErrNotExist) && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return buf.String(), fmt.Errorf("terraform %s in %s: %w", args[0], tf.module, err)
	}
	return buf.String(), nil
}

var applySummary = regexp.MustCompile(`Resources: (\d+) added, (\d+) changed, (\d+) destroyed`)

// applyChanged reads whether an apply changed anything from its summary line.
func applyChanged(out string) (bool, error) {
	m := applySummary.FindStringSubmatch(out)
	if m == nil {
		return false, errors.New("terraform apply printed no summary line")
	}
	for _, n := range m[1:] {
		if v, _ := strconv.Atoi(n); v > 0 {
			return true, nil
		}
	}
	return false, nil
}

// apply runs `terraform apply -auto-approve`, streaming its output, and reports whether it changed anything.
func (tf *terraform) apply(ctx context.Context) (changed bool, out string, err error) {
	out, err = tf.run(ctx, true, "apply", "-auto-approve", "-input=false", "-no-color")
	if err != nil {
		return false, out, err
	}
	changed, err = applyChanged(out)
	return changed, out, err
}

var resourceDone = regexp.MustCompile(`(?m)^(\S+): (?:Creation|Modifications|Destruction) complete after (\S+?)(?: \[|$)`)

// Step is one resource's part of an apply, as Terraform printed it.
type Step struct {
	Resource string
	Took     string
}

// applySteps lists how long each resource took in an apply's output.
func applySteps(out string) []Step {
	var steps []Step
	for _, m := range resourceDone.FindAllStringSubmatch(out, -1) {
		steps = append(steps, Step{Resource: m[1], Took: m[2]})
	}
	return steps
}

// plan runs `terraform plan` (timed by the caller) and reports whether it would change any resource. Output
// values are left out: some change by themselves (a replica's GTID position moves with every write), which
// `-detailed-exitcode` would count as changes.
func (tf *terraform) plan(ctx context.Context, planFile string) (empty bool, took time.Duration, err error) {
	start := time.Now()
	out, err := tf.run(ctx, false, "plan", "-input=false", "-no-color", "-out="+planFile)
	took = time.Since(start)
	if err != nil {
		return false, took, fmt.Errorf("%w\n%s", err, lastLines(out, 30))
	}
	defer func() { _ = os.Remove(planFile) }()
	js, err := tf.run(ctx, false, "show", "-json", planFile)
	if err != nil {
		return false, took, err
	}
	changes, err := resourceChanges([]byte(js))
	if err != nil {
		return false, took, err
	}
	if len(changes) > 0 {
		_, _ = fmt.Fprintf(tf.out, "terraform plan would change: %s\n%s\n", strings.Join(changes, ", "), lastLines(out, 60))
	}
	return len(changes) == 0, took, nil
}

// resourceChanges lists the resources a plan (`terraform show -json`) would change, with the actions.
func resourceChanges(planJSON []byte) ([]string, error) {
	var plan struct {
		ResourceChanges []struct {
			Address string `json:"address"`
			Change  struct {
				Actions []string `json:"actions"`
			} `json:"change"`
		} `json:"resource_changes"`
	}
	if err := json.Unmarshal(planJSON, &plan); err != nil {
		return nil, fmt.Errorf("reading the plan: %w", err)
	}
	var changes []string
	for _, rc := range plan.ResourceChanges {
		acts := rc.Change.Actions
		if len(acts) == 1 && (acts[0] == "no-op" || acts[0] == "read") {
			continue
		}
		changes = append(changes, rc.Address+" ("+strings.Join(acts, "+")+")")
	}
	return changes, nil
}
