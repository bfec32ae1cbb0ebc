package haproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mohd-dev/mohd/internal/remote"
)

// ConfigureSite sets the site-wide part of a front end (plain HTTP, or TLS with s's certificate) and
// re-asserts everything else the registry holds: 10-site.cfg, a reload when the running HAProxy does not
// run it, the servers' runtime states. changed reports whether anything on the host changed.
func ConfigureSite(ctx context.Context, h remote.Host, s Site) (changed bool, err error) {
	sum, err := s.CertificateSHA256()
	if err != nil {
		return false, err
	}
	return apply(ctx, h, &s, func(r *registry) error {
		r.TLS, r.CertificateSHA256 = s.TLS(), sum
		return nil
	})
}

// PutServer adds the server s to the site's backend, or updates the one with its name, and re-asserts the
// rest of the site (see ConfigureSite; the certificate is left as it is). The running HAProxy has the
// server in its new state when PutServer returns.
func PutServer(ctx context.Context, h remote.Host, s Server) (changed bool, err error) {
	s, err = s.normalized()
	if err != nil {
		return false, err
	}
	return apply(ctx, h, nil, func(r *registry) error {
		r.put(s)
		return nil
	})
}

// RemoveServer takes the server name out of the site's backend without failing a request: it drains the
// server (no new requests), waits until no HAProxy process (the current worker, or an old one finishing
// its requests after a reload) has a session on it, or until drainTimeout, then removes it and reloads.
// progress (optional) receives a line while it waits. A server the registry does not have is left alone.
func RemoveServer(ctx context.Context, h remote.Host, name string, drainTimeout time.Duration, progress func(string)) error {
	if err := validServerName(name); err != nil {
		return err
	}
	say := func(format string, a ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, a...))
		}
	}
	present := false
	// The drain is recorded in the registry: another backend's PutServer re-asserts every server's state
	// and would otherwise put this one back into service while it drains.
	if _, err := apply(ctx, h, nil, func(r *registry) error {
		s, ok := r.server(name)
		if !ok {
			return errNoop
		}
		present = true
		if s.State == StateActive {
			s.State = StateDrain
			r.put(s)
		}
		return nil
	}); err != nil {
		return err
	}
	if !present {
		return nil
	}
	deadline := time.Now().Add(drainTimeout)
	lastSaid := time.Time{}
	for {
		n, err := serverSessions(ctx, h, name)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			say("server %s still has %d session(s) after %s: removing it anyway", name, n, drainTimeout)
			break
		}
		if time.Since(lastSaid) >= 5*time.Second {
			say("draining server %s on %s: %d session(s) left", name, h.Name(), n)
			lastSaid = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("haproxy: %s: waiting for server %s to drain (it stays drained): %w", h.Name(), name, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	_, err := apply(ctx, h, nil, func(r *registry) error {
		if !r.remove(name) {
			return errNoop
		}
		return nil
	})
	if err == nil {
		say("server %s removed from %s", name, h.Name())
	}
	return err
}

// errNoop makes apply return at once, changing nothing.
var errNoop = errors.New("nothing to do")

const certBackup = "/etc/haproxy/mohd-site.pem.previous"

// apply is the one way the site changes: under the site's lock, read the registry and what the host runs,
// let mutate change the registry, install the certificate (site != nil) and 10-site.cfg once HAProxy has
// accepted them, reload when the running HAProxy does not run them, and put the servers' runtime states
// right.
func apply(ctx context.Context, h remote.Host, site *Site, mutate func(*registry) error) (bool, error) {
	var certPEM []byte
	if site != nil && site.TLS() {
		var err error
		if certPEM, err = site.pemFile(); err != nil {
			return false, err
		}
	}
	unlock, err := h.Lock(ctx, LockName)
	if err != nil {
		return false, fmt.Errorf("haproxy: taking the site lock on %s: %w", h.Name(), err)
	}
	defer func() { _ = unlock() }()

	hs, err := readHostState(ctx, h)
	if err != nil {
		return false, err
	}
	if hs.regErr != nil {
		return false, fmt.Errorf("haproxy: %s: %w", h.Name(), hs.regErr)
	}
	reg := hs.reg.clone()
	if err := mutate(&reg); err != nil {
		if errors.Is(err, errNoop) {
			return false, nil
		}
		return false, err
	}
	cfg, rev := renderSite(reg)
	changed := false

	// The certificate first: the candidate configuration is checked with it in place. The previous one is
	// kept aside until the check passed.
	certWritten := certPEM != nil && hs.certSHA != sha256Hex(certPEM)
	if certWritten {
		if _, err := h.Run(ctx, remote.Cmd{Desc: "keep the site's previous certificate aside",
			Command: `if [ -e ` + CertFile + ` ]; then cp -p ` + CertFile + ` ` + certBackup + `; else rm -f ` + certBackup + `; fi`}); err != nil {
			return false, fmt.Errorf("haproxy: %w", err)
		}
		if _, err := h.Upload(ctx, remote.File{Path: CertFile, Content: certPEM, Mode: 0o600, Owner: "root", Group: "root"}); err != nil {
			return false, fmt.Errorf("haproxy: installing the site's certificate: %w", err)
		}
		changed = true
	}
	cfgChanged := !bytes.Equal(hs.siteCfg, cfg)
	if cfgChanged || certWritten {
		if err := checkConfig(ctx, h, cfg); err != nil {
			if certWritten {
				_, rerr := h.Run(ctx, remote.Cmd{Desc: "put the site's previous certificate back",
					Command: `if [ -e ` + certBackup + ` ]; then mv ` + certBackup + ` ` + CertFile + `; else rm -f ` + CertFile + `; fi`})
				err = errors.Join(err, rerr)
			}
			if reg.TLS && certPEM == nil && hs.certSHA != reg.CertificateSHA256 {
				err = fmt.Errorf("%w\n(the site's certificate %s is not the one the registry expects: apply the cluster (ConfigureSite) to restore it)", err, CertFile)
			}
			return false, err
		}
	}
	if certWritten {
		if _, err := h.Run(ctx, remote.Cmd{Desc: "drop the site's previous certificate", Command: "rm -f " + certBackup}); err != nil {
			return false, fmt.Errorf("haproxy: %w", err)
		}
	}
	// The registry first: should the rest fail, the next apply renders from what was asked.
	c, err := h.Upload(ctx, remote.File{Path: RegistryFile, Content: reg.marshal(), Mode: 0o600, Owner: "root", Group: "root"})
	if err != nil {
		return false, fmt.Errorf("haproxy: writing the registry %s: %w", RegistryFile, err)
	}
	changed = changed || c
	c, err = h.Upload(ctx, remote.File{Path: SiteFile, Content: cfg, Mode: 0o640, Owner: "root", Group: "root"})
	if err != nil {
		return false, fmt.Errorf("haproxy: installing %s: %w", SiteFile, err)
	}
	changed = changed || c

	if hs.enabled != "enabled" {
		if _, err := h.Run(ctx, remote.Cmd{Desc: "enable haproxy at boot", Command: "systemctl enable --quiet haproxy"}); err != nil {
			return false, fmt.Errorf("haproxy: %w", err)
		}
		changed = true
	}
	if cfgChanged || certWritten || len(hs.runningDrift(rev, reg)) > 0 {
		// A server whose address changed must not get its old address back from the saved states.
		var forget []string
		for _, s := range reg.Servers {
			if rt, ok := hs.runtime[s.Name]; ok && addrDiffers(s, rt) {
				forget = append(forget, s.Name)
			}
		}
		if err := reload(ctx, h, hs.active == "active", forget); err != nil {
			return false, err
		}
		changed = true
	}
	// Without TLS the certificate goes, once no running configuration needs it.
	if !reg.TLS && hs.certSHA != "" {
		if _, err := h.Run(ctx, remote.Cmd{Desc: "remove the site's certificate (TLS is off)", Command: "rm -f " + CertFile}); err != nil {
			return false, fmt.Errorf("haproxy: %w", err)
		}
		changed = true
	}
	fixed, err := assertRuntime(ctx, h, reg)
	return changed || fixed, err
}

// checkScript checks the candidate 10-site.cfg (stdin) with the rest of conf.d, in a copy of the directory,
// before it replaces the file HAProxy loads.
const checkScript = `set -e
d=$(mktemp -d /run/mohd-haproxy-check.XXXXXX)
trap 'rm -rf "$d"' EXIT
cp -p ` + ConfDir + `/*.cfg "$d"/
cat > "$d/10-site.cfg"
if ! out=$(haproxy -c -f "$d" 2>&1); then
	printf '%s\n' "$out" | sed "s#$d/#` + ConfDir + `/#g" >&2
	exit 1
fi`

func checkConfig(ctx context.Context, h remote.Host, cfg []byte) error {
	if _, err := h.Run(ctx, remote.Cmd{Command: checkScript, Stdin: cfg, Desc: "check the new 10-site.cfg with haproxy -c"}); err != nil {
		return fmt.Errorf("haproxy: HAProxy refuses the site's new configuration; nothing was changed: %w", err)
	}
	return nil
}

// reloadScript reloads HAProxy hitlessly (or starts it) and waits until a new worker answers on the
// runtime API. $1: " name name " of the servers whose saved state must not be carried over.
const reloadScript = `set -u
sock=` + AdminSocket + `
msock=` + MasterSocket + `
state=` + serverStateFile + `
skip="$1"
worker() { echo 'show info' | socat -t 5 stdio "unix-connect:$sock" 2>/dev/null | sed -n 's/^Pid: //p'; }
failed() { echo 'show proc' | socat -t 5 stdio "unix-connect:$msock" 2>/dev/null | sed -n 's/.*master.*\[failed: \([0-9]*\)\].*/\1/p'; }
rm -f "$state"
old= fail0=
if [ "$2" = running ] && systemctl is-active --quiet haproxy; then
	old=$(worker)
	fail0=$(failed)
	# The servers' check states, for the new configuration (load-server-state-from-file).
	if echo 'show servers state ` + Backend + `' | socat -t 5 stdio "unix-connect:$sock" > "$state.tmp" 2>/dev/null &&
		[ "$(head -n 1 "$state.tmp")" = 1 ]; then
		awk -v skip="$skip" 'NR <= 2 || index(skip, " " $4 " ") == 0' "$state.tmp" > "$state"
	fi
	rm -f "$state.tmp"
	if ! systemctl reload haproxy; then rm -f "$state"; exit 1; fi
else
	systemctl reset-failed haproxy 2>/dev/null || true
	if ! systemctl restart haproxy; then
		journalctl -u haproxy -n 20 --no-pager >&2 || true
		exit 1
	fi
fi
i=0
while :; do
	new=$(worker)
	if [ -n "$new" ] && [ "$new" != "$old" ]; then break; fi
	f=$(failed)
	if [ -n "$fail0" ] && [ -n "$f" ] && [ "$f" != "$fail0" ]; then
		echo "the HAProxy master could not load the new configuration; the previous one still runs" >&2
		journalctl -u haproxy -n 20 --no-pager >&2 || true
		rm -f "$state"
		exit 1
	fi
	i=$((i + 1))
	if [ "$i" -ge 300 ]; then
		echo "no new HAProxy worker answered on $sock within 60 s (haproxy is $(systemctl is-active haproxy))" >&2
		journalctl -u haproxy -n 20 --no-pager >&2 || true
		rm -f "$state"
		exit 1
	fi
	sleep 0.2
done
rm -f "$state"`

func reload(ctx context.Context, h remote.Host, running bool, forget []string) error {
	mode := "stopped"
	if running {
		mode = "running"
	}
	skip := " "
	for _, n := range forget {
		skip += n + " "
	}
	cmd := reloadScript
	// Server names are validated ([A-Za-z0-9._-]): safe as a quoted word.
	cmd = "set -- " + remote.Quote(skip) + " " + mode + "\n" + cmd
	if _, err := h.Run(ctx, remote.Cmd{Command: cmd, Desc: "reload haproxy (hitless) with the site's configuration"}); err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	return nil
}

// runtimeScript prints `show servers state` of the site's backend.
const runtimeScript = `echo 'show servers state ` + Backend + `' | socat -t 5 stdio unix-connect:` + AdminSocket

func readRuntime(ctx context.Context, h remote.Host) (map[string]runtimeServer, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: runtimeScript, Desc: "read the servers' runtime state"})
	if err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	rt, err := parseServersState(string(res.Stdout))
	if err != nil {
		return nil, fmt.Errorf("haproxy: %s: %w", h.Name(), err)
	}
	return rt, nil
}

