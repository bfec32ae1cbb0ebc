package mariadb

import (
	"context"
	"fmt"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// Socket is where the db role's MariaDB listens locally.
const Socket = "/run/mysqld/mysqld.sock"

// clientCommand runs the mariadb client as root over the socket (unix_socket authentication: root needs no
// password) on the SQL script given on stdin, so that no statement, secret or not, is ever on a command
// line. --no-defaults: a ~/.my.cnf of the login user (sudo may keep HOME) cannot change who we are.
//
// The client prints a failing statement on stderr before the error, in batch mode too; that statement may
// hold a password, and Cmd.Secrets cannot hide a fragment of it, so the echo (the lines between two lines
// of dashes) is dropped there. The error line itself stays.
func clientCommand(extra string) string {
	return `exec 4>&1
rc=$({ { mariadb --no-defaults --protocol=socket --socket=` + Socket + ` --user=root --default-character-set=utf8mb4 ` + extra + `; echo $? >&3; } 2>&1 >&4 4>&- | awk '/^-+$/ {skip = !skip; next} !skip' >&2; } 3>&1)
exit "$rc"`
}

var (
	batchCommand = clientCommand("--batch --skip-column-names")
	xmlCommand   = clientCommand("--xml")
)

// runSQL runs script as root. Secrets (and their escaped spellings) are redacted from errors and logs.
func runSQL(ctx context.Context, h remote.Host, desc, script string, secrets ...string) error {
	_, err := h.Run(ctx, remote.Cmd{Command: batchCommand, Stdin: []byte(script), Desc: desc, Secrets: secretForms(secrets...)})
	return err
}

// querySQL runs script as root and returns the rows of all its result sets, with column names.
func querySQL(ctx context.Context, h remote.Host, desc, script string, secrets ...string) ([]resultRow, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: xmlCommand, Stdin: []byte(script), Desc: desc, Secrets: secretForms(secrets...)})
	if err != nil {
		return nil, err
	}
	rows, err := parseXML(res.Stdout)
	if err != nil {
		// The output is not quoted: it may hold whatever the query selected.
		return nil, fmt.Errorf("%s: step %q: reading the mariadb client's XML output: %w", h.Name(), desc, err)
	}
	return rows, nil
}

// Exec runs sql (one or more statements separated by ';') on h as MariaDB's root over the local socket.
// The statements travel on the client's standard input, never on a command line; list in secrets every
// password or key they contain so that errors and logs hide them. The first failing statement stops the
// script and is reported with the server's error message.
func Exec(ctx context.Context, h remote.Host, sql string, secrets ...string) error {
	return runSQL(ctx, h, "run SQL as root", sql, secrets...)
}

// Query runs sql on h like Exec and returns the rows of its result sets, in order (the rows of several
// SELECTs are concatenated). Values are exactly what the server sent: tabs, line breaks and backslashes
// included; NULL reads as the empty string (QueryNullable tells them apart).
func Query(ctx context.Context, h remote.Host, sql string, secrets ...string) ([][]string, error) {
	rows, err := querySQL(ctx, h, "query as root", sql, secrets...)
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = make([]string, len(r))
		for j, c := range r {
			out[i][j] = c.String()
		}
	}
	return out, nil
}

// QueryNullable is Query with NULL as a nil pointer.
func QueryNullable(ctx context.Context, h remote.Host, sql string, secrets ...string) ([][]*string, error) {
	rows, err := querySQL(ctx, h, "query as root", sql, secrets...)
	if err != nil {
		return nil, err
	}
	out := make([][]*string, len(rows))
	for i, r := range rows {
		out[i] = make([]*string, len(r))
		for j, c := range r {
			if !c.Null {
				v := c.Value
				out[i][j] = &v
			}
		}
	}
	return out, nil
}

// resultColumn is one value of a row.
type resultColumn struct {
	Name  string
	Value string
	Null  bool
}

func (c resultColumn) String() string { return c.Value }

// resultRow is one row of a result set.
type resultRow []resultColumn

// Get returns the value of the column named name ("" when absent or NULL).
func (r resultRow) Get(name string) string {
	for _, c := range r {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// IsNull reports whether the column named name is NULL or absent.
func (r resultRow) IsNull(name string) bool {
	for _, c := range r {
		if c.Name == name {
			return c.Null
		}
	}
	return true
}

// parseXML reads the mariadb client's --xml output. Its format is fixed and every '<' inside a value, a
// column name or the echoed statement is written as &lt;, so the markup can be found by its literal tags:
//
//	<resultset statement="..." xmlns:xsi="..."><row><field name="a">1</field><field name="b" xsi:nil="true" /></row></resultset>
//
// A general XML decoder would not do: values keep carriage returns and control characters as they are,
// which XML forbids or normalizes. (NUL is written as the two characters \0: the one ambiguity left.)
func parseXML(out []byte) ([]resultRow, error) {
	s := string(out)
	var rows []resultRow
	for {
		i := strings.Index(s, "<row>")
		if i < 0 {
			return rows, nil
		}
		s = s[i+len("<row>"):]
		end := strings.Index(s, "</row>")
		if end < 0 {
			return nil, fmt.Errorf("a row is not closed (output truncated?)")
		}
		body := s[:end]
		s = s[end+len("</row>"):]
		var row resultRow
		for {
			j := strings.Index(body, `<field name="`)
			if j < 0 {
				break
			}
			body = body[j+len(`<field name="`):]
			q := strings.IndexByte(body, '"')
			if q < 0 {
				return nil, fmt.Errorf("a column name is not closed")
			}
			col := resultColumn{Name: unescapeXML(body[:q])}
			body = body[q+1:]
			switch {
			case strings.HasPrefix(body, ` xsi:nil="true" />`):
				col.Null = true
				body = body[len(` xsi:nil="true" />`):]
			case strings.HasPrefix(body, ">"):
				e := strings.Index(body, "</field>")
				if e < 0 {
					return nil, fmt.Errorf("column %q is not closed", col.Name)
				}
				col.Value = unescapeXML(body[1:e])
				body = body[e+len("</field>"):]
			default:
				return nil, fmt.Errorf("column %q: unexpected markup", col.Name)
			}
			row = append(row, col)
		}
		rows = append(rows, row)
	}
}

var xmlUnescaper = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", `"`, "&amp;", "&")

func unescapeXML(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return xmlUnescaper.Replace(s)
}

// queryValue runs a query expected to return one row of one column (or none: "").
func queryValue(ctx context.Context, h remote.Host, desc, script string, secrets ...string) (string, error) {
	rows, err := querySQL(ctx, h, desc, script, secrets...)
	if err != nil || len(rows) == 0 || len(rows[0]) == 0 {
		return "", err
	}
	return rows[0][0].Value, nil
}

// showGlobals reads server variables (SHOW GLOBAL VARIABLES) or status (SHOW GLOBAL STATUS) by name, lower case.
func showGlobals(ctx context.Context, h remote.Host, what string, names ...string) (map[string]string, error) {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = quoteString(n)
	}
	rows, err := querySQL(ctx, h, "read server "+strings.ToLower(what),
		sessionMode+"SHOW GLOBAL "+what+" WHERE Variable_name IN ("+strings.Join(quoted, ", ")+")")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range rows {
		out[strings.ToLower(r.Get("Variable_name"))] = r.Get("Value")
	}
	return out, nil
}
