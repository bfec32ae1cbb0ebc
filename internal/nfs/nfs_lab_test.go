package nfs_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/nfs"
	"github.com/mohd-dev/mohd/internal/remote"
)

// sharedVolume creates a Docker volume for the test and removes it at the end. Call it before labtest.New:
// cleanups run last-in first-out, and the volume can go only once the lab's hosts are gone.
func sharedVolume(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("lab test: skipped under -short")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "mohd-test-moodledata-" + hex.EncodeToString(b)
	if out, err := exec.Command("docker", "volume", "create", "--label", lab.Label+"=test", name).CombinedOutput(); err != nil {
		t.Fatalf("docker volume create: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "volume", "rm", name).CombinedOutput(); err != nil {
			t.Errorf("docker volume rm %s: %v: %s", name, err, out)
		}
	})
	return name
}

// inspectUntil polls InspectExport until ok accepts the state (Ganesha applies its drop-in just after it
// starts).
func inspectUntil(t *testing.T, h remote.Host, e nfs.Export, within time.Duration, ok func(nfs.ExportState) bool) nfs.ExportState {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		st, err := nfs.InspectExport(ctx, h, e)
		cancel()
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("export state after %s: %+v (problems %v), %v", within, st, st.Problems(), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestLabNFS(t *testing.T) {
	vol := sharedVolume(t)
	l := labtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	imgs, err := lab.EnsureRoleImages(ctx, lab.RoleImageOptions{Roles: []string{"nfs", "web"}, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	web1Spec, web2Spec := lab.RoleHostSpec("web1", imgs[1]), lab.RoleHostSpec("web2", imgs[1])
	// The two web nodes share moodledata through a Docker volume: the lab's kernel has no NFS client.
	web1Spec.Volumes = []string{vol + ":" + nfs.MountPoint}
	web2Spec.Volumes = []string{vol + ":" + nfs.MountPoint}
	hosts := labtest.Start(t, l, lab.RoleHostSpec("nfs1", imgs[0]), web1Spec, web2Spec)
	srv, web1, web2 := hosts[0], hosts[1], hosts[2]
	rs, rw1, rw2 := labtest.Remote(t, srv), labtest.Remote(t, web1), labtest.Remote(t, web2)

	only1 := nfs.Export{Clients: []string{web1.Addr}}
	start := time.Now()
	changed, err := nfs.ConfigureExport(ctx, rs, only1)
	if err != nil || !changed {
		t.Fatalf("first ConfigureExport: changed %t, %v", changed, err)
	}
	t.Logf("first ConfigureExport: %s", time.Since(start).Round(100*time.Millisecond))
	if changed, err = nfs.ConfigureExport(ctx, rs, only1); err != nil || changed {
		t.Fatalf("second ConfigureExport: changed %t, %v", changed, err)
	}
	st, err := nfs.InspectExport(ctx, rs, only1)
	if err != nil {
		t.Fatal(err)
	}
	if !st.InSync() || !slices.Equal(st.RWClients, []string{web1.Addr + "/32"}) || !st.DirOK || st.Pseudo != nfs.DefaultExport {
		t.Fatalf("export after ConfigureExport: %+v, problems %v", st, st.Problems())
	}
	t.Logf("served clients: %+v", st.Clients)

	t.Run("showmount", func(t *testing.T) {
		// Without libnfs-utils (the web image carries it: removed here): MOUNT's export list, which Ganesha
		// filters per client.
		onEach(ctx, t, "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q libnfs-utils >/dev/null", web1, web2)
		if err := nfs.ProbeExport(ctx, rw1, srv.Addr, ""); err != nil {
			t.Errorf("ProbeExport (showmount) from the listed web1: %v", err)
		}
		err := nfs.ProbeExport(ctx, rw2, srv.Addr, "")
		if err == nil || !strings.Contains(err.Error(), "does not export /moodledata to this host ("+web2.Addr+")") {
			t.Errorf("ProbeExport (showmount) from the unlisted web2: %v", err)
		} else {
			t.Logf("web2 refused: %v", err)
		}
	})

	t.Run("nfs-ls", func(t *testing.T) {
		// With libnfs-utils (the web role's package): real NFSv3 and NFSv4 listings.
		onEach(ctx, t, "export DEBIAN_FRONTEND=noninteractive; command -v nfs-ls >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends libnfs-utils >/dev/null; }", web1, web2)
		if err := nfs.ProbeExport(ctx, rw1, srv.Addr, nfs.DefaultExport); err != nil {
			t.Errorf("ProbeExport (nfs-ls) from the listed web1: %v", err)
		}
		err := nfs.ProbeExport(ctx, rw2, srv.Addr, nfs.DefaultExport)
		if err == nil || !strings.Contains(err.Error(), "does not serve /moodledata to this host over NFSv3") {
			t.Errorf("ProbeExport (nfs-ls) from the unlisted web2: %v", err)
		} else {
			t.Logf("web2 refused: %v", err)
		}
	})

	t.Run("restart keeps the restriction", func(t *testing.T) {
		labtest.Exec(t, srv, "systemctl restart nfs-ganesha")
		start := time.Now()
		inspectUntil(t, rs, only1, 60*time.Second, func(s nfs.ExportState) bool { return s.InSync() })
		t.Logf("export restricted again %s after the restart", time.Since(start).Round(100*time.Millisecond))
		if out := labtest.Exec(t, srv, "journalctl -u nfs-ganesha -n 30 --no-pager | grep 'mohd:' || true"); !strings.Contains(out, "NFS-Ganesha took the export") {
			t.Errorf("the drop-in did not report its update:\n%s", out)
		}
		if err := nfs.ProbeExport(ctx, rw2, srv.Addr, ""); err == nil {
			t.Error("web2 is served after a restart")
		}
		// A reload rereads the role's file (the cluster network), then the drop-in narrows it again.
		start = time.Now()
		labtest.Exec(t, srv, "systemctl reload nfs-ganesha")
		t.Logf("systemctl reload nfs-ganesha returned after %s", time.Since(start).Round(100*time.Millisecond))
		st := inspectUntil(t, rs, only1, 30*time.Second, func(s nfs.ExportState) bool { return s.InSync() })
		t.Logf("export restricted %s after the reload began: %v", time.Since(start).Round(100*time.Millisecond), st.RWClients)
		if err := nfs.ProbeExport(ctx, rw2, srv.Addr, ""); err == nil {
			t.Error("web2 is served after a reload")
		}
	})

	t.Run("drift", func(t *testing.T) {
		// A hand edit of the site's file and an export reverted to the role's clients (as a reload
		// whose update failed would leave it) are reported, and ConfigureExport repairs both.
		labtest.Exec(t, srv, "sed -i 's#Clients = "+web1.Addr+"/32;#Clients = 0.0.0.0/0;#' "+nfs.SiteExportPath)
		labtest.Exec(t, srv, `conf=`+nfs.RoleConfPath+`; dbus-send --system --print-reply --dest=org.ganesha.nfsd /org/ganesha/nfsd/ExportMgr org.ganesha.nfsd.exportmgr.UpdateExport string:"$conf" string:'EXPORT(Export_Id=1)'`)
		st, err := nfs.InspectExport(ctx, rs, only1)
		if err != nil {
			t.Fatal(err)
		}
		p := strings.Join(st.Problems(), "\n")
		if st.InSync() || !strings.Contains(p, nfs.SiteExportPath+" was changed") || !strings.Contains(p, "read-write clients are 172.30.0.0/16") {
			t.Errorf("drift not reported: %s", p)
		}
		if changed, err := nfs.ConfigureExport(ctx, rs, only1); err != nil || !changed {
			t.Fatalf("repairing ConfigureExport: changed %t, %v", changed, err)
		}
		if st, err := nfs.InspectExport(ctx, rs, only1); err != nil || !st.InSync() {
			t.Fatalf("after the repair: %v %v", st.Problems(), err)
		}
	})

	t.Run("back to the role's clients", func(t *testing.T) {
		role := nfs.Export{}
		if changed, err := nfs.ConfigureExport(ctx, rs, role); err != nil || !changed {
			t.Fatalf("ConfigureExport without clients: changed %t, %v", changed, err)
		}
		if changed, err := nfs.ConfigureExport(ctx, rs, role); err != nil || changed {
			t.Fatalf("second ConfigureExport without clients: changed %t, %v", changed, err)
		}
		if err := nfs.ProbeExport(ctx, rw2, srv.Addr, ""); err != nil {
			t.Errorf("web2 is in the role's cluster network but not served: %v", err)
		}
		if out := labtest.Exec(t, srv, "ls "+nfs.SiteExportPath+" "+nfs.GaneshaDropInPath+" 2>&1 || true"); !strings.Contains(out, "No such file") {
			t.Errorf("site files left behind:\n%s", out)
		}
		// Restricted again for the rest of the test.
		if _, err := nfs.ConfigureExport(ctx, rs, only1); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("mount without kernel NFS", func(t *testing.T) {
		m := nfs.Mount{Server: srv.Addr}
		_, err := nfs.ConfigureMount(ctx, rw1, m)
		if !errors.Is(err, nfs.ErrNoKernelNFS) {
			t.Fatalf("ConfigureMount on a host whose kernel has no NFS: %v", err)
		}
		t.Logf("diagnostic: %v", err)
		if out := labtest.Exec(t, web1, "ls "+nfs.MountUnitPath+" 2>&1 || true"); !strings.Contains(out, "No such file") {
			t.Errorf("a mount unit was written: %s", out)
		}
		st, err := nfs.InspectMount(ctx, rw1, m)
		if err != nil {
			t.Fatal(err)
		}
		if st.KernelNFS || st.InSync() {
			t.Errorf("InspectMount for NFS on a host without it: %+v", st)
		}
	})

	t.Run("existing shared storage", func(t *testing.T) {
		m := nfs.Mount{Existing: true}
		if got := labtest.Exec(t, web1, "stat -c '%U:%G %a' "+nfs.MountPoint); got != "root:root 755" {
			t.Fatalf("a fresh volume on the image's mount point: %s", got)
		}
		for _, h := range []remote.Host{rw1, rw2} {
			changed, err := nfs.ConfigureMount(ctx, h, m)
			if err != nil || !changed {
				t.Fatalf("ConfigureMount (existing) on %s: changed %t, %v", h.Name(), changed, err)
			}
			if changed, err = nfs.ConfigureMount(ctx, h, m); err != nil || changed {
				t.Fatalf("second ConfigureMount (existing) on %s: changed %t, %v", h.Name(), changed, err)
			}
			st, err := nfs.InspectMount(ctx, h, m)
			if err != nil {
				t.Fatal(err)
			}
			if !st.InSync() || !st.Mounted || !st.Writable || st.Owner != "33:33" || st.Mode != "2770" {
				t.Errorf("InspectMount (existing) on %s: %+v", h.Name(), st)
			}
			t.Logf("%s: %s (%s) %v", h.Name(), st.Source, st.FSType, st.Options)
		}
		labtest.Exec(t, web1, "runuser -u www-data -- sh -c 'echo written-on-web1 > "+nfs.MountPoint+"/shared.txt'")
		if got := labtest.Exec(t, web2, "runuser -u www-data -- cat "+nfs.MountPoint+"/shared.txt"); got != "written-on-web1" {
			t.Errorf("web2 reads %q", got)
		}
		// The volume's mount unit comes from the kernel's mount table, not a unit file: systemd orders the
		// services after it (After=) without Requires= (it does that only for configured mount units).
		if got := labtest.Exec(t, web2, "systemctl show -p After php8.2-fpm apache2"); strings.Count(got, "var-www-moodledata.mount") != 2 {
			t.Errorf("the web services are not ordered after moodledata:\n%s", got)
		}
		// Read-only: a www-data-owned tree stays; InspectMount writes nothing.
		before := labtest.Exec(t, web1, "ls -A "+nfs.MountPoint)
		if _, err := nfs.InspectMount(ctx, rw1, m); err != nil {
			t.Fatal(err)
		}
		if after := labtest.Exec(t, web1, "ls -A "+nfs.MountPoint); after != before {
			t.Errorf("InspectMount changed moodledata: %q → %q", before, after)
		}
		// Not writable any more: reported.
		labtest.Exec(t, web1, "chmod 0755 "+nfs.MountPoint+" && chown root:root "+nfs.MountPoint)
		st, err := nfs.InspectMount(ctx, rw1, m)
		if err != nil {
			t.Fatal(err)
		}
		if st.Writable || st.InSync() {
			t.Errorf("a root-owned moodledata with data in it: %+v", st)
		}
		// ConfigureMount does not take over a tree that holds data: it says what to do.
		if _, err := nfs.ConfigureMount(ctx, rw1, m); err == nil || !strings.Contains(err.Error(), "www-data cannot create a file") {
			t.Errorf("ConfigureMount on a root-owned moodledata with data: %v", err)
		}
		labtest.Exec(t, web1, "chown www-data:www-data "+nfs.MountPoint+" && chmod 2770 "+nfs.MountPoint)
	})
}

// onEach runs a root script on the hosts in parallel, failing the test if it fails on any.
func onEach(ctx context.Context, t *testing.T, script string, hosts ...*lab.Host) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(hosts))
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := h.Exec(ctx, script); err != nil {
				errs[i] = fmt.Errorf("%s: %w: %s", h.Name, err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}
