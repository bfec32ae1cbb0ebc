package mariadb

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mohd-dev/mohd/internal/remote"
)

func TestQuoting(t *testing.T) {
	for _, tc := range []struct{ in, ident, str string }{
		{"moodle", "`moodle`", "'moodle'"},
		{"we`ird", "`we``ird`", "'we`ird'"},
		{`it's`, "`it's`", `'it\'s'`},
		{`back\slash`, "`back\\slash`", `'back\\slash'`},
		{"nul\x00nl\ncr\rz\x1a", "`nul\x00nl\ncr\rz\x1a`", `'nul\0nl\ncr\rz\Z'`},
		{`'; DROP DATABASE moodle; --`, "`'; DROP DATABASE moodle; --`", `'\'; DROP DATABASE moodle; --'`},
	} {
		if got := quoteIdent(tc.in); got != tc.ident {
			t.Errorf("quoteIdent(%q) = %s, want %s", tc.in, got, tc.ident)
		}
		if got := quoteString(tc.in); got != tc.str {
			t.Errorf("quoteString(%q) = %s, want %s", tc.in, got, tc.str)
		}
	}
	if got := account("moodle", "172.30.5.%"); got != "`moodle`@`172.30.5.%`" {
		t.Errorf("account: %s", got)
	}
	if got := grantee("moodle", "10.0.0.0/255.255.255.0"); got != "'moodle'@'10.0.0.0/255.255.255.0'" {
		t.Errorf("grantee: %s", got)
	}
	// '_' is a wildcard in a grant's database name: escaped, so moodle_db does not also cover moodleXdb.
	if got := quoteIdent(grantDB("moodle_db")); got != "`moodle\\_db`" {
		t.Errorf("grantDB: %s", got)
	}
}

func TestNativePasswordHash(t *testing.T) {
	// Values printed by MariaDB 10.11's PASSWORD() for the same passwords.
	for pw, want := range map[string]string{
		"pw":       "*D821809F681A40A6E379B50D0463EFAE20BDD122",
		"password": "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19",
	} {
		if got := NativePasswordHash(pw); got != want {
			t.Errorf("NativePasswordHash(%q) = %s, want %s", pw, got, want)
		}
	}
}

