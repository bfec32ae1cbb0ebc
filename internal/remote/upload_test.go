package remote

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestNewUpload(t *testing.T) {
	u, err := NewUpload("h", File{Path: "/etc/x", Content: []byte("abc"), Mode: os.ModeSetuid | 0o750})
	if err != nil {
		t.Fatal(err)
	}
	if u.Mode != "4750" || u.Step != "upload /etc/x" ||
		u.SHA256 != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("NewUpload: %+v", u)
	}
	if u, _ := NewUpload("h", File{Path: "/x"}); u.Mode != "644" {
		t.Errorf("default mode %q", u.Mode)
	}
	for _, tc := range []struct {
		f    File
		want string
	}{
		{File{Path: ""}, `h: upload: path "" must be absolute and clean`},
		{File{Path: "etc/x"}, `h: upload: path "etc/x" must be absolute and clean`},
		{File{Path: "/etc/../x"}, `h: upload: path "/etc/../x" must be absolute and clean`},
		{File{Path: "/etc/x/"}, `h: upload: path "/etc/x/" must be absolute and clean`},
		{File{Path: "/"}, `h: upload: path "/" must be absolute and clean`},
		{File{Path: "/etc/x", Owner: "a:b"}, `h: upload /etc/x: invalid owner/group "a:b"`},
		{File{Path: "/etc/x", Owner: "a b"}, `h: upload /etc/x: invalid owner/group "a b"`},
		{File{Path: "/etc/x", Group: "-r"}, `h: upload /etc/x: invalid owner/group "-r"`},
		{File{Path: "/etc/x", Group: "g\n"}, `h: upload /etc/x: invalid owner/group "g\n"`},
	} {
		if _, err := NewUpload("h", tc.f); err == nil || err.Error() != tc.want {
			t.Errorf("NewUpload(%+v) = %v, want %q", tc.f, err, tc.want)
		}
	}
}

func TestParseInspection(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want Inspection
		err  string
	}{
		{out: "missing\n", want: Inspection{State: FileMissing}},
		{out: "  missing", want: Inspection{State: FileMissing}},
		{out: "notfile\n", want: Inspection{State: FileNotFile}},
		{out: "present abc 644 0 0 root root\n", want: Inspection{State: FilePresent, SHA256: "abc", Mode: "644", UID: "0", GID: "0", User: "root", Group: "root"}},
		{out: "present abc 4750 1000 33 1000 www-data\n", want: Inspection{State: FilePresent, SHA256: "abc", Mode: "4750", UID: "1000", GID: "33", User: "1000", Group: "www-data"}},
		{out: "", err: `unexpected output from inspection: ""`},
		{out: "what?\n", err: `unexpected output from inspection: "what?"`},
		{out: "missing notfile", err: "unexpected output from inspection"},
		{out: "present abc 644 0 0 root", err: "unexpected output from inspection"},
		{out: "present abc 644 0 0 root root extra", err: "unexpected output from inspection"},
		{out: "absent a b c d e f", err: "unexpected output from inspection"},
	} {
		got, err := ParseInspection([]byte(tc.out))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseInspection(%q) = %+v, %v; want error %q", tc.out, got, err, tc.err)
			}
		case err != nil || got != tc.want:
			t.Errorf("ParseInspection(%q) = %+v, %v; want %+v", tc.out, got, err, tc.want)
		}
	}
}

