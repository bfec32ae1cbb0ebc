// Package redis wires the Redis host of a MOHD site (a host cloned from the "redis" role image) for Moodle's
// sessions and application cache: it adds the host's private address next to loopback, the password and the
// memory limit, gives the Prometheus exporter the password, and reports drift.
//
// The role image already runs Redis on loopback only, in protected mode, with an append-only file and the
// noeviction policy, and its redis.conf ends with "include /etc/redis/conf.d/*.conf": the site's settings go
// into one file there (SiteConfPath), read last, so they override the image's bind line. Secrets are never
// baked into an image and never put on a command line: the password travels to the host inside an uploaded
// file (0640) or on a command's standard input.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Paths of what Configure writes.
const (
	// SiteConfPath holds bind, requirepass and maxmemory; Redis reads it after the role's redis.conf.
	SiteConfPath = "/etc/redis/conf.d/50-mohd-site.conf"
	// ExporterPasswordPath is the exporter's password file (its -redis.password-file format: a JSON object
	// from the scraped address to its password), readable by the exporter's group only.
	ExporterPasswordPath = "/etc/mohd/redis-exporter-password.json" //nolint:gosec // a path, not a credential
	// ExporterDropInPath points Debian's prometheus-redis-exporter.service at the password file through
	// environment variables (REDIS_ADDR, REDIS_PASSWORD_FILE): the secret stays off the exporter's argv.
	ExporterDropInPath = "/etc/systemd/system/prometheus-redis-exporter.service.d/50-mohd-site.conf"
)

// Port is Redis's TCP port (the role's firewall opens it to the cluster network).
const Port = 6379

const (
	redisService    = "redis-server"
	exporterService = "prometheus-redis-exporter"
	// exporterAddr is the address the exporter scrapes: pinned, because the password file is keyed by it.
	exporterAddr = "redis://127.0.0.1:6379"
	// exporterMetrics is where the exporter serves its metrics (the role's port 9121).
	exporterMetrics = "http://127.0.0.1:9121/metrics"
	// loopbackBind is the role's bind line: IPv4 loopback, and IPv6 loopback where the host has it ("-").
	loopbackBind = "127.0.0.1 -::1"
)

// Config is a site's Redis settings.
type Config struct {
	// BindAddress is the host's private address, on which the web nodes reach Redis, in addition to
	// loopback.
	BindAddress string
	// Password is required from every client (requirepass), loopback included.
	Password string
	// MaxMemoryMB caps the data set (maxmemory); 0 means no limit. With the role's noeviction policy a full
	// Redis refuses writes instead of evicting sessions.
	MaxMemoryMB int
}

// Validate checks c without contacting any host.
func (c Config) Validate() error {
	var errs []error
	addr, err := netip.ParseAddr(c.BindAddress)
	switch {
	case c.BindAddress == "":
		errs = append(errs, errors.New("bind_address is empty: give the host's private address, on which the web nodes reach Redis"))
	case err != nil:
		errs = append(errs, fmt.Errorf("bind_address %q is not an IP address", c.BindAddress))
	case addr.Zone() != "":
		errs = append(errs, fmt.Errorf("bind_address %q: IPv6 zones are not supported", c.BindAddress))
	case addr.IsUnspecified():
		errs = append(errs, fmt.Errorf("bind_address %q would listen on every interface: give the host's private address", c.BindAddress))
	case addr.IsLoopback():
		errs = append(errs, fmt.Errorf("bind_address %q is a loopback address: Redis listens on loopback anyway; give the private address the web nodes use", c.BindAddress))
	case addr.IsMulticast():
		errs = append(errs, fmt.Errorf("bind_address %q is a multicast address", c.BindAddress))
	}
	if c.Password == "" {
		errs = append(errs, errors.New("password is empty: Redis listens on the private network and must require a password"))
	}
	for _, r := range c.Password {
		if r < 0x20 || r == 0x7f {
			errs = append(errs, errors.New("password contains a control character (newline, tab...): use printable characters only"))
			break
		}
	}
	if c.MaxMemoryMB < 0 {
		errs = append(errs, fmt.Errorf("max_memory_mb is %d: give a size in MiB, or 0 for no limit", c.MaxMemoryMB))
	}
	return errors.Join(errs...)
}

// bindLine is the value of Redis's bind directive: loopback, then the private address.
func (c Config) bindLine() string {
	return loopbackBind + " " + canonicalAddr(c.BindAddress)
}

func canonicalAddr(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String()
	}
	return s
}

// maxMemoryBytes is maxmemory as Redis reports it (CONFIG GET, INFO): 1 MiB = 1048576 bytes ("mb").
func (c Config) maxMemoryBytes() int64 { return int64(c.MaxMemoryMB) * 1024 * 1024 }