// assertRuntime puts every server's runtime state (admin state, weight) right through the runtime API,
// and checks the result.
func assertRuntime(ctx context.Context, h remote.Host, reg registry) (bool, error) {
	rt, err := readRuntime(ctx, h)
	if err != nil {
		return false, err
	}
	var cmds []string
	for _, s := range reg.Servers {
		r, ok := rt[s.Name]
		if !ok {
			return false, fmt.Errorf("haproxy: %s: the running HAProxy has no server %s after loading the site's configuration", h.Name(), s.Name)
		}
		cmds = append(cmds, runtimeFixes(s, r)...)
	}
	if len(cmds) == 0 {
		return false, nil
	}
	var script strings.Builder
	script.WriteString("rc=0\n")
	for _, c := range cmds {
		// A command that worked answers nothing; an error is a message.
		fmt.Fprintf(&script, "out=$(echo %s | socat -t 5 stdio unix-connect:%s 2>&1); if [ -n \"$(printf '%%s' \"$out\" | tr -d '[:space:]')\" ]; then echo %s: \"$out\" >&2; rc=1; fi\n",
			remote.Quote(c), AdminSocket, remote.Quote(c))
	}
	script.WriteString("exit $rc\n")
	if _, err := h.Run(ctx, remote.Cmd{Command: script.String(), Desc: "set the servers' runtime state"}); err != nil {
		return false, fmt.Errorf("haproxy: %w", err)
	}
	rt, err = readRuntime(ctx, h)
	if err != nil {
		return true, err
	}
	for _, s := range reg.Servers {
		if d := runtimeDrift(s, rt[s.Name]); len(d) > 0 {
			return true, fmt.Errorf("haproxy: %s: server %s %s after the runtime API was told", h.Name(), s.Name, strings.Join(d, "; "))
		}
	}
	return true, nil
}

