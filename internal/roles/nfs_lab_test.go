package roles_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/remote"
	"github.com/mohd-dev/mohd/internal/roles"
)

// nfsApplyTwice applies the nfs role to h twice: the first run changes the host, the second nothing.
func nfsApplyTwice(t *testing.T, rh remote.Host, p roles.Params) {
	t.Helper()
	r, err := roles.Get("nfs")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := roles.Apply(ctx, rh, r, p, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatalf("first apply: %v", err)
	}
	t.Logf("first apply of nfs: %s, installed %d packages, wrote %d files", time.Since(start).Round(time.Second), len(rep.Installed), len(rep.Files))
	if !rep.Changed() || len(rep.Installed) == 0 {
		t.Fatalf("first apply changed nothing: %+v", rep)
	}
	if rep, err = roles.Apply(ctx, rh, r, p, nil); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	if rep.Changed() {
		t.Fatalf("second apply is not idempotent: %+v", rep)
	}
}

// nfsRetry runs script on h until it succeeds or the deadline passes; it returns the time it took.
func nfsRetry(t *testing.T, h *lab.Host, script string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := h.Exec(ctx, script)
		cancel()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s on %s for %s: %v\n%s", script, h.Name, within, err, out)
		}
		time.Sleep(time.Second)
	}
}

// nfsWrite writes content to a new file of the export from client c, retrying through a grace period, and
// returns the file's name: base, or base with the attempt's number when earlier attempts failed (a failed
// attempt may leave an empty file, which Ganesha's directory cache keeps showing for a minute even when it
// is removed on the server).
func nfsWrite(t *testing.T, c *lab.Host, url, base, query, content string, within time.Duration) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		name := base
		if attempt > 1 {
			name = fmt.Sprintf("%s.%d", base, attempt)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := c.Exec(ctx, "echo "+content+" > /tmp/w && nfs-cp /tmp/w '"+url+"/"+name+query+"' 2>&1")
		cancel()
		if err == nil {
			return name, time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("writing %s from %s for %s: %v\n%s", name, c.Name, within, err, out)
		}
		if attempt == 1 {
			t.Logf("writing %s: %s (retrying)", name, strings.TrimSpace(out))
		}
		time.Sleep(time.Second)
	}
}

