package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// Drift says in words what differs, from the host's inspection alone (the content is never read back).
func TestDrift(t *testing.T) {
	f := File{Path: "/etc/x.conf", Content: []byte("x\n"), Mode: 0o640, Owner: "root", Group: "redis"}
	sum := sha256.Sum256(f.Content)
	same := "present " + hex.EncodeToString(sum[:]) + " 640 0 101 root redis\n"
	for _, c := range []struct {
		inspection, want string
	}{
		{"missing\n", "/etc/x.conf is missing"},
		{"notfile\n", "/etc/x.conf is not a regular file"},
		{same, ""},
		{"present " + strings.Repeat("0", 64) + " 640 0 101 root redis\n", "/etc/x.conf was changed"},
		{"present " + hex.EncodeToString(sum[:]) + " 644 0 101 root redis\n", "/etc/x.conf has mode 644 owner root:redis, want 640 root:redis"},
	} {
		h := NewFake("")
		h.On(`sha256sum`, Result{Stdout: []byte(c.inspection)})
		d, err := Drift(context.Background(), h, f)
		if err != nil || (c.want == "" && d != "") || !strings.Contains(d, c.want) {
			t.Errorf("inspection %q: got %q, %v; want %q", c.inspection, d, err, c.want)
		}
	}
}
