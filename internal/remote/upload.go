package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
)

// This file holds the transport-independent half of an atomic upload, shared
// by the Host implementations (package sshx, the Packer adapter): checking the
// request, inspecting the file on the host, deciding what to do, and fixing
// owner and mode. How the content travels (stdin of a command, a
// communicator's copy) stays with each transport.

// Upload is one upload being carried out: the File with the values derived
// from it that every step needs. Make it with NewUpload.
type Upload struct {
	File   File
	Mode   string // octal permission bits, as chmod takes them
	SHA256 string // hex sha256 of File.Content
	Step   string // "upload PATH", the step name in errors and commands
}

// NewUpload checks f (an absolute, clean path other than "/"; an owner and
// group chown accepts unambiguously) and prepares its upload. host names the
// host in errors.
func NewUpload(host string, f File) (*Upload, error) {
	p := f.Path
	if p == "" || p[0] != '/' || path.Clean(p) != p || p == "/" {
		return nil, fmt.Errorf("%s: upload: path %q must be absolute and clean", host, p)
	}
	for _, id := range []string{f.Owner, f.Group} {
		if strings.ContainsAny(id, ": \t\n") || strings.HasPrefix(id, "-") {
			return nil, fmt.Errorf("%s: upload %s: invalid owner/group %q", host, p, id)
		}
	}
	sum := sha256.Sum256(f.Content)
	return &Upload{File: f, Mode: ModeOctal(f.FileMode()), SHA256: hex.EncodeToString(sum[:]), Step: "upload " + p}, nil
}

// InspectCmd is the command inspecting the destination (run as root).
func (u *Upload) InspectCmd() Cmd {
	return Cmd{Command: InspectScript(u.File.Path), Desc: u.Step + " (inspect)"}
}

// FixCmd is the command giving the destination, whose content is already
// right, its owner, group and mode (run as root).
func (u *Upload) FixCmd() Cmd {
	return Cmd{Command: "set -e\n" + ChownChmod(u.File, u.Mode, Quote(u.File.Path)), Desc: u.Step + " (set owner/mode)"}
}

// Next parses the output of InspectCmd and decides what to do. Its errors
// name host and the step.
func (u *Upload) Next(host string, inspectOutput []byte) (UploadAction, error) {
	in, err := ParseInspection(inspectOutput)
	if err == nil {
		var a UploadAction
		if a, err = u.Decide(in); err == nil {
			return a, nil
		}
	}
	return UploadWrite, fmt.Errorf("%s: %s: %w", host, u.Step, err)
}

// Reconcile inspects the destination on h and, when only its owner, group or
// mode are wrong, fixes them. It returns what was needed: UploadNothing,
// UploadFixOwnerMode (done), or UploadWrite, the content being left to the
// caller's transport.
func (u *Upload) Reconcile(ctx context.Context, h Host) (UploadAction, error) {
	res, err := h.Run(ctx, u.InspectCmd())
	if err != nil {
		return UploadWrite, err
	}
	act, err := u.Next(h.Name(), res.Stdout)
	if err != nil {
		return UploadWrite, err
	}
	if act == UploadFixOwnerMode {
		if _, err := h.Run(ctx, u.FixCmd()); err != nil {
			return UploadWrite, err
		}
	}
	return act, nil
}

// InspectScript is a shell script printing the state of the file at p:
// "missing", "notfile" (something else than a regular file, or a symbolic
// link to one) or "present SHA256 MODE UID GID USER GROUP".
func InspectScript(p string) string {
	return `p=` + Quote(p) + `
if [ -e "$p" ] || [ -L "$p" ]; then
  if [ ! -f "$p" ]; then echo notfile; exit 0; fi
  h=$(sha256sum < "$p") || exit 1
  s=$(stat -L -c '%a %u %g %U %G' -- "$p") || exit 1
  echo "present ${h%% *} $s"
else
  echo missing
fi`
}

// FileState is what InspectScript found at a path.
type FileState int

// The states InspectScript reports.
const (
	FileMissing FileState = iota + 1 // nothing there
	FileNotFile                      // something else than a regular file
	FilePresent                      // a regular file
)

// Inspection is the parsed output of InspectScript. The other fields are set
// for FilePresent only.
type Inspection struct {
	State       FileState
	SHA256      string // hex
	Mode        string // octal, as stat %a prints it
	UID, GID    string
	User, Group string // names (or the ids, when the host has no name for them)
}