func TestSecretForms(t *testing.T) {
	got := secretForms(`a'b\c`, "", "plain")
	want := []string{`a'b\c`, `a\'b\\c`, "plain"}
	if !slices.Equal(got, want) {
		t.Errorf("secretForms = %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	good := PrimaryConfig{
		BindAddress: "172.30.5.10", Database: "moodle",
		App:         Account{User: "moodle", Password: "s3cret", Hosts: []string{"172.30.5.%"}},
		Replication: Account{User: "repl", Password: "r3pl", Hosts: []string{"172.30.5.0/255.255.255.0"}},
		SemiSync:    true,
	}
	if err := good.validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for name, mod := range map[string]func(*PrimaryConfig){
		"bind is a name":        func(c *PrimaryConfig) { c.BindAddress = "db1" },
		"database with a quote": func(c *PrimaryConfig) { c.Database = "moo`dle" },
		"empty password":        func(c *PrimaryConfig) { c.App.Password = "" },
		"password with newline": func(c *PrimaryConfig) { c.Replication.Password = "a\nb" },
		"password too long":     func(c *PrimaryConfig) { c.Replication.Password = strings.Repeat("x", 97) },
		"no hosts":              func(c *PrimaryConfig) { c.App.Hosts = nil },
		"host with a quote":     func(c *PrimaryConfig) { c.App.Hosts = []string{"10.0.0.1'"} },
		"duplicate host":        func(c *PrimaryConfig) { c.App.Hosts = []string{"10.0.0.1", "10.0.0.1"} },
		"root account":          func(c *PrimaryConfig) { c.App.User = "root" },
		"same user":             func(c *PrimaryConfig) { c.Replication.User = "moodle" },
		"user with space":       func(c *PrimaryConfig) { c.App.User = "moo dle" },
	} {
		c := good
		c.App.Hosts = slices.Clone(good.App.Hosts)
		mod(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseXML(t *testing.T) {
	// Real output of `mariadb --xml` (10.11): two result sets, NULL, a tab, a newline, a carriage return, a
	// control character, markup characters and a backslash in values.
	out := "<?xml version=\"1.0\"?>\n\n<resultset statement=\"SELECT 1 AS a, NULL AS b, 'x\ty\nz\\\\w' AS c, '&lt;row&gt;&amp;&quot;x\r\x01' AS `a&lt;b`\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n" +
		"  <row>\n\t<field name=\"a\">1</field>\n\t<field name=\"b\" xsi:nil=\"true\" />\n\t<field name=\"c\">x\ty\nz\\w</field>\n\t<field name=\"a&lt;b\">&lt;row&gt;&amp;&quot;x\r\x01</field>\n  </row>\n</resultset>\n" +
		"<?xml version=\"1.0\"?>\n\n<resultset statement=\"SHOW SLAVE STATUS\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"></resultset>\n" +
		"<?xml version=\"1.0\"?>\n\n<resultset statement=\"SELECT 'NULL' AS d, '' AS e\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n  <row>\n\t<field name=\"d\">NULL</field>\n\t<field name=\"e\"></field>\n  </row>\n</resultset>\n"
	rows, err := parseXML([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || len(rows[0]) != 4 || len(rows[1]) != 2 {
		t.Fatalf("rows: %#v", rows)
	}
	want := resultRow{{Name: "a", Value: "1"}, {Name: "b", Null: true}, {Name: "c", Value: "x\ty\nz\\w"}, {Name: "a<b", Value: "<row>&\"x\r\x01"}}
	if !slices.Equal(rows[0], want) {
		t.Errorf("row 0 = %#v\nwant %#v", rows[0], want)
	}
	if rows[1].Get("d") != "NULL" || rows[1].IsNull("d") || rows[1].IsNull("e") || rows[1].Get("e") != "" {
		t.Errorf("the string 'NULL' and '' must not read as NULL: %#v", rows[1])
	}
	if _, err := parseXML([]byte("<row><field name=\"a\">1</field>")); err == nil {
		t.Error("a truncated row was accepted")
	}
}

func TestQuerySendsSQLOnStdin(t *testing.T) {
	f := newFakeDB("root@db1:22")
	f.answerXML("registry", row("k", "a", "v", nil), row("k", "b", "v", "x\ty"))
	ctx := context.Background()
	rows, err := Query(ctx, f, "SELECT k, v FROM mohd.registry WHERE secret = 'p4ss'", "p4ss")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0][0] != "a" || rows[0][1] != "" || rows[1][1] != "x\ty" {
		t.Errorf("Query rows: %q", rows)
	}
	nrows, err := QueryNullable(ctx, f, "SELECT k, v FROM mohd.registry")
	if err != nil {
		t.Fatal(err)
	}
	if nrows[0][1] != nil || nrows[1][1] == nil || *nrows[1][1] != "x\ty" {
		t.Errorf("QueryNullable: %v", nrows)
	}
	if err := Exec(ctx, f, "INSERT INTO mohd.registry VALUES ('c', 'it''s')"); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if len(calls) != 3 {
		t.Fatalf("%d calls", len(calls))
	}
	for _, c := range calls {
		if strings.Contains(c.Command, "registry") || strings.Contains(c.Command, "p4ss") {
			t.Errorf("SQL on the command line: %s", c.Command)
		}
		if !strings.Contains(string(c.Stdin), "registry") {
			t.Errorf("SQL not on stdin: %q", c.Stdin)
		}
	}
	if !slices.Contains(calls[0].Secrets, "p4ss") {
		t.Errorf("secret not listed: %q", calls[0].Secrets)
	}
}

func TestClientErrorIsRedacted(t *testing.T) {
	f := remote.NewFake("root@db1:22")
	// What the client prints when a statement fails (after the wrapper dropped its echo of the statement).
	f.On(`mariadb --no-defaults`, remote.Result{ExitCode: 1, Stderr: []byte(`ERROR 1045 (28000) at line 2: near 'pa\'ss'`)})
	err := Exec(context.Background(), f, "CHANGE MASTER TO MASTER_PASSWORD = 'pa\\'ss'", "pa'ss")
	if err == nil || strings.Contains(err.Error(), `pa\'ss`) || strings.Contains(err.Error(), "pa'ss") {
		t.Errorf("the escaped password shows in the error: %v", err)
	}
}

func TestClientCommandDropsEchoedStatement(t *testing.T) {
	// The wrapper runs here with a stand-in for the mariadb client that behaves as the real one does when a
	// statement fails: rows on stdout, the statement echoed between lines of dashes and the error on
	// stderr, a non-zero exit status.
	dir := t.TempDir()
	fake := "#!/bin/sh\ncat >" + dir + "/stdin\necho row1\n" +
		"printf -- '--------------\\nCHANGE MASTER TO MASTER_PASSWORD = %s\\n--------------\\n\\n' \"'se\\\\'cret'\" >&2\n" +
		"echo 'ERROR 1227 (42000) at line 1: Access denied' >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(dir, "mariadb"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", clientCommand("--batch"))
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	cmd.Stdin = strings.NewReader("SELECT 1;\n")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exit status: %v, want the client's (3)", err)
	}
	if stdout.String() != "row1\n" {
		t.Errorf("stdout %q", stdout.String())
	}
	if strings.Contains(stderr.String(), "cret") || !strings.Contains(stderr.String(), "ERROR 1227 (42000) at line 1: Access denied") {
		t.Errorf("stderr %q: the echoed statement must go, the error stay", stderr.String())
	}
	if in, _ := os.ReadFile(filepath.Join(dir, "stdin")); string(in) != "SELECT 1;\n" {
		t.Errorf("the client read %q on stdin", in)
	}
}