func TestApplyNFS(t *testing.T) {
	l := labtest.New(t)
	// SYS_ADMIN (given to every lab host) and DAC_READ_SEARCH: Ganesha's VFS backend works on file handles
	// (docs/lab-capabilities.md). moodledata is a volume, as a data disk would be.
	hosts := labtest.Start(t, l,
		lab.HostSpec{Name: "nfs1", CapAdd: []string{"DAC_READ_SEARCH"}, Volumes: []string{"/srv/moodledata"}},
		lab.HostSpec{Name: "web1"},
		lab.HostSpec{Name: "outsider"})
	srv, web, outsider := hosts[0], hosts[1], hosts[2]
	// The cluster network is a /30 holding the server and web1 only: outsider is in the lab's subnet but
	// outside the cluster, as a host of another network would be.
	_, cluster, err := net.ParseCIDR(srv.Addr + "/30")
	if err != nil {
		t.Fatal(err)
	}
	if !cluster.Contains(net.ParseIP(web.Addr)) || cluster.Contains(net.ParseIP(outsider.Addr)) {
		t.Fatalf("lab addresses %s, %s, %s do not fit the test's plan (%s holds the first two only)", srv.Addr, web.Addr, outsider.Addr, cluster)
	}

	// The clients get libnfs-utils (a user-space NFS client: lab hosts have no kernel NFS) while the role
	// is applied.
	var wg sync.WaitGroup
	clientErr := make([]error, 2)
	for i, c := range []*lab.Host{web, outsider} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			out, err := c.Exec(ctx, "export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends libnfs-utils >/dev/null")
			if err != nil {
				clientErr[i] = fmt.Errorf("%s: %w: %s", c.Name, err, out)
			}
		}()
	}
	nfsApplyTwice(t, labtest.Remote(t, srv), roles.Params{ClusterCIDR: cluster.String(), PluginVersion: "test"})
	wg.Wait()
	for _, err := range clientErr {
		if err != nil {
			t.Fatal(err)
		}
	}
	if m := labtest.Exec(t, srv, "cat /etc/mohd/image-manifest.json"); !strings.Contains(m, `"role": "nfs"`) || !strings.Contains(m, `"nfs-ganesha"`) {
		t.Fatalf("manifest: %s", m)
	}
	if st := labtest.Exec(t, srv, "stat -c '%u:%g %a' /srv/moodledata; findmnt -n -o TARGET /srv/moodledata"); st != "33:33 2770\n/srv/moodledata" {
		t.Fatalf("moodledata: %q, want 33:33 2770 on its own mount (the volume)", st)
	}
	labtest.Exec(t, srv, "echo from-the-server > /srv/moodledata/probe.txt && chown 33:33 /srv/moodledata/probe.txt && chmod 0660 /srv/moodledata/probe.txt")

	url := "nfs://" + srv.Addr + "/moodledata"
	asWWW := "uid=33&gid=33"
	for _, v := range []string{"3", "4"} {
		q := "?" + asWWW + "&version=" + v
		// Read, write as www-data, read back; the file belongs to www-data on the server.
		if ls := labtest.Exec(t, web, "nfs-ls '"+url+q+"'"); !strings.Contains(ls, "probe.txt") {
			t.Fatalf("NFSv%s listing from web1:\n%s", v, ls)
		}
		if got := labtest.Exec(t, web, "nfs-cat '"+url+"/probe.txt"+q+"'"); got != "from-the-server" {
			t.Fatalf("NFSv%s read: %q", v, got)
		}
		name, took := nfsWrite(t, web, url, "written-v"+v, q, "written-over-v"+v, 60*time.Second)
		t.Logf("NFSv%s write from web1 succeeded after %s", v, took.Round(time.Second))
		if got := labtest.Exec(t, srv, "stat -c '%u:%g' /srv/moodledata/"+name+" && cat /srv/moodledata/"+name); got != "33:33\nwritten-over-v"+v {
			t.Fatalf("NFSv%s write on the server: %q, want owner 33:33 and the content", v, got)
		}
		if got := labtest.Exec(t, web, "nfs-cat '"+url+"/"+name+q+"'"); got != "written-over-v"+v {
			t.Fatalf("NFSv%s read back: %q", v, got)
		}
		// root on a client is squashed to nobody, which may not write into moodledata (2770 www-data).
		out, err := web.Exec(context.Background(), "echo as-root > /tmp/r && nfs-cp /tmp/r '"+url+"/root-v"+v+".txt?version="+v+"' 2>&1")
		if err == nil || !strings.Contains(out, "ACCES") {
			t.Fatalf("NFSv%s write as root was not refused with an access error (root_squash): %v\n%s", v, err, out)
		}
	}
	if ls := labtest.Exec(t, srv, "ls /srv/moodledata"); strings.Contains(ls, "root-v") {
		t.Fatalf("a squashed root write landed:\n%s", ls)
	}

	// Outside the cluster network: the firewall drops NFS, MOUNT and rpcbind.
	for _, port := range []int{2049, 111, 20048} {
		if haproxyTCPOpen(outsider, srv.Addr, port) {
			t.Errorf("port %d is reachable from %s, outside %s", port, outsider.Addr, cluster)
		}
		if !haproxyTCPOpen(web, srv.Addr, port) {
			t.Errorf("port %d is not reachable from web1", port)
		}
	}
	if out, err := outsider.Exec(context.Background(), "timeout 20 nfs-ls '"+url+"?"+asWWW+"' 2>&1"); err == nil {
		t.Fatalf("outsider listed the export:\n%s", out)
	}

	t.Run("export refuses clients outside the cluster", func(t *testing.T) {
		// Defence in depth: with the firewall opened to the outsider, Ganesha itself refuses it (the
		// export-level Access_Type is None; only the cluster's CLIENT block may write).
		labtest.Exec(t, srv, "nft insert rule inet mohd input ip saddr "+outsider.Addr+" accept")
		defer labtest.Exec(t, srv, "nft delete rule inet mohd input handle $(nft -a list chain inet mohd input | awk '/ip saddr "+outsider.Addr+" accept/ {print $NF}')")
		if !haproxyTCPOpen(outsider, srv.Addr, 2049) {
			t.Fatal("the test's firewall exception did not open 2049 to the outsider")
		}
		for _, v := range []string{"3", "4"} {
			out, err := outsider.Exec(context.Background(), "timeout 20 nfs-ls '"+url+"?"+asWWW+"&version="+v+"' 2>&1")
			if err == nil {
				t.Fatalf("NFSv%s: the export served a client outside its CLIENT list:\n%s", v, out)
			}
			// v3's MOUNT answers "access denied"; v4's pseudo file system hides the export ("no such entry").
			if !strings.Contains(out, "MNT3ERR_ACCES") && !strings.Contains(out, "NFS4ERR_NOENT") {
				t.Fatalf("NFSv%s from the outsider failed, but not with the export's refusal:\n%s", v, out)
			}
			t.Logf("NFSv%s from the outsider, refused by Ganesha: %s", v, strings.TrimSpace(out))
		}
	})

	t.Run("restart", func(t *testing.T) {
		// A restart: NFSv3 reads answer at once, v4 writes within the short grace period.
		labtest.Exec(t, srv, "systemctl restart nfs-ganesha")
		took := nfsRetry(t, web, "nfs-cat '"+url+"/probe.txt?"+asWWW+"&version=3'", 20*time.Second)
		t.Logf("NFSv3 read after restart: %s", took.Round(100*time.Millisecond))
		_, took = nfsWrite(t, web, url, "after-restart", "?"+asWWW+"&version=4", "after-restart", 45*time.Second)
		t.Logf("NFSv4 write after restart: %s (grace period 30 s at most)", took.Round(100*time.Millisecond))
		if err := roles.Check(context.Background(), labtest.Remote(t, srv), nfsRole(t)); err != nil {
			t.Fatal(err)
		}
	})

	// Nothing alarming in Ganesha's log (the Kerberos lines are expected: no keytab, sec=sys only).
	if crit := labtest.Exec(t, srv, "grep -E ' :(CRIT|MAJ|FATAL) :' /var/log/ganesha/ganesha.log | grep -viE 'krb5|keytab|principal|gssd' || true"); crit != "" {
		t.Errorf("Ganesha logged critical errors:\n%s", crit)
	}
}

func nfsRole(t *testing.T) *roles.Role {
	t.Helper()
	r, err := roles.Get("nfs")
	if err != nil {
		t.Fatal(err)
	}
	return r
}
