package moodle

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Site is what SiteConfig says: the same on every web node of a site.
type Site struct {
	// WWWRoot is the site's address, as users type it: "https://moodle.example.edu" (no trailing slash).
	WWWRoot string
	DB      DB
	Redis   Redis
	// SSLProxy: TLS ends at the front ends, which talk HTTP to the web nodes ($CFG->sslproxy). WWWRoot
	// must then be https.
	SSLProxy bool
	// TrustedProxies are the front ends' addresses or networks. Apache's mod_remoteip (role web) already
	// gives PHP the client's address, trusting X-Forwarded-For from the cluster network only; Moodle is
	// told to use that address and never the headers (getremoteaddrconf), and these are written as
	// $CFG->reverseproxyignore for the record.
	TrustedProxies []string
	// LogLifetimeDays is how long the standard log keeps events (logstore_standard's loglifetime, forced
	// in config.php; 0 keeps them forever, Moodle's default).
	LogLifetimeDays int
	// Settings are extra config.php settings: "name" sets $CFG->name (a core setting, see KnownSetting),
	// "component/name" forces a plugin setting ($CFG->forced_plugin_settings). Values "true"/"false"
	// become booleans, plain integers become integers, anything else a string.
	Settings map[string]string
}

// DB is the MariaDB database.
type DB struct {
	Host string
	// Port defaults to 3306.
	Port     int
	Name     string
	User     string
	Password string
	// Prefix of every table, default "mdl_".
	Prefix string
	// ReadReplicas receive read-only queries ("host" or "host:port"); Moodle keeps writes, locks and
	// sessions on the primary and falls back to it when no replica answers within 2 s.
	ReadReplicas []string
}

// Redis holds the sessions.
type Redis struct {
	Host string
	// Port defaults to 6379.
	Port     int
	Password string
	// Database is the Redis database number (0-15 with Redis's default of 16 databases).
	Database int
	// Prefix of the session keys (none by default, as in Moodle).
	Prefix string
	// LockTimeout is how long a request waits for its session's lock, in seconds (default 120, Moodle's).
	LockTimeout int
	// LockExpire is how long a session lock lives when its holder dies, in seconds (default 7200).
	LockExpire int
	// LockRetry is the wait between attempts to take a session lock, in milliseconds (0: Moodle's 100).
	LockRetry int
}

// Defaults.
const (
	DefaultDBPort      = 3306
	DefaultDBPrefix    = "mdl_"
	DefaultRedisPort   = 6379
	DefaultLockTimeout = 120
	DefaultLockExpire  = 7200
)

// WithDefaults returns s with its defaults filled in.
func (s Site) WithDefaults() Site {
	if s.DB.Port == 0 {
		s.DB.Port = DefaultDBPort
	}
	if s.DB.Prefix == "" {
		s.DB.Prefix = DefaultDBPrefix
	}
	if s.Redis.Port == 0 {
		s.Redis.Port = DefaultRedisPort
	}
	if s.Redis.LockTimeout == 0 {
		s.Redis.LockTimeout = DefaultLockTimeout
	}
	if s.Redis.LockExpire == 0 {
		s.Redis.LockExpire = DefaultLockExpire
	}
	return s
}