// redisQuote quotes s as one argument of a Redis configuration line: in double quotes, Redis's parser
// (sdssplitargs) takes \\ and \" as escapes and every other byte as is. Validate excludes control characters.
func redisQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// siteConf renders SiteConfPath.
func (c Config) siteConf() []byte {
	var b strings.Builder
	b.WriteString(`# Managed by MOHD (moodle_cluster): this site's Redis settings. Redis reads this file after the role's
# /etc/redis/redis.conf (its last line includes /etc/redis/conf.d/*.conf), so these lines override the image's.
# A hand edit is reported as drift and overwritten; Redis is restarted when this file changes.

# Loopback (local tools, the exporter) and the private address the web nodes use.
bind ` + c.bindLine() + `
# Every client authenticates, loopback included.
requirepass ` + redisQuote(c.Password) + `
`)
	if c.MaxMemoryMB > 0 {
		b.WriteString("# The data set's cap. With the role's noeviction policy a full Redis refuses writes, it never evicts a session.\n")
		b.WriteString("maxmemory " + strconv.Itoa(c.MaxMemoryMB) + "mb\n")
	} else {
		b.WriteString("# No cap on the data set (max_memory_mb = 0).\nmaxmemory 0\n")
	}
	return []byte(b.String())
}

// exporterPassword renders ExporterPasswordPath: the exporter's password file, keyed by the address it scrapes.
func (c Config) exporterPassword() ([]byte, error) {
	b, err := json.Marshal(map[string]string{exporterAddr: c.Password})
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// exporterDropIn is ExporterDropInPath's content. Debian's unit passes $ARGS from /etc/default (empty) and
// reads no other file; the exporter takes REDIS_ADDR and REDIS_PASSWORD_FILE from its environment.
const exporterDropIn = `# Managed by MOHD (moodle_cluster): the exporter reads Redis's password from a file (0640 root:prometheus),
# so the secret is neither on its command line nor in this unit.
[Service]
Environment=REDIS_ADDR=` + exporterAddr + `
Environment=REDIS_PASSWORD_FILE=` + ExporterPasswordPath + `
`

// files are the files Configure writes, in order.
func (c Config) files() ([]remote.File, error) {
	pw, err := c.exporterPassword()
	if err != nil {
		return nil, err
	}
	return []remote.File{
		{Path: SiteConfPath, Content: c.siteConf(), Mode: 0o640, Owner: "redis", Group: "redis"},
		{Path: ExporterPasswordPath, Content: pw, Mode: 0o640, Owner: "root", Group: "prometheus", MkdirParents: true},
		{Path: ExporterDropInPath, Content: []byte(exporterDropIn), Mode: 0o644, Owner: "root", Group: "root", MkdirParents: true},
	}, nil
}

// Configure gives the Redis host h the site's settings: the site file, the exporter's password, Redis and
// the exporter restarted only when their files changed (started and enabled when they were not). It returns
// once Redis answers AUTH + PING on the private address, the exporter reports redis_up 1, and sessions are
// safe (append-only file, noeviction). changed reports whether anything on the host was modified.
func Configure(ctx context.Context, h remote.Host, c Config) (changed bool, err error) {
	if err := c.Validate(); err != nil {
		return false, fmt.Errorf("%s: redis: %w", h.Name(), err)
	}
	files, err := c.files()
	if err != nil {
		return false, err
	}
	unlock, err := h.Lock(ctx, "redis")
	if err != nil {
		return false, err
	}
	defer func() { _ = unlock() }()

	if err := checkHostAddress(ctx, h, c.BindAddress); err != nil {
		return false, err
	}
	wrote := map[string]bool{}
	for _, f := range files {
		ch, err := h.Upload(ctx, f)
		if err != nil {
			return changed, err
		}
		wrote[f.Path] = ch
		changed = changed || ch
	}
	if wrote[ExporterDropInPath] {
		if _, err := h.Run(ctx, remote.Cmd{Command: "systemctl daemon-reload", Desc: "systemctl daemon-reload (exporter drop-in)"}); err != nil {
			return changed, err
		}
	}
	ch, err := ensureService(ctx, h, redisService, wrote[SiteConfPath], "tail -n 20 /var/log/redis/redis-server.log")
	changed = changed || ch
	if err != nil {
		return changed, err
	}
	if err := waitPing(ctx, h, c); err != nil {
		return changed, err
	}
	ch, err = ensureService(ctx, h, exporterService, wrote[ExporterDropInPath] || wrote[ExporterPasswordPath], "")
	changed = changed || ch
	if err != nil {
		return changed, err
	}
	if err := waitExporter(ctx, h); err != nil {
		return changed, err
	}

	st, err := Inspect(ctx, h, c)
	if err != nil {
		return changed, err
	}
	if p := st.Problems(); len(p) > 0 {
		return changed, fmt.Errorf("%s: redis configured, but:\n- %s", h.Name(), strings.Join(p, "\n- "))
	}
	return changed, nil
}

// checkHostAddress fails unless addr is configured on one of h's interfaces: Redis would not start with a
// bind address it cannot take, and the running Redis is better left alone than broken.
func checkHostAddress(ctx context.Context, h remote.Host, addr string) error {
	res, err := h.Run(ctx, remote.Cmd{Command: "ip -o addr show", Desc: "list the host's addresses"})
	if err != nil {
		return err
	}
	want, _ := netip.ParseAddr(addr)
	have := hostAddrs(string(res.Stdout))
	for _, a := range have {
		if a == want {
			return nil
		}
	}
	return fmt.Errorf("%s: redis: bind_address %s is not an address of this host (it has %s): give the address of its private interface",
		h.Name(), addr, joinAddrs(have))
}

// hostAddrs parses `ip -o addr show`: "2: eth0    inet 10.0.0.5/24 brd ... scope global eth0 ...".
func hostAddrs(out string) []netip.Addr {
	var addrs []netip.Addr
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "inet" && f[i] != "inet6" {
				continue
			}
			if p, err := netip.ParsePrefix(f[i+1]); err == nil {
				addrs = append(addrs, p.Addr().WithZone(""))
			}
			break
		}
	}
	return addrs
}

