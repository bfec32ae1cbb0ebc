package roles

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mohd-dev/mohd/internal/hostfacts"
	"github.com/mohd-dev/mohd/internal/remote"
)

// Progress receives one line per step, for the Packer UI or tflog.
type Progress func(msg string)

// Report says what an Apply changed; an empty report means the host already had the role exactly.
type Report struct {
	Installed []string // packages installed
	Purged    []string // forbidden packages removed
	Files     []string // files written
	Steps     []string // setup steps that changed something
	Restarted []string // services restarted or reloaded
	Started   []string // services enabled or started
}

// Changed reports whether anything changed.
func (r *Report) Changed() bool {
	return len(r.Installed)+len(r.Purged)+len(r.Files)+len(r.Steps)+len(r.Restarted)+len(r.Started) > 0
}

// Apply gives h the role: packages, files, setup, services, firewall and hardening, then runs the role's
// checks. It is idempotent: on a host that already has the role it changes nothing and says so.
func Apply(ctx context.Context, h remote.Host, r *Role, p Params, say Progress) (*Report, error) {
	if say == nil {
		say = func(string) {}
	}
	p = p.withDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	rep := &Report{}
	facts, err := hostfacts.Probe(ctx, h)
	if err != nil {
		return nil, err
	}
	if !facts.IsDebian12() {
		return nil, fmt.Errorf("%s runs %s: MOHD's roles are written for Debian 12 (bookworm)", h.Name(), facts.OSPrettyName)
	}

	say(fmt.Sprintf("%s: packages", r.Name))
	if err := ensurePackages(ctx, h, r.allPackages(p), r.Forbidden, rep); err != nil {
		return rep, err
	}

	say(fmt.Sprintf("%s: configuration files", r.Name))
	files, err := r.render(p)
	if err != nil {
		return rep, err
	}
	if isContainer(facts.Virtualization) {
		files = append(files, r.containerDropIns()...)
	}
	restart, reload := map[string]bool{}, map[string]bool{}
	unitsChanged := false
	for _, f := range files {
		changed, err := h.Upload(ctx, f.File)
		if err != nil {
			return rep, err
		}
		if changed {
			rep.Files = append(rep.Files, f.Path)
			unitsChanged = unitsChanged || strings.HasPrefix(f.Path, "/etc/systemd/system/")
			for _, s := range f.Restart {
				restart[s] = true
			}
			for _, s := range f.Reload {
				reload[s] = true
			}
		}
	}

	for _, s := range append(slices.Clone(commonSetup), r.Setup...) {
		say(fmt.Sprintf("%s: %s", r.Name, s.Desc))
		res, err := h.Run(ctx, remote.Cmd{Command: "sh -eu", Stdin: []byte(s.Script), Desc: r.Name + ": " + s.Desc})
		if err != nil {
			return rep, err
		}
		if lastLine(string(res.Stdout)) == "changed" {
			rep.Steps = append(rep.Steps, s.Desc)
		}
	}

	say(fmt.Sprintf("%s: services", r.Name))
	if err := ensureServices(ctx, h, append(slices.Clone(commonServices), r.Services...), unitsChanged, restart, reload, rep); err != nil {
		return rep, err
	}

	say(fmt.Sprintf("%s: checks", r.Name))
	if err := Check(ctx, h, r); err != nil {
		return rep, err
	}
	if err := writeManifest(ctx, h, r, p, rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// Check runs the role's checks (and the common ones); the error lists every failed check.
func Check(ctx context.Context, h remote.Host, r *Role) error {
	var failed []string
	for _, c := range append(slices.Clone(commonChecks(r)), r.Checks...) {
		if _, err := h.Run(ctx, remote.Cmd{Command: "sh -eu", Stdin: []byte(c.Script), Desc: "check: " + c.Desc}); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s: %d check(s) of role %s failed:\n- %s", h.Name(), len(failed), r.Name, strings.Join(failed, "\n- "))
	}
	return nil
}

// isContainer reports whether systemd-detect-virt named a container manager.
func isContainer(virt string) bool {
	switch virt {
	case "docker", "podman", "lxc", "lxc-libvirt", "systemd-nspawn", "openvz", "rkt", "wsl", "proot", "pouch":
		return true
	}
	return false
}

func (r *Role) containerDropIns() []File {
	units := make([]string, 0, len(r.InContainer))
	for u := range r.InContainer {
		units = append(units, u)
	}
	slices.Sort(units)
	out := make([]File, 0, len(units))
	for _, u := range units {
		body := "# Managed by MOHD: only on container hosts (the lab), where the kernel refuses this sandboxing.\n" + r.InContainer[u]
		out = append(out, File{
			File: remote.File{Path: "/etc/systemd/system/" + u + ".d/50-mohd-container.conf", Content: []byte(body),
				Mode: 0o644, Owner: "root", Group: "root", MkdirParents: true},
			Restart: []string{strings.TrimSuffix(u, ".service")},
		})
	}
	return out
}

func (r *Role) render(p Params) ([]File, error) {
	files, err := commonFiles(r, p)
	if err != nil {
		return nil, err
	}
	if r.Files != nil {
		own, err := r.Files(p)
		if err != nil {
			return nil, fmt.Errorf("role %s: rendering files: %w", r.Name, err)
		}
		files = append(files, own...)
	}
	return files, nil
}

// ensurePackages installs what is missing (one apt-get run) and purges forbidden packages that are present.
func ensurePackages(ctx context.Context, h remote.Host, want, forbidden []string, rep *Report) error {
	installed, err := installedPackages(ctx, h, append(slices.Clone(want), forbidden...))
	if err != nil {
		return err
	}
	var missing, present []string
	for _, p := range want {
		if _, ok := installed[p]; !ok && !slices.Contains(missing, p) {
			missing = append(missing, p)
		}
	}
	for _, p := range forbidden {
		if _, ok := installed[p]; ok {
			present = append(present, p)
		}
	}
	if len(missing) > 0 {
		cmd := "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q --no-install-recommends " +
			"-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold " + quoteAll(missing)
		if _, err := h.Run(ctx, remote.Cmd{Command: cmd, Desc: "install " + strings.Join(missing, " ")}); err != nil {
			return err
		}
		rep.Installed = missing
	}
	if len(present) > 0 {
		cmd := "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q " + quoteAll(present) + " && apt-get autoremove -y -q --purge"
		if _, err := h.Run(ctx, remote.Cmd{Command: cmd, Desc: "remove " + strings.Join(present, " ")}); err != nil {
			return err
		}
		rep.Purged = present
	}
	return nil
}

// installedPackages returns name → version for the packages of names that are installed.
func installedPackages(ctx context.Context, h remote.Host, names []string) (map[string]string, error) {
	res, err := h.Run(ctx, remote.Cmd{
		Command: "dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' " + quoteAll(names) + " 2>/dev/null || true",
		Desc:    "list installed packages",
	})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		f := strings.Fields(line)
		// "ii " is installed; "rc " (removed, config left) and "un" are not.
		if len(f) >= 3 && f[2] == "ii" {
			out[f[0]] = f[1]
		}
	}
	return out, nil
}

// ensureServices enables and starts services, then restarts or reloads those whose files changed.
// unitsChanged says a unit file or drop-in changed: systemd must reload them even when no service restarts.
func ensureServices(ctx context.Context, h remote.Host, services []string, unitsChanged bool, restart, reload map[string]bool, rep *Report) error {
	if unitsChanged || len(restart)+len(reload) > 0 {
		if _, err := h.Run(ctx, remote.Cmd{Command: "systemctl daemon-reload", Desc: "systemd daemon-reload"}); err != nil {
			return err
		}
	}
	for _, s := range services {
		script := fmt.Sprintf(`s=%s
changed=
systemctl is-enabled --quiet "$s" 2>/dev/null || { systemctl enable --quiet "$s"; changed=1; }
if systemctl is-active --quiet "$s"; then
	case %q in restart) systemctl restart "$s"; changed=1 ;; reload) systemctl reload-or-restart "$s"; changed=1 ;; esac
else
	systemctl start "$s"
	# A unit whose conditions do not hold (auditd in a container) is skipped by systemd: not a change. The
	# failure its package's own start left, before MOHD's drop-in gave it that condition, is cleared.
	if systemctl is-active --quiet "$s"; then
		changed=1
	elif [ "$(systemctl show -p ConditionResult --value "$s")" = no ]; then
		systemctl reset-failed "$s" 2>/dev/null || true
	fi
fi
[ -z "$changed" ] || echo changed`, remote.Quote(s), action(s, restart, reload))
		res, err := h.Run(ctx, remote.Cmd{Command: "sh -eu", Stdin: []byte(script), Desc: "service " + s})
		if err != nil {
			return serviceError(ctx, h, s, err)
		}
		if lastLine(string(res.Stdout)) == "changed" {
			if restart[s] || reload[s] {
				rep.Restarted = append(rep.Restarted, s)
			} else {
				rep.Started = append(rep.Started, s)
			}
		}
	}
	return nil
}

func action(s string, restart, reload map[string]bool) string {
	switch {
	case restart[s]:
		return "restart"
	case reload[s]:
		return "reload"
	}
	return ""
}

// serviceError adds the unit's last journal lines to a failed start: what a sysadmin looks at first.
func serviceError(ctx context.Context, h remote.Host, s string, err error) error {
	res, jerr := h.Run(ctx, remote.Cmd{Command: "journalctl -u " + remote.Quote(s) + " -n 15 --no-pager -o cat", Desc: "journal of " + s})
	if jerr != nil {
		return err
	}
	return fmt.Errorf("%w\njournal of %s:\n%s", err, s, strings.TrimSpace(string(res.Stdout)))
}

func quoteAll(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = remote.Quote(w)
	}
	return strings.Join(q, " ")
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
