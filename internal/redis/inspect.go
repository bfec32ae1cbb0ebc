package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// State is what Inspect found on a Redis host.
type State struct {
	// InSync: the site file, the exporter's password file and its drop-in are exactly as Configure writes
	// them for the Config (content checksums, mode, owner).
	InSync bool
	// Drift names each file that differs, and how.
	Drift []string

	Active, Enabled bool // redis-server
	// Ping: Redis answered AUTH + PING with PONG on the private address.
	Ping bool
	// PingReply is Redis's answer there (an error such as WRONGPASS or "Connection refused" when not PONG).
	PingReply string
	// AuthRequired: without a password, Redis refused a command on the private address (NOAUTH).
	AuthRequired bool
	// RunningInSync: the running Redis binds the wanted addresses and has the wanted maxmemory (false when a
	// changed file was not applied, or Redis could not be asked).
	RunningInSync bool
	// Bind is the running bind directive.
	Bind string

	ProtectedMode   bool
	AppendOnly      bool   // appendonly yes
	AppendFsync     string // everysec in the role
	MaxMemoryPolicy string // noeviction in the role
	// SessionsSafe: the append-only file is on and nothing is evicted, as Moodle's sessions need.
	SessionsSafe bool
	// AOFLastWriteOK and RDBLastSaveOK: the last append-only write and the last snapshot succeeded.
	AOFLastWriteOK, RDBLastSaveOK bool
	Loading                       bool // Redis is still loading its data set

	UsedMemoryBytes  int64
	MaxMemoryBytes   int64 // 0: no limit
	ConnectedClients int

	ExporterActive bool
	// ExporterUp: the exporter reports redis_up 1 (it reaches Redis with the password).
	ExporterUp bool
}

// Problems lists, one line each, what stops the host from being as Configure leaves it: drift in the
// files, a stopped service, Redis not answering, running settings not applied, sessions not safe.
func (s State) Problems() []string {
	var p []string
	p = append(p, s.Drift...)
	if !s.Active {
		p = append(p, "redis-server is not running")
	} else if !s.Enabled {
		p = append(p, "redis-server is not enabled at boot")
	}
	if !s.Ping {
		p = append(p, "Redis does not answer AUTH + PING on the private address: "+s.PingReply)
	}
	if s.Ping && !s.AuthRequired {
		p = append(p, "Redis answers on the private address without a password")
	}
	if s.Ping && !s.RunningInSync {
		p = append(p, "the running Redis does not have the configured bind/maxmemory (bind "+strconv.Quote(s.Bind)+"): restart it")
	}
	if s.Ping && !s.SessionsSafe {
		p = append(p, fmt.Sprintf("sessions are not safe: appendonly %t, maxmemory-policy %q (the role sets appendonly yes and noeviction)",
			s.AppendOnly, s.MaxMemoryPolicy))
	}
	if s.Ping && s.AppendOnly && !s.AOFLastWriteOK && !s.Loading {
		p = append(p, "the last append-only-file write failed (disk full?)")
	}
	if !s.ExporterActive {
		p = append(p, exporterService+" is not running")
	} else if !s.ExporterUp {
		p = append(p, "the Redis exporter does not reach Redis (redis_up is not 1)")
	}
	return p
}

// Inspect reads the state of the Redis host h against c, changing nothing: the files' checksums, the
// services, AUTH + PING on the private address, the running settings (over loopback, authenticated), the
// persistence, memory and client counters, and the exporter.
func Inspect(ctx context.Context, h remote.Host, c Config) (State, error) {
	var st State
	if err := c.Validate(); err != nil {
		return st, fmt.Errorf("%s: redis: %w", h.Name(), err)
	}
	files, err := c.files()
	if err != nil {
		return st, err
	}
	for _, f := range files {
		d, err := remote.Drift(ctx, h, f)
		if err != nil {
			return st, err
		}
		if d != "" {
			st.Drift = append(st.Drift, d)
		}
	}
	st.InSync = len(st.Drift) == 0

	res, err := h.Run(ctx, remote.Cmd{Command: inspectScript(c), Stdin: []byte(c.Password + "\n"), Secrets: []string{c.Password},
		Desc: "inspect Redis"})
	if err != nil {
		return st, err
	}
	parseInspect(string(res.Stdout), c, &st)
	return st, nil
}