func joinAddrs(addrs []netip.Addr) string {
	if len(addrs) == 0 {
		return "none"
	}
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// ensureService restarts svc when restart is set, starts it when it is not active, and enables it; on a
// failure the error carries the unit's journal (and the output of logCmd, when given).
func ensureService(ctx context.Context, h remote.Host, svc string, restart bool, logCmd string) (bool, error) {
	r := "0"
	if restart {
		r = "1"
	}
	if logCmd == "" {
		logCmd = "true"
	}
	script := `svc=` + svc + `
changed=
fail() { echo "$svc failed to start:" >&2; journalctl -u "$svc" -n 20 --no-pager >&2 || true; ` + logCmd + ` >&2 || true; exit 1; }
if [ ` + r + ` = 1 ]; then
	systemctl restart "$svc" || fail
	changed=1
elif ! systemctl is-active --quiet "$svc"; then
	systemctl start "$svc" || fail
	changed=1
fi
if ! systemctl is-enabled --quiet "$svc"; then
	systemctl enable --quiet "$svc"
	changed=1
fi
[ -z "$changed" ] || echo changed`
	desc := "start " + svc
	if restart {
		desc = "restart " + svc
	}
	res, err := h.Run(ctx, remote.Cmd{Command: script, Desc: desc})
	return strings.TrimSpace(string(res.Stdout)) == "changed", err
}

// readPassword makes a script read the password from its standard input into REDISCLI_AUTH, which
// redis-cli sends as AUTH: the password is never on a command line.
const readPassword = "IFS= read -r REDISCLI_AUTH || true\nexport REDISCLI_AUTH\n" //nolint:gosec // reads the password from stdin

// waitPing waits (2 minutes at most: a large append-only file takes a while to load) until Redis answers
// AUTH + PING on the private address.
func waitPing(ctx context.Context, h remote.Host, c Config) error {
	script := readPassword + `addr=` + remote.Quote(canonicalAddr(c.BindAddress)) + `
i=0
until out=$(timeout 5 redis-cli --no-auth-warning -h "$addr" -p ` + strconv.Itoa(Port) + ` ping 2>&1) && [ "$out" = PONG ]; do
	i=$((i + 1))
	if [ "$i" -ge 240 ]; then
		echo "Redis did not answer AUTH + PING on $addr:` + strconv.Itoa(Port) + ` within 2 minutes; last answer: $out" >&2
		tail -n 20 /var/log/redis/redis-server.log >&2 || true
		exit 1
	fi
	sleep 0.5
done`
	_, err := h.Run(ctx, remote.Cmd{Command: script, Stdin: []byte(c.Password + "\n"), Secrets: []string{c.Password},
		Desc: "wait for Redis to answer AUTH + PING on " + c.BindAddress})
	return err
}

// waitExporter waits (1 minute at most) until the exporter reaches Redis with the password (redis_up 1).
func waitExporter(ctx context.Context, h remote.Host) error {
	script := `i=0
until curl -fsS --max-time 5 ` + exporterMetrics + ` 2>/dev/null | grep -qx 'redis_up 1'; do
	i=$((i + 1))
	if [ "$i" -ge 60 ]; then
		echo "the Redis exporter does not report redis_up 1 after a minute (wrong or unreadable password file ` + ExporterPasswordPath + `?)" >&2
		journalctl -u ` + exporterService + ` -n 20 --no-pager >&2 || true
		exit 1
	fi
	sleep 1
done`
	_, err := h.Run(ctx, remote.Cmd{Command: script, Desc: "wait for the Redis exporter to report redis_up 1"})
	return err
}