func TestDecide(t *testing.T) {
	u, err := NewUpload("h", File{Path: "/etc/x", Content: []byte("abc"), Mode: 0o640, Owner: "root", Group: "33"})
	if err != nil {
		t.Fatal(err)
	}
	anyOwner, err := NewUpload("h", File{Path: "/etc/x", Content: []byte("abc"), Mode: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	sum := u.SHA256
	present := func(sha, mode, uid, gid, user, group string) Inspection {
		return Inspection{State: FilePresent, SHA256: sha, Mode: mode, UID: uid, GID: gid, User: user, Group: group}
	}
	for _, tc := range []struct {
		name string
		u    *Upload
		in   Inspection
		want UploadAction
		err  error
	}{
		{"missing", u, Inspection{State: FileMissing}, UploadWrite, nil},
		{"not a file", u, Inspection{State: FileNotFile}, UploadWrite, ErrNotRegularFile},
		{"identical by name", u, present(sum, "640", "0", "33", "root", "www-data"), UploadNothing, nil},
		{"identical, group by id", u, present(sum, "640", "0", "33", "root", "33"), UploadNothing, nil},
		{"owner without name", u, present(sum, "640", "0", "33", "0", "33"), UploadFixOwnerMode, nil},
		{"owner by id", u, present(sum, "640", "root", "33", "x", "y"), UploadNothing, nil},
		{"any owner", anyOwner, present(sum, "640", "1000", "1000", "u", "u"), UploadNothing, nil},
		{"other mode", u, present(sum, "644", "0", "33", "root", "www-data"), UploadFixOwnerMode, nil},
		{"other owner", u, present(sum, "640", "1000", "33", "u", "www-data"), UploadFixOwnerMode, nil},
		{"other group", u, present(sum, "640", "0", "0", "root", "root"), UploadFixOwnerMode, nil},
		{"other content", u, present("0123", "640", "0", "33", "root", "www-data"), UploadWrite, nil},
		{"other content and owner", u, present("0123", "600", "1", "1", "a", "b"), UploadWrite, nil},
	} {
		got, err := tc.u.Decide(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s: Decide = %v, %v; want %v, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
	if _, err := u.Decide(Inspection{}); err == nil {
		t.Error("Decide accepted an unknown state")
	}
}

func TestNext(t *testing.T) {
	u, err := NewUpload("root@h:22", File{Path: "/etc/x", Content: []byte("abc")})
	if err != nil {
		t.Fatal(err)
	}
	if a, err := u.Next("root@h:22", []byte("present "+u.SHA256+" 644 0 0 root root\n")); a != UploadNothing || err != nil {
		t.Errorf("Next identical = %v, %v", a, err)
	}
	if a, err := u.Next("root@h:22", []byte("missing\n")); a != UploadWrite || err != nil {
		t.Errorf("Next missing = %v, %v", a, err)
	}
	_, err = u.Next("root@h:22", []byte("notfile\n"))
	if err == nil || err.Error() != "root@h:22: upload /etc/x: exists and is not a regular file" || !errors.Is(err, ErrNotRegularFile) {
		t.Errorf("Next notfile: %v", err)
	}
	_, err = u.Next("root@h:22", []byte("what?\n"))
	if err == nil || err.Error() != `root@h:22: upload /etc/x: unexpected output from inspection: "what?"` {
		t.Errorf("Next odd: %v", err)
	}
}

func TestUploadScripts(t *testing.T) {
	for _, tc := range []struct {
		f    File
		want string
	}{
		{File{Owner: "www-data", Group: "adm"}, "chown 'www-data:adm' -- \"$t\"\nchmod 640 -- \"$t\"\n"},
		{File{Owner: "root"}, "chown root -- \"$t\"\nchmod 640 -- \"$t\"\n"},
		{File{Group: "adm"}, "chgrp adm -- \"$t\"\nchmod 640 -- \"$t\"\n"},
		{File{}, "chmod 640 -- \"$t\"\n"},
	} {
		got := ChownChmod(tc.f, "640", `"$t"`)
		want := strings.ReplaceAll(tc.want, "'www-data:adm'", Quote("www-data:adm"))
		want = strings.ReplaceAll(want, "chown root", "chown "+Quote("root"))
		want = strings.ReplaceAll(want, "chgrp adm", "chgrp "+Quote("adm"))
		if got != want {
			t.Errorf("ChownChmod(%+v) = %q, want %q", tc.f, got, want)
		}
	}
	u, err := NewUpload("h", File{Path: "/etc/it's", Owner: "root"})
	if err != nil {
		t.Fatal(err)
	}
	fix := u.FixCmd()
	if fix.Desc != "upload /etc/it's (set owner/mode)" || fix.Command != "set -e\n"+ChownChmod(u.File, "644", Quote("/etc/it's")) {
		t.Errorf("FixCmd = %+v", fix)
	}
	in := u.InspectCmd()
	if in.Desc != "upload /etc/it's (inspect)" || !strings.HasPrefix(in.Command, "p="+Quote("/etc/it's")+"\n") || in.Command != InspectScript("/etc/it's") {
		t.Errorf("InspectCmd = %+v", in)
	}
	if s := MkdirScript(File{MkdirParents: true}); !strings.Contains(s, "mkdir -p") {
		t.Errorf("MkdirScript(parents) = %q", s)
	}
	if s := MkdirScript(File{}); !strings.Contains(s, "parent directory $d does not exist") || !strings.Contains(s, "exit 3") {
		t.Errorf("MkdirScript = %q", s)
	}
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	u, err := NewUpload("root@fake:22", File{Path: "/etc/x", Content: []byte("abc"), Owner: "root"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		out  string
		want UploadAction
		cmds int
	}{
		{"missing\n", UploadWrite, 1},
		{"present 0123 644 0 0 root root\n", UploadWrite, 1},
		{"present " + u.SHA256 + " 644 0 0 root root\n", UploadNothing, 1},
		{"present " + u.SHA256 + " 600 0 0 root root\n", UploadFixOwnerMode, 2},
	} {
		f := NewFake("")
		f.Strict = true
		f.On(`^p='?/etc/x`, Result{Stdout: []byte(tc.out)})
		f.On(`^set -e\nchown root -- '?/etc/x'?\nchmod 644 -- `, Result{})
		got, err := u.Reconcile(ctx, f)
		if got != tc.want || err != nil || len(f.Calls()) != tc.cmds {
			t.Errorf("%q: Reconcile = %v, %v after %d commands; want %v after %d", tc.out, got, err, len(f.Calls()), tc.want, tc.cmds)
		}
	}
	f := NewFake("")
	f.On(`^p=`, Result{Stdout: []byte("notfile\n")})
	if _, err := u.Reconcile(ctx, f); !errors.Is(err, ErrNotRegularFile) || !strings.HasPrefix(err.Error(), "root@fake:22: upload /etc/x: ") {
		t.Errorf("Reconcile notfile: %v", err)
	}
	f = NewFake("")
	f.On(`^p=`, Result{Stdout: []byte("present " + u.SHA256 + " 600 0 0 root root\n")})
	f.On(`^set -e`, Result{ExitCode: 1})
	var ee *ExitError
	if _, err := u.Reconcile(ctx, f); !errors.As(err, &ee) || ee.Step != "upload /etc/x (set owner/mode)" {
		t.Errorf("Reconcile failing fix: %v", err)
	}
}
