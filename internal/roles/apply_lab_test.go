package roles_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/roles"
)

// applyOnLabHost applies a role to a fresh base-image host twice: the first run changes the host, the
// second changes nothing.
func applyOnLabHost(t *testing.T, role string) (*lab.Lab, *lab.Host) {
	t.Helper()
	l := labtest.New(t)
	h := labtest.Start(t, l, lab.HostSpec{Name: role + "1"})[0]
	rh := labtest.Remote(t, h)
	r, err := roles.Get(role)
	if err != nil {
		t.Fatal(err)
	}
	p := roles.Params{ClusterCIDR: l.Subnet.String(), PluginVersion: "test"}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := roles.Apply(ctx, rh, r, p, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatalf("first apply: %v", err)
	}
	t.Logf("first apply of %s: %s, installed %d packages, wrote %d files", role, time.Since(start).Round(time.Second), len(rep.Installed), len(rep.Files))
	if !rep.Changed() || len(rep.Installed) == 0 {
		t.Fatalf("first apply changed nothing: %+v", rep)
	}
	rep, err = roles.Apply(ctx, rh, r, p, nil)
	if err != nil {
		t.Fatalf("second apply: %v", err)
	}
	if rep.Changed() {
		t.Fatalf("second apply is not idempotent: %+v", rep)
	}
	manifest := labtest.Exec(t, h, "cat /etc/mohd/image-manifest.json")
	if !strings.Contains(manifest, `"role": "`+role+`"`) {
		t.Fatalf("manifest: %s", manifest)
	}
	return l, h
}

func TestApplyRedis(t *testing.T) {
	l, h := applyOnLabHost(t, "redis")
	// Default-deny: from another host, Redis (loopback only in the image) and an unlisted port are closed,
	// SSH is open.
	peer := labtest.Start(t, l, lab.HostSpec{Name: "peer"})[0]
	labtest.Exec(t, peer, "timeout 3 bash -c 'echo > /dev/tcp/"+h.Addr+"/22'")
	if _, err := peer.Exec(context.Background(), "timeout 3 bash -c 'echo > /dev/tcp/"+h.Addr+"/6379'"); err == nil {
		t.Fatal("Redis is reachable from the network before the site gave it an address and a password")
	}
}
