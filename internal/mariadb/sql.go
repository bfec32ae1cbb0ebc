package mariadb

import (
	"crypto/sha1" //nolint:gosec // mysql_native_password is SHA1(SHA1(password)) by definition
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// quoteIdent quotes a name (database, user, host) with backticks. Inside backticks nothing is an escape
// character whatever the sql_mode: only the backtick itself is doubled.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// quoteString quotes s as a string literal for a session whose sql_mode lacks NO_BACKSLASH_ESCAPES (every
// script of this package starts with sessionMode, which makes sure of it).
func quoteString(s string) string {
	return "'" + escapeString(s) + "'"
}

// escapeString is the inside of quoteString's literal. Its result is a secret too when s is one: the client
// may echo a failing statement, so callers list both forms in Cmd.Secrets (see secretForms).
func escapeString(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 0x1a:
			b.WriteString(`\Z`)
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// account is 'user'@'host' for account statements (CREATE USER, GRANT...).
func account(user, host string) string { return quoteIdent(user) + "@" + quoteIdent(host) }

// grantee is how information_schema's privilege tables spell an account: 'user'@'host'.
func grantee(user, host string) string { return "'" + user + "'@'" + host + "'" }

// grantDB is a database name as GRANT ... ON <db>.* reads it: '_' and '%' are wildcards there, so they are
// escaped, or the grant would also cover moodleXdb for a database named moodle_db.
func grantDB(db string) string {
	r := strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`)
	return r.Replace(db)
}

// sessionMode starts every script this package sends: quoteString's backslash escapes must mean what they
// say even where an operator's option file adds NO_BACKSLASH_ESCAPES to the server's sql_mode.
const sessionMode = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION';\n"

// NativePasswordHash is what mysql_native_password stores for password ("*" and the upper-case hex of
// SHA1(SHA1(password))): accounts are created and compared with it, so the password itself never reaches
// the server's binary log, and a password change is detected without logging in. The hash is a secret too.
func NativePasswordHash(password string) string {
	a := sha1.Sum([]byte(password)) //nolint:gosec // the server's own scheme
	b := sha1.Sum(a[:])             //nolint:gosec // the server's own scheme
	return "*" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// secretForms are the spellings of each secret that may show up in an error: as given, and as escaped
// inside an SQL literal (the mariadb client echoes a failing statement).
func secretForms(secrets ...string) []string {
	var out []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		out = append(out, s)
		if e := escapeString(s); e != s {
			out = append(out, e)
		}
	}
	return out
}

var (
	userRe = regexp.MustCompile(`^[A-Za-z0-9_.$-]{1,80}$`)
	dbRe   = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	// Account hosts: an address, a pattern with % and _ ("172.30.5.%"), a network with its mask
	// ("10.20.0.0/255.255.255.0") or a name. The server runs with skip-name-resolve, so names other than
	// localhost never match a client; they are accepted for completeness.
	hostRe = regexp.MustCompile(`^[A-Za-z0-9.%_:/-]{1,255}$`)
	// MASTER_HOST: an address or a DNS name the replica resolves.
	addrRe = regexp.MustCompile(`^[A-Za-z0-9.:-]{1,255}$`)
)

// reservedUsers are accounts the db role owns: an app or replication account must not take them over.
var reservedUsers = []string{"root", "prometheus", "mariadb.sys", "mysql", "debian-sys-maint"}

// validate checks an account; what names the account in messages ("the application account").
func (a Account) validate(what string, needHosts bool) error {
	if !userRe.MatchString(a.User) {
		return fmt.Errorf("%s: user name %q: use 1-80 letters, digits, '_', '.', '$' or '-'", what, a.User)
	}
	if slices.Contains(reservedUsers, strings.ToLower(a.User)) {
		return fmt.Errorf("%s: user name %q is reserved for the server's own accounts: choose another", what, a.User)
	}
	if err := validatePassword(what, a.Password); err != nil {
		return err
	}
	if needHosts && len(a.Hosts) == 0 {
		return fmt.Errorf("%s %q: no host to accept connections from: list at least one address or pattern", what, a.User)
	}
	seen := map[string]bool{}
	for _, h := range a.Hosts {
		if !hostRe.MatchString(h) {
			return fmt.Errorf("%s %q: host %q: use an address, a pattern such as 172.30.5.%% or a network such as 10.20.0.0/255.255.255.0", what, a.User, h)
		}
		if seen[strings.ToLower(h)] {
			return fmt.Errorf("%s %q: host %q is listed twice", what, a.User, h)
		}
		seen[strings.ToLower(h)] = true
	}
	return nil
}

// hosts returns the account's hosts as the server stores them (lower case), sorted.
func (a Account) hosts() []string {
	out := make([]string, len(a.Hosts))
	for i, h := range a.Hosts {
		out[i] = strings.ToLower(h)
	}
	slices.Sort(out)
	return out
}

// validatePassword: the replication password is stored in the replica's master.info, one line, at most 96
// bytes; the same limits keep both accounts simple.
func validatePassword(what, pw string) error {
	switch {
	case pw == "":
		return fmt.Errorf("%s: the password is empty", what)
	case len(pw) > 96:
		return fmt.Errorf("%s: the password is longer than 96 bytes (MariaDB's limit for a replication password)", what)
	case !utf8.ValidString(pw):
		return fmt.Errorf("%s: the password is not valid UTF-8", what)
	case strings.ContainsAny(pw, "\x00\r\n"):
		return fmt.Errorf("%s: the password contains a line break or NUL character", what)
	}
	return nil
}

func validateIP(what, addr string) error {
	if _, err := netip.ParseAddr(addr); err != nil {
		return fmt.Errorf("%s %q is not an IP address", what, addr)
	}
	return nil
}

func validateAddress(what, addr string) error {
	if !addrRe.MatchString(addr) {
		return fmt.Errorf("%s %q is neither an IP address nor a DNS name", what, addr)
	}
	return nil
}

func validatePort(what string, port int) error {
	if port < 0 || port > 65535 {
		return fmt.Errorf("%s %d is not a TCP port", what, port)
	}
	return nil
}

// errNotRunning: the server is down where it must answer.
var errNotRunning = errors.New("MariaDB is not running")
