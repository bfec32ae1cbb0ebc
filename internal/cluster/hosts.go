package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/mohd-dev/mohd/internal/hostfacts"
	"github.com/mohd-dev/mohd/internal/remote"
	"github.com/mohd-dev/mohd/internal/roles"
)

// Dialer returns the remote.Host for h (the provider's SSH pool; connections are made lazily and shared).
type Dialer func(h Host) (remote.Host, error)

// Progress receives one line per step of long work (the provider sends it to tflog).
type Progress func(format string, args ...any)

// member is a host with the role its image must have.
type member struct {
	what string // "front end 1", "backend web1"...
	role string
	host Host
}

// checkRoles probes every member (in parallel) and refuses, before anything is changed, a host that is not
// Debian 12 or was not cloned from an image of the expected role. It returns the dialled hosts in order.
func checkRoles(ctx context.Context, dial Dialer, members []member) ([]remote.Host, error) {
	hosts := make([]remote.Host, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		rh, err := dial(m.host)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", m.what, m.host, err)
		}
		hosts[i] = rh
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = checkRole(ctx, rh, m)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return hosts, nil
}

func checkRole(ctx context.Context, rh remote.Host, m member) error {
	f, err := hostfacts.Probe(ctx, rh)
	if err != nil {
		return fmt.Errorf("%s (%s): cannot read the host's facts: %w", m.what, rh.Name(), err)
	}
	if !f.IsDebian12() {
		return fmt.Errorf("%s (%s) runs %q: MOHD's roles are for Debian 12 (bookworm); clone the host from a MOHD image", m.what, rh.Name(), f.OSPrettyName)
	}
	if f.Manifest == nil {
		return fmt.Errorf("%s (%s) has no MOHD image manifest (/etc/mohd/image-manifest.json): clone it from the %q image built by packer-plugin-moodle", m.what, rh.Name(), m.role)
	}
	if f.Manifest.Role != m.role {
		return fmt.Errorf("%s (%s) was cloned from a %q image, not a %q one: nothing was changed; point it at a host of the right role", m.what, rh.Name(), f.Manifest.Role, m.role)
	}
	return nil
}

// forEach runs fn for every host in parallel and joins the errors (each already names its host).
func forEach[T any](items []T, fn func(int, T) error) error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i, it)
		}()
	}
	wg.Wait()
	return joinErrs(errs)
}

func joinErrs(errs []error) error {
	var out []error
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	msg := fmt.Sprintf("%d hosts failed:", len(out))
	for _, e := range out {
		msg += "\n  - " + e.Error()
	}
	return fmt.Errorf("%s", msg)
}

// servicesScript prints each of the role's services that is not running although it should (a unit whose
// start conditions do not hold, as auditd's in a container, is not expected to run); with start, it starts
// them first.
func servicesScript(role string, start bool) (string, error) {
	r, err := roles.Get(role)
	if err != nil {
		return "", err
	}
	action := ""
	if start {
		action = `systemctl is-enabled --quiet "$s" || systemctl enable --quiet "$s"
	systemctl is-active --quiet "$s" || systemctl start "$s" || true
	`
	}
	return fmt.Sprintf(`for s in %s; do
	%sif ! systemctl is-active --quiet "$s" && [ "$(systemctl show -p ConditionResult --value "$s")" != no ]; then
		echo "$s is $(systemctl is-active "$s")"
	fi
done`, quoteList(r.Services), action), nil
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = remote.Quote(s)
	}
	return strings.Join(q, " ")
}

// ensureServices starts the role's services a person or a crash stopped, and fails naming those that do not
// stay up.
func ensureServices(ctx context.Context, h remote.Host, role string) error {
	script, err := servicesScript(role, true)
	if err != nil {
		return err
	}
	r, err := h.Run(ctx, remote.Cmd{Command: script, Desc: "start the " + role + " role's services"})
	if err != nil {
		return err
	}
	if down := strings.TrimSpace(string(r.Stdout)); down != "" {
		return fmt.Errorf("%s: services do not start: %s (see journalctl -u on the host)", h.Name(), strings.ReplaceAll(down, "\n", "; "))
	}
	return nil
}

// servicesDown lists the role's services that are not running, as drift.
func servicesDown(ctx context.Context, h remote.Host, role string) ([]string, error) {
	script, err := servicesScript(role, false)
	if err != nil {
		return nil, err
	}
	r, err := h.Run(ctx, remote.Cmd{Command: script, Desc: "read the " + role + " role's services"})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(r.Stdout)), "\n") {
		if l != "" {
			out = append(out, "service "+l)
		}
	}
	return out, nil
}

// ensureAllServices runs ensureServices on every member, in parallel.
func ensureAllServices(ctx context.Context, hosts []remote.Host, members []member) error {
	return forEach(hosts, func(i int, h remote.Host) error { return ensureServices(ctx, h, members[i].role) })
}