// sessionsScript prints `show stat` of every worker, current and old (an old worker finishes its requests
// after a reload), through the master CLI.
const sessionsScript = `msock=` + MasterSocket + `
systemctl is-active --quiet haproxy || { printf '\n==== mohd:end\n'; exit 0; }
procs=$(echo 'show proc' | socat -t 5 stdio "unix-connect:$msock") || exit 1
case "$procs" in *master*) ;; *) echo "the master CLI ($msock) answered: $procs" >&2; exit 1 ;; esac
for p in $(printf '%s\n' "$procs" | awk '$2 == "worker" {print $1}'); do
	printf '\n==== mohd:%s\n' "$p"
	echo "@!$p show stat ` + Backend + ` 4 -1" | socat -t 5 stdio "unix-connect:$msock" 2>&1 || true
done
printf '\n==== mohd:end\n'`

// serverSessions counts the sessions (and queued requests) on server name in every HAProxy worker.
func serverSessions(ctx context.Context, h remote.Host, name string) (int, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: sessionsScript, Desc: "count the sessions on server " + name})
	if err != nil {
		return 0, fmt.Errorf("haproxy: %w", err)
	}
	n := 0
	for pid, out := range splitSections(string(res.Stdout)) {
		if pid == "end" {
			continue
		}
		st, err := parseStat(out)
		if err != nil {
			// A worker that exits between `show proc` and its question has nothing left.
			continue
		}
		if r, ok := st[name]; ok {
			n += r.Sessions + r.Queued
		}
	}
	return n, nil
}