// ParseInspection parses the output of InspectScript.
func ParseInspection(out []byte) (Inspection, error) {
	st := strings.Fields(string(out))
	switch {
	case len(st) == 1 && st[0] == "missing":
		return Inspection{State: FileMissing}, nil
	case len(st) == 1 && st[0] == "notfile":
		return Inspection{State: FileNotFile}, nil
	case len(st) == 7 && st[0] == "present":
		return Inspection{State: FilePresent, SHA256: st[1], Mode: st[2], UID: st[3], GID: st[4], User: st[5], Group: st[6]}, nil
	}
	return Inspection{}, fmt.Errorf("unexpected output from inspection: %q", ShortCommand(string(out)))
}

// UploadAction is what an upload has to do, given the destination's state.
type UploadAction int

// The actions Upload.Decide returns.
const (
	UploadWrite        UploadAction = iota // write the content (and owner and mode)
	UploadNothing                          // the file is as wanted
	UploadFixOwnerMode                     // the content is right; set owner, group and mode
)

// ErrNotRegularFile is Decide's answer for a destination that is not a
// regular file: an upload does not replace it.
var ErrNotRegularFile = errors.New("exists and is not a regular file")

// Decide says what to do given the destination's state: nothing when content,
// mode, owner and group (compared by id or name; empty means any) are as
// wanted; set owner and mode when only they differ; write otherwise.
func (u *Upload) Decide(in Inspection) (UploadAction, error) {
	switch in.State {
	case FileMissing:
		return UploadWrite, nil
	case FileNotFile:
		return UploadWrite, ErrNotRegularFile
	case FilePresent:
	default:
		return UploadWrite, fmt.Errorf("unknown file state %d", in.State)
	}
	if in.SHA256 != u.SHA256 {
		return UploadWrite, nil
	}
	same := func(want, id, name string) bool { return want == "" || want == id || want == name }
	if in.Mode == u.Mode && same(u.File.Owner, in.UID, in.User) && same(u.File.Group, in.GID, in.Group) {
		return UploadNothing, nil
	}
	return UploadFixOwnerMode, nil
}

// ChownChmod returns shell lines setting owner, group (those of f that are
// set) and mode of the file named by quoted, a shell word (owner first: chown
// clears setuid bits). The caller adds "set -e" or equivalent.
func ChownChmod(f File, mode, quoted string) string {
	var b strings.Builder
	switch {
	case f.Owner != "" && f.Group != "":
		b.WriteString("chown " + Quote(f.Owner+":"+f.Group) + " -- " + quoted + "\n")
	case f.Owner != "":
		b.WriteString("chown " + Quote(f.Owner) + " -- " + quoted + "\n")
	case f.Group != "":
		b.WriteString("chgrp " + Quote(f.Group) + " -- " + quoted + "\n")
	}
	b.WriteString("chmod " + mode + " -- " + quoted + "\n")
	return b.String()
}

// MkdirScript returns shell lines for the destination's directory, in shell
// variable d: created (mode 0755) when f.MkdirParents, else its absence is an
// error (exit 3).
func MkdirScript(f File) string {
	if f.MkdirParents {
		return "if [ ! -d \"$d\" ]; then umask 022; mkdir -p -- \"$d\"; fi\n"
	}
	return "if [ ! -d \"$d\" ]; then echo \"mohd: parent directory $d does not exist\" >&2; exit 3; fi\n"
}

// Drift compares f with the file on h by checksum, mode and owner, without reading its content back (a
// file holding a secret stays on the host): "" when identical, else what differs, in words.
func Drift(ctx context.Context, h Host, f File) (string, error) {
	u, err := NewUpload(h.Name(), f)
	if err != nil {
		return "", err
	}
	res, err := h.Run(ctx, u.InspectCmd())
	if err != nil {
		return "", err
	}
	in, err := ParseInspection(res.Stdout)
	if err != nil {
		return "", fmt.Errorf("%s: inspecting %s: %w", h.Name(), f.Path, err)
	}
	switch in.State {
	case FileMissing:
		return f.Path + " is missing", nil
	case FileNotFile:
		return f.Path + " is not a regular file", nil
	}
	act, err := u.Decide(in)
	switch {
	case err != nil:
		return "", fmt.Errorf("%s: inspecting %s: %w", h.Name(), f.Path, err)
	case act == UploadWrite:
		return f.Path + " was changed (its content differs from what MOHD writes)", nil
	case act == UploadFixOwnerMode:
		return fmt.Sprintf("%s has mode %s owner %s:%s, want %s %s:%s", f.Path, in.Mode, in.User, in.Group, u.Mode, f.Owner, f.Group), nil
	}
	return "", nil
}