// inspectScript prints "key=value" lines, "config NAME=VALUE" for CONFIG GET and "info NAME:VALUE" for INFO;
// it reads the password from its standard input.
func inspectScript(c Config) string {
	return readPassword + `addr=` + remote.Quote(canonicalAddr(c.BindAddress)) + `
port=` + strconv.Itoa(Port) + `
echo "active=$(systemctl is-active ` + redisService + ` 2>/dev/null)"
echo "enabled=$(systemctl is-enabled ` + redisService + ` 2>/dev/null)"
echo "exporter_active=$(systemctl is-active ` + exporterService + ` 2>/dev/null)"
echo "ping=$(timeout 5 redis-cli --no-auth-warning -h "$addr" -p "$port" ping 2>&1 | tr '\n' ' ')"
echo "noauth=$(env -u REDISCLI_AUTH timeout 5 redis-cli -h "$addr" -p "$port" ping 2>&1 | tr '\n' ' ')"
timeout 5 redis-cli --no-auth-warning -h 127.0.0.1 -p "$port" config get protected-mode appendonly appendfsync maxmemory-policy maxmemory bind 2>/dev/null |
	awk 'NR % 2 == 1 { k = $0; next } { print "config " k "=" $0 }'
timeout 5 redis-cli --no-auth-warning -h 127.0.0.1 -p "$port" info persistence memory clients 2>/dev/null | tr -d '\r' |
	grep -E '^[a-z_]+:' | sed 's/^/info /'
echo "redis_up=$(timeout 5 curl -fsS ` + exporterMetrics + ` 2>/dev/null | awk '$1 == "redis_up" { print $2 }')"
`
}

// parseInspect fills st from inspectScript's output.
func parseInspect(out string, c Config, st *State) {
	kv := map[string]string{}
	cfg := map[string]string{}
	info := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "config "):
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "config "), "=")
			cfg[k] = v
		case strings.HasPrefix(line, "info "):
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "info "), ":")
			info[k] = strings.TrimSpace(v)
		default:
			if k, v, ok := strings.Cut(line, "="); ok {
				kv[k] = strings.TrimSpace(v)
			}
		}
	}
	st.Active = kv["active"] == "active"
	st.Enabled = kv["enabled"] == "enabled"
	st.ExporterActive = kv["exporter_active"] == "active"
	st.PingReply = kv["ping"]
	st.Ping = st.PingReply == "PONG"
	// Without credentials Redis answers NOAUTH (or, in protected mode with no password, DENIED).
	st.AuthRequired = strings.Contains(kv["noauth"], "NOAUTH")
	st.ExporterUp = kv["redis_up"] == "1"

	st.ProtectedMode = cfg["protected-mode"] == "yes"
	st.AppendOnly = cfg["appendonly"] == "yes"
	st.AppendFsync = cfg["appendfsync"]
	st.MaxMemoryPolicy = cfg["maxmemory-policy"]
	st.Bind = cfg["bind"]
	st.SessionsSafe = st.AppendOnly && st.MaxMemoryPolicy == "noeviction"
	maxmem, maxErr := strconv.ParseInt(cfg["maxmemory"], 10, 64)
	st.RunningInSync = maxErr == nil && maxmem == c.maxMemoryBytes() && sameFields(st.Bind, c.bindLine())

	st.AOFLastWriteOK = info["aof_last_write_status"] == "ok"
	st.RDBLastSaveOK = info["rdb_last_bgsave_status"] == "ok"
	st.Loading = info["loading"] == "1"
	st.UsedMemoryBytes, _ = strconv.ParseInt(info["used_memory"], 10, 64)
	st.MaxMemoryBytes, _ = strconv.ParseInt(info["maxmemory"], 10, 64)
	st.ConnectedClients, _ = strconv.Atoi(info["connected_clients"])
}

// sameFields compares two space-separated lists, ignoring spacing.
func sameFields(a, b string) bool {
	return strings.Join(strings.Fields(a), " ") == strings.Join(strings.Fields(b), " ")
}
