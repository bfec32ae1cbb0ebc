package nfs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mohd-dev/mohd/internal/remote"
	"github.com/mohd-dev/mohd/internal/roles"
)

// roleGaneshaConf renders the nfs role's ganesha.conf, the file ConfigureExport derives the site's export
// from.
func roleGaneshaConf(t *testing.T, cidr string) string {
	t.Helper()
	r, err := roles.Get("nfs")
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Files(roles.Params{ClusterCIDR: cidr, Hardening: "baseline", PluginVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Path == RoleConfPath {
			return string(f.Content)
		}
	}
	t.Fatalf("the nfs role has no %s", RoleConfPath)
	return ""
}

func TestFindExportInRoleConf(t *testing.T) {
	conf := roleGaneshaConf(t, "10.20.0.0/24")
	e, err := findExport(conf, DefaultExport)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != 1 || e.Path != ExportDir {
		t.Errorf("export id %d path %q, want 1 %s", e.ID, e.Path, ExportDir)
	}
	if !slices.Equal(e.RWClients, []string{"10.20.0.0/24"}) {
		t.Errorf("read-write clients %v, want the cluster network", e.RWClients)
	}
	if _, err := findExport(conf, "/other"); err == nil || !strings.Contains(err.Error(), "no EXPORT with Pseudo = /other") {
		t.Errorf("missing export: %v", err)
	}
}

func TestSiteExportText(t *testing.T) {
	conf := roleGaneshaConf(t, "10.20.0.0/24")
	e, err := findExport(conf, DefaultExport)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := normalizeClients([]string{"10.20.0.12", "10.20.0.11/32", "10.20.0.12"})
	if err != nil {
		t.Fatal(err)
	}
	text := siteExportText(conf, e, clients)
	if !strings.HasPrefix(text, "EXPORT {") || !strings.HasSuffix(text, "}") {
		t.Errorf("not one EXPORT block:\n%s", text)
	}
	for _, want := range []string{"Clients = 10.20.0.11/32, 10.20.0.12/32;", "Clients = 127.0.0.1;", "Squash = Root_Squash;",
		"Path = /srv/moodledata;", "Pseudo = /moodledata;", "Export_Id = 1;", "Access_Type = None;", "Name = VFS;"} {
		if !strings.Contains(text, want) {
			t.Errorf("site export lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "10.20.0.0/24") || strings.Contains(text, "NFS_CORE_PARAM") {
		t.Errorf("site export keeps the cluster network or other blocks:\n%s", text)
	}
	// It reads back as the same export with the site's clients.
	back, err := findExport(text, DefaultExport)
	if err != nil {
		t.Fatalf("the site export does not parse: %v\n%s", err, text)
	}
	if back.ID != 1 || !slices.Equal(back.RWClients, clients) {
		t.Errorf("site export reads back as id %d clients %v", back.ID, back.RWClients)
	}
}

func TestSiteExportTextDropsOtherRWBlocks(t *testing.T) {
	conf := `# a comment { with a brace
NFS_CORE_PARAM { Protocols = 3, 4; }
EXPORT
{
	Export_Id = 7;
	Path = "/srv/data";
	Pseudo = "/moodledata";
	CLIENT {
		Clients = 10.0.0.0/8, 192.168.1.0/24;
		Access_Type = rw;
		Squash = None;
	}
	CLIENT { Clients = 127.0.0.1; Access_Type = RO; }
	CLIENT {
		Clients = 172.16.0.0/12;
		Access_Type = "RW";
	}
	FSAL { Name = VFS }
}
`
	e, err := findExport(conf, DefaultExport)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != 7 || e.Path != "/srv/data" || !slices.Equal(e.RWClients, []string{"10.0.0.0/8", "192.168.1.0/24", "172.16.0.0/12"}) {
		t.Fatalf("export: %+v", e)
	}
	text := siteExportText(conf, e, []string{"10.0.0.5/32"})
	want := `EXPORT
{
	Export_Id = 7;
	Path = "/srv/data";
	Pseudo = "/moodledata";
	CLIENT {
		Clients = 10.0.0.5/32;
		Access_Type = rw;
		Squash = None;
	}
	CLIENT { Clients = 127.0.0.1; Access_Type = RO; }
	FSAL { Name = VFS }
}`
	if text != want {
		t.Errorf("site export:\n%s\nwant:\n%s", text, want)
	}
}

func TestParseGaneshaErrors(t *testing.T) {
	for _, conf := range []string{"EXPORT { Path = /x;", "EXPORT { Path = \"/x; }", "}", "EXPORT Path"} {
		if _, err := parseGanesha(conf); err == nil {
			t.Errorf("%q parsed", conf)
		}
	}
	noRW := "EXPORT { Export_Id = 1; Pseudo = /moodledata; CLIENT { Clients = 127.0.0.1; Access_Type = RO; } }"
	if _, err := findExport(noRW, DefaultExport); err == nil || !strings.Contains(err.Error(), "no CLIENT block with Access_Type = RW") {
		t.Errorf("export without RW clients: %v", err)
	}
}

func TestNormalizeClients(t *testing.T) {
	got, err := normalizeClients([]string{"10.0.0.12", "10.0.1.7/24", "fd00::5", "10.0.0.12/32"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.12/32", "10.0.1.0/24", "fd00::5/128"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"web1", "10.0.0.300", "0.0.0.0/0", "*"} {
		if _, err := normalizeClients([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// displayExportReply is dbus-send --print-reply's output for DisplayExport with two clients.
const displayExportReply = `method return time=1732689000.123456 sender=:1.3 -> destination=:1.12 serial=40 reply_serial=2
   uint16 1
   string "/srv/moodledata"
   string "/moodledata"
   string ""
   array [
      struct {
         string "172.30.9.11/32"
         int32 4
         byte 0
         byte 0
         int32 6
         uint32 65534
         uint32 65534
         uint32 0
         uint32 1048672
         uint32 1048672
      }
      struct {
         string "127.0.0.1/32"
         int32 4
         byte 0
         byte 0
         int32 6
         uint32 65534
         uint32 65534
         uint32 0
         uint32 1048608
         uint32 1048672
      }
   ]
`

func TestParseDisplayExport(t *testing.T) {
	se, err := parseDisplayExport(displayExportReply)
	if err != nil {
		t.Fatal(err)
	}
	if se.ID != 1 || se.Path != "/srv/moodledata" || se.Pseudo != "/moodledata" {
		t.Errorf("export: %+v", se)
	}
	want := []Client{{Match: "172.30.9.11/32", Access: "RW"}, {Match: "127.0.0.1/32", Access: "RO"}}
	if !slices.Equal(se.Clients, want) {
		t.Errorf("clients %+v, want %+v", se.Clients, want)
	}
	if got := rwClients(se.Clients); !slices.Equal(got, []string{"172.30.9.11/32"}) {
		t.Errorf("rw clients %v", got)
	}
	if _, err := parseDisplayExport("Error org.freedesktop.DBus.Error.ServiceUnknown"); err == nil {
		t.Error("an error reply parsed")
	}
}

func TestMountOptionsAndUnit(t *testing.T) {
	m := Mount{Server: "10.0.0.20"}.withDefaults()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	want := "vers=3,proto=tcp,mountproto=tcp,hard,timeo=600,retrans=2,noatime,_netdev"
	if got := strings.Join(m.mountOptions(), ","); got != want {
		t.Errorf("v3 options %s, want %s", got, want)
	}
	m = Mount{Server: "fd00::20", Version: "4.2", Options: []string{"soft", "timeo=150", "relatime", "rsize=1048576"}}.withDefaults()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	want = "vers=4.2,proto=tcp,retrans=2,_netdev,soft,timeo=150,relatime,rsize=1048576"
	if got := strings.Join(m.mountOptions(), ","); got != want {
		t.Errorf("v4.2 options %s, want %s", got, want)
	}
	unit := string(m.unitFile().Content)
	for _, line := range []string{"What=[fd00::20]:/moodledata", "Where=/var/www/moodledata", "Type=nfs", "Options=" + want,
		"After=network-online.target", "WantedBy=remote-fs.target"} {
		if !strings.Contains(unit, "\n"+line+"\n") {
			t.Errorf("unit lacks %q:\n%s", line, unit)
		}
	}
	for _, d := range dropIns() {
		if !strings.Contains(string(d.Content), "\n[Unit]\nRequiresMountsFor=/var/www/moodledata\n") {
			t.Errorf("%s:\n%s", d.Path, d.Content)
		}
	}
	if p := dropIns()[0].Path; p != "/etc/systemd/system/php8.2-fpm.service.d/60-mohd-moodledata.conf" {
		t.Errorf("drop-in path %s", p)
	}

	bad := []Mount{
		{},
		{Server: "nfs server"},
		{Server: "10.0.0.20", Version: "2"},
		{Server: "10.0.0.20", Export: "moodledata"},
		{Server: "10.0.0.20", Options: []string{"rw,exec"}},
		{Server: "10.0.0.20", Options: []string{"vers=4"}},
		{Server: "10.0.0.20", Options: []string{"x\nWhat=/etc"}},
	}
	for _, b := range bad {
		if err := b.Validate(); err == nil {
			t.Errorf("%+v accepted", b)
		}
	}
	if err := (Mount{Existing: true}).Validate(); err != nil {
		t.Errorf("existing storage needs no server: %v", err)
	}
}

func TestParseFindmnt(t *testing.T) {
	out := `SOURCE="/dev/vda1[/var/lib/docker/volumes/x/_data]" FSTYPE="ext4" OPTIONS="rw,relatime"
SOURCE="10.0.0.20:/moodledata" FSTYPE="nfs" OPTIONS="rw,noatime,vers=3,hard,proto=tcp,timeo=600,retrans=2,sec=sys,mountaddr=10.0.0.20,mountvers=3,mountport=20048,mountproto=tcp,local_lock=none,addr=10.0.0.20"
`
	m, ok := parseFindmnt(out)
	if !ok || m.Source != "10.0.0.20:/moodledata" || m.FSType != "nfs" || !slices.Contains(m.Options, "hard") {
		t.Errorf("stacked mounts: %+v %t", m, ok)
	}
	m, ok = parseFindmnt(`SOURCE="/dev/disk\x20one" FSTYPE="xfs" OPTIONS="ro"` + "\n")
	if !ok || m.Source != "/dev/disk one" || !slices.Equal(m.Options, []string{"ro"}) {
		t.Errorf("escaped source: %+v", m)
	}
	if _, ok := parseFindmnt(""); ok {
		t.Error("no output parsed as a mount")
	}
}

func TestParseShowmount(t *testing.T) {
	got := parseShowmount("Export list for 10.0.0.20:\n/moodledata 10.0.0.11/32,127.0.0.1/32\n/other (everyone)\n")
	if !slices.Equal(got["/moodledata"], []string{"10.0.0.11/32", "127.0.0.1/32"}) || len(got) != 2 {
		t.Errorf("got %v", got)
	}
	if got := parseShowmount("Export list for 10.0.0.20:\n"); len(got) != 0 {
		t.Errorf("empty list: %v", got)
	}
}

func TestConfigureMountWithoutKernelNFS(t *testing.T) {
	f := remote.NewFake("")
	f.Strict = true
	f.On(`^fs=nfs; mod=nfs\n`, remote.Result{Stdout: []byte("no /proc/filesystems lists no nfs, and the kernel has no module support (/proc/modules is missing): NFS is not built in; virtualization: docker\n")})
	_, err := ConfigureMount(context.Background(), f, Mount{Server: "10.0.0.20"})
	if !errors.Is(err, ErrNoKernelNFS) {
		t.Fatalf("err = %v, want ErrNoKernelNFS", err)
	}
	for _, want := range []string{"cannot mount NFS", "/proc/modules is missing", "on a VM", "in a container", "existing = true"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the diagnostic lacks %q: %v", want, err)
		}
	}
	if len(f.Uploads()) != 0 {
		t.Errorf("files were written on a host that cannot mount NFS: %v", f.Uploads())
	}
}

// fakeWebNode scripts a web node; mount is what findmnt prints.
func fakeWebNode(mount *string) *remote.Fake {
	f := remote.NewFake("")
	f.Strict = true
	f.OnFunc(`^findmnt `, func(remote.Cmd) (remote.Result, error) { return remote.Result{Stdout: []byte(*mount)}, nil })
	f.On(`^fs=nfs; mod=nfs\n`, remote.Result{Stdout: []byte("ok\n")})
	f.On(`^test -x /sbin/mount.nfs$`, remote.Result{})
	f.On(`^systemctl daemon-reload$`, remote.Result{})
	f.OnFunc(`^changed=\nu=var-www-moodledata.mount\n`, func(c remote.Cmd) (remote.Result, error) {
		if strings.Contains(c.Command, "[ true = true ]") {
			*mount = `SOURCE="10.0.0.20:/moodledata" FSTYPE="nfs" OPTIONS="rw,noatime,vers=3"` + "\n"
			return remote.Result{Stdout: []byte("changed\n")}, nil
		}
		return remote.Result{}, nil
	})
	f.On(`^d=/var/www/moodledata\n\[ "\$\(stat`, remote.Result{})
	f.On(`^timeout -s KILL 60 sh -c 'd=/var/www/moodledata; f=`, remote.Result{})
	return f
}

func TestConfigureMountIdempotent(t *testing.T) {
	mount := ""
	f := fakeWebNode(&mount)
	m := Mount{Server: "10.0.0.20"}
	ctx := context.Background()
	changed, err := ConfigureMount(ctx, f, m)
	if err != nil || !changed {
		t.Fatalf("first ConfigureMount: changed %t, %v", changed, err)
	}
	unit, ok := f.File(MountUnitPath)
	if !ok || !strings.Contains(string(unit.Content), "What=10.0.0.20:/moodledata") {
		t.Fatalf("mount unit: %+v", unit)
	}
	var probe remote.Cmd
	for _, c := range f.Calls() {
		if strings.HasPrefix(c.Command, "timeout -s KILL 60 sh -c 'd=/var/www/moodledata; f=") {
			probe = c
		}
	}
	if probe.AsUser != "www-data" {
		t.Errorf("the write probe runs as %q, want www-data", probe.AsUser)
	}
	if changed, err = ConfigureMount(ctx, f, m); err != nil || changed {
		t.Fatalf("second ConfigureMount: changed %t, %v", changed, err)
	}
	if got := f.LocksTaken(); len(got) != 2 || got[0] != "moodledata" {
		t.Errorf("locks %v", got)
	}
}

func TestConfigureMountRefusesForeignMount(t *testing.T) {
	mount := `SOURCE="/dev/sdb1" FSTYPE="ext4" OPTIONS="rw"` + "\n"
	f := fakeWebNode(&mount)
	_, err := ConfigureMount(context.Background(), f, Mount{Server: "10.0.0.20"})
	if err == nil || !strings.Contains(err.Error(), "/dev/sdb1 (ext4) mounted") {
		t.Fatalf("err = %v", err)
	}
	if _, ok := f.File(MountUnitPath); ok {
		t.Error("a mount unit was written over another mount")
	}
}

func TestConfigureMountExisting(t *testing.T) {
	mount := ""
	f := fakeWebNode(&mount)
	ctx := context.Background()
	_, err := ConfigureMount(ctx, f, Mount{Existing: true})
	if err == nil || !strings.Contains(err.Error(), "nothing is mounted on /var/www/moodledata") {
		t.Fatalf("no mount: %v", err)
	}
	mount = `SOURCE="/dev/vdb" FSTYPE="ext4" OPTIONS="ro,relatime"` + "\n"
	if _, err = ConfigureMount(ctx, f, Mount{Existing: true}); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("read-only mount: %v", err)
	}
	mount = `SOURCE="/dev/vdb" FSTYPE="ext4" OPTIONS="rw,relatime"` + "\n"
	changed, err := ConfigureMount(ctx, f, Mount{Existing: true})
	if err != nil || !changed {
		t.Fatalf("existing storage: changed %t, %v", changed, err)
	}
	if _, ok := f.File(MountUnitPath); ok {
		t.Error("a mount unit was written for existing storage")
	}
	if _, ok := f.File("/etc/systemd/system/apache2.service.d/60-mohd-moodledata.conf"); !ok {
		t.Error("no ordering drop-in for apache2")
	}
}

func TestConfigureExport(t *testing.T) {
	conf := roleGaneshaConf(t, "10.20.0.0/24")
	served := strings.Replace(displayExportReply, "172.30.9.11/32", "10.20.0.0/24", 1)
	f := remote.NewFake("")
	f.Strict = true
	updates := 0
	f.On(`^cat /etc/ganesha/ganesha.conf$`, remote.Result{Stdout: []byte(conf)})
	f.On(`^systemctl daemon-reload$`, remote.Result{})
	f.On(`^if ! systemctl is-active --quiet nfs-ganesha`, remote.Result{})
	f.OnFunc(`DisplayExport uint16:1$`, func(remote.Cmd) (remote.Result, error) { return remote.Result{Stdout: []byte(served)}, nil })
	f.OnFunc(`^conf=/etc/ganesha/mohd-site-export.conf\ni=0\nuntil out=\$\(dbus-send .*\.UpdateExport string:"\$conf" string:'EXPORT\(Export_Id=1\)'`,
		func(remote.Cmd) (remote.Result, error) {
			updates++
			site, _ := f.File(SiteExportPath)
			e, err := findExport(string(site.Content), DefaultExport)
			if err != nil {
				return remote.Result{ExitCode: 1}, err
			}
			served = strings.Replace(displayExportReply, "172.30.9.11/32", e.RWClients[0], 1)
			return remote.Result{Stdout: []byte("mohd: NFS-Ganesha took the export\n")}, nil
		})
	ctx := context.Background()
	changed, err := ConfigureExport(ctx, f, Export{Clients: []string{"10.20.0.11"}})
	if err != nil || !changed || updates != 1 {
		t.Fatalf("first ConfigureExport: changed %t, %d updates, %v", changed, updates, err)
	}
	drop, _ := f.File(GaneshaDropInPath)
	if !strings.Contains(string(drop.Content), "ExecStartPost=-"+ApplyScriptPath+"\n") {
		t.Errorf("drop-in:\n%s", drop.Content)
	}
	script, _ := f.File(ApplyScriptPath)
	if script.Mode != 0o755 || !strings.Contains(string(script.Content), "EXPORT(Export_Id=1)") {
		t.Errorf("apply script %o:\n%s", script.Mode, script.Content)
	}
	if changed, err = ConfigureExport(ctx, f, Export{Clients: []string{"10.20.0.11/32"}}); err != nil || changed || updates != 1 {
		t.Fatalf("second ConfigureExport: changed %t, %d updates, %v", changed, updates, err)
	}
	// Ganesha restarted without the drop-in's update: the export has the role's clients again.
	served = strings.Replace(displayExportReply, "172.30.9.11/32", "10.20.0.0/24", 1)
	if changed, err = ConfigureExport(ctx, f, Export{Clients: []string{"10.20.0.11"}}); err != nil || !changed || updates != 2 {
		t.Fatalf("ConfigureExport after a revert: changed %t, %d updates, %v", changed, updates, err)
	}
	if _, err := ConfigureExport(ctx, f, Export{Clients: []string{"web1"}}); err == nil {
		t.Error("a host name was accepted as a client")
	}
}

func TestInspectMountReadOnly(t *testing.T) {
	mount := `SOURCE="/dev/vdb" FSTYPE="ext4" OPTIONS="rw,relatime"` + "\n"
	f := fakeWebNode(&mount)
	writable := true
	f.OnFunc(`^timeout -s KILL 10 test -w /var/www/moodledata`, func(c remote.Cmd) (remote.Result, error) {
		if c.AsUser != "www-data" {
			return remote.Result{ExitCode: 2}, nil
		}
		if writable {
			return remote.Result{}, nil
		}
		return remote.Result{ExitCode: 1}, nil
	})
	f.On(`^echo "stat=`, remote.Result{Stdout: []byte("stat=33:33 2770\nkernel=no\nactive=inactive\nenabled=disabled\n")})
	f.OnFunc(`^p=`, func(c remote.Cmd) (remote.Result, error) {
		path := strings.Trim(strings.TrimPrefix(strings.SplitN(c.Command, "\n", 2)[0], "p="), "'")
		file, ok := f.File(path)
		if !ok {
			return remote.Result{Stdout: []byte("missing\n")}, nil
		}
		u, _ := remote.NewUpload(f.Name(), file)
		return remote.Result{Stdout: []byte("present " + u.SHA256 + " " + u.Mode + " 0 0 root root\n")}, nil
	})
	ctx := context.Background()
	m := Mount{Existing: true}
	st, err := InspectMount(ctx, f, m)
	if err != nil {
		t.Fatal(err)
	}
	if st.InSync() || len(st.Drift) != 2 || !st.Mounted || !st.Writable || st.Owner != "33:33" || st.Mode != "2770" {
		t.Errorf("before ConfigureMount (drop-ins missing): %+v", st)
	}
	if _, err := ConfigureMount(ctx, f, m); err != nil {
		t.Fatal(err)
	}
	if st, err = InspectMount(ctx, f, m); err != nil || !st.InSync() {
		t.Errorf("after ConfigureMount: %+v %v", st, err)
	}
	writable = false
	if st, err = InspectMount(ctx, f, m); err != nil || st.Writable || !strings.Contains(strings.Join(st.Problems(), "\n"), "www-data may not write") {
		t.Errorf("not writable: %+v %v", st, err)
	}
	// NFS wanted, but a volume is mounted and the kernel has no NFS: both reported.
	st, err = InspectMount(ctx, f, Mount{Server: "10.0.0.20"})
	if err != nil {
		t.Fatal(err)
	}
	p := strings.Join(st.Problems(), "\n")
	for _, want := range []string{"has /dev/vdb (ext4) mounted, want 10.0.0.20:/moodledata over NFS", MountUnitPath + " is missing", "not enabled at boot"} {
		if !strings.Contains(p, want) {
			t.Errorf("problems lack %q:\n%s", want, p)
		}
	}
	uploads := len(f.Uploads())
	for _, c := range f.Calls() {
		if strings.Contains(c.Command, "chown") && strings.HasPrefix(c.Command, "d=") && !strings.Contains(c.Command, "stat -c '%u:%g'") {
			t.Errorf("unexpected command: %s", c.Command)
		}
	}
	if _, err := InspectMount(ctx, f, m); err != nil || len(f.Uploads()) != uploads {
		t.Errorf("InspectMount uploaded files (%v)", err)
	}
}