var (
	dbNameRe      = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	dbPrefixRe    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,9}$`)
	redisPrefixRe = regexp.MustCompile(`^[A-Za-z0-9_.:-]{0,64}$`)
	hostRe        = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
)

// Validate checks s (after WithDefaults) and says which field is wrong and why.
func (s Site) Validate() error {
	s = s.WithDefaults()
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if err := validateWWWRoot(s.WWWRoot, s.SSLProxy); err != nil {
		errs = append(errs, err)
	}

	if err := validHost(s.DB.Host); err != nil {
		add("db host: %v", err)
	}
	if s.DB.Port < 1 || s.DB.Port > 65535 {
		add("db port %d: must be 1-65535", s.DB.Port)
	}
	if !dbNameRe.MatchString(s.DB.Name) {
		add("db name %q: 1-64 letters, digits and underscores", s.DB.Name)
	}
	if s.DB.User == "" || len(s.DB.User) > 80 || strings.ContainsAny(s.DB.User, "'\"`\\ \t\n") {
		add("db user %q: 1-80 characters, no quotes, backslashes or spaces", s.DB.User)
	}
	if s.DB.Password == "" {
		add("db password: must not be empty")
	}
	if !dbPrefixRe.MatchString(s.DB.Prefix) {
		add("db prefix %q: a lowercase letter, then up to 9 lowercase letters, digits or underscores (Moodle's table names must stay short)", s.DB.Prefix)
	}
	seen := map[string]bool{}
	for _, r := range s.DB.ReadReplicas {
		host, port, err := splitHostPort(r)
		switch {
		case err != nil:
			add("db read replica %q: %v", r, err)
		case port != 0 && (port < 1 || port > 65535):
			add("db read replica %q: port must be 1-65535", r)
		case seen[host+":"+strconv.Itoa(port)]:
			add("db read replica %q is listed twice", r)
		}
		seen[host+":"+strconv.Itoa(port)] = true
	}

	if err := validHost(s.Redis.Host); err != nil {
		add("redis host: %v", err)
	}
	if s.Redis.Port < 1 || s.Redis.Port > 65535 {
		add("redis port %d: must be 1-65535", s.Redis.Port)
	}
	if s.Redis.Database < 0 || s.Redis.Database > 15 {
		add("redis database %d: must be 0-15 (Redis has 16 databases)", s.Redis.Database)
	}
	if !redisPrefixRe.MatchString(s.Redis.Prefix) {
		add("redis prefix %q: up to 64 letters, digits, '_', '.', ':' or '-'", s.Redis.Prefix)
	}
	if s.Redis.LockTimeout < 1 || s.Redis.LockTimeout > 3600 {
		add("redis lock timeout %d s: must be 1-3600", s.Redis.LockTimeout)
	}
	if s.Redis.LockExpire < 1 || s.Redis.LockExpire > 86400 {
		add("redis lock expire %d s: must be 1-86400", s.Redis.LockExpire)
	}
	if s.Redis.LockRetry < 0 || s.Redis.LockRetry > 10000 {
		add("redis lock retry %d ms: must be 0-10000 (0: Moodle's 100)", s.Redis.LockRetry)
	}

	for _, p := range s.TrustedProxies {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				add("trusted proxy %q: not an IP address or a network (CIDR)", p)
			}
		}
	}
	if s.LogLifetimeDays < 0 || s.LogLifetimeDays > 36500 {
		add("log lifetime %d days: must be 0 (keep forever) to 36500", s.LogLifetimeDays)
	}
	for _, name := range sortedKeys(s.Settings) {
		if err := KnownSetting(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func validateWWWRoot(w string, sslProxy bool) error {
	u, err := url.Parse(w)
	if err != nil || w == "" {
		return fmt.Errorf("wwwroot %q: not a URL", w)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("wwwroot %q: must start with http:// or https://", w)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("wwwroot %q: has no host name", w)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Contains(w, "#") || strings.Contains(w, "?"):
		return fmt.Errorf("wwwroot %q: must not hold a user, a query or a fragment", w)
	case strings.HasSuffix(w, "/"):
		return fmt.Errorf("wwwroot %q: must not end with a slash (Moodle appends paths to it)", w)
	case strings.ContainsAny(w, " \t\n'\"\\"):
		return fmt.Errorf("wwwroot %q: must not contain spaces, quotes or backslashes", w)
	case sslProxy && u.Scheme != "https":
		return fmt.Errorf("wwwroot %q: with TLS ended at the front ends (sslproxy) the site's address must be https://", w)
	}
	return nil
}

// validHost accepts a host name or an IP address.
func validHost(h string) error {
	if h == "" {
		return errors.New("must not be empty")
	}
	if net.ParseIP(h) != nil {
		return nil
	}
	if len(h) > 253 || !hostRe.MatchString(h) {
		return fmt.Errorf("%q is not a host name or an IP address", h)
	}
	return nil
}

// splitHostPort parses "host", "host:port", "[v6]" or "[v6]:port" (port 0: none given).
func splitHostPort(s string) (string, int, error) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		port, err := strconv.Atoi(p)
		if err != nil {
			return "", 0, fmt.Errorf("port %q is not a number", p)
		}
		if port == 0 {
			return "", 0, errors.New("port must be 1-65535")
		}
		return h, port, validHost(h)
	}
	h := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	return h, 0, validHost(h)
}
