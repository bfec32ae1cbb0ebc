package redis

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/mohd-dev/mohd/internal/remote"
)

const testPassword = `s3cr et"\$x'` + "`y"

func testConfig() Config {
	return Config{BindAddress: "10.0.0.5", Password: testPassword, MaxMemoryMB: 256}
}

func TestValidate(t *testing.T) {
	if err := testConfig().Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	bad := map[string]Config{
		"empty address":   {Password: "p"},
		"not an address":  {BindAddress: "redis.example", Password: "p"},
		"unspecified":     {BindAddress: "0.0.0.0", Password: "p"},
		"loopback":        {BindAddress: "127.0.0.1", Password: "p"},
		"empty password":  {BindAddress: "10.0.0.5"},
		"newline":         {BindAddress: "10.0.0.5", Password: "a\nb"},
		"negative memory": {BindAddress: "10.0.0.5", Password: "p", MaxMemoryMB: -1},
	}
	for name, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, c)
		}
	}
	if err := (Config{BindAddress: "fd00::5", Password: "p"}).Validate(); err != nil {
		t.Errorf("IPv6 refused: %v", err)
	}
}

func TestSiteConfRendering(t *testing.T) {
	conf := string(testConfig().siteConf())
	for _, want := range []string{
		"bind 127.0.0.1 -::1 10.0.0.5\n",
		`requirepass "s3cr et\"\\$x'` + "`y\"\n",
		"maxmemory 256mb\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("site conf lacks %q:\n%s", want, conf)
		}
	}
	c := testConfig()
	c.MaxMemoryMB = 0
	if conf := string(c.siteConf()); !strings.Contains(conf, "\nmaxmemory 0\n") {
		t.Errorf("no limit must reset maxmemory explicitly:\n%s", conf)
	}
	c.BindAddress = "fd00:0:0::5"
	if conf := string(c.siteConf()); !strings.Contains(conf, "bind 127.0.0.1 -::1 fd00::5\n") {
		t.Errorf("IPv6 bind not canonical:\n%s", conf)
	}
}

func TestExporterFiles(t *testing.T) {
	files, err := testConfig().files()
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]remote.File{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	site := byPath[SiteConfPath]
	if site.Mode != 0o640 || site.Owner != "redis" || site.Group != "redis" {
		t.Errorf("site conf: mode %o %s:%s, want 0640 redis:redis", site.Mode, site.Owner, site.Group)
	}
	pw := byPath[ExporterPasswordPath]
	if pw.Mode != 0o640 || pw.Owner != "root" || pw.Group != "prometheus" {
		t.Errorf("exporter password: mode %o %s:%s, want 0640 root:prometheus", pw.Mode, pw.Owner, pw.Group)
	}
	var m map[string]string
	if err := json.Unmarshal(pw.Content, &m); err != nil {
		t.Fatalf("password file is not JSON: %v", err)
	}
	if len(m) != 1 || m["redis://127.0.0.1:6379"] != testPassword {
		t.Errorf("password file maps %v", m)
	}
	drop := string(byPath[ExporterDropInPath].Content)
	for _, want := range []string{"[Service]\n", "Environment=REDIS_ADDR=redis://127.0.0.1:6379\n", "Environment=REDIS_PASSWORD_FILE=" + ExporterPasswordPath + "\n"} {
		if !strings.Contains(drop, want) {
			t.Errorf("drop-in lacks %q:\n%s", want, drop)
		}
	}
	if strings.Contains(drop, testPassword) {
		t.Error("the drop-in holds the password")
	}
}

func TestHostAddrs(t *testing.T) {
	out := `1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host \       valid_lft forever preferred_lft forever
27: eth0    inet 172.30.4.10/24 brd 172.30.4.255 scope global eth0\       valid_lft forever preferred_lft forever
27: eth0    inet6 fe80::42:acff:fe1e:40a/64 scope link \       valid_lft forever preferred_lft forever
`
	got := hostAddrs(out)
	want := []string{"127.0.0.1", "::1", "172.30.4.10", "fe80::42:acff:fe1e:40a"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i, w := range want {
		if got[i] != netip.MustParseAddr(w) {
			t.Errorf("address %d: %s, want %s", i, got[i], w)
		}
	}
}

// inspectOutput is what inspectScript prints on a converged host.
func inspectOutput(bind, maxmem string) string {
	return `active=active
enabled=enabled
exporter_active=active
ping=PONG 
noauth=NOAUTH Authentication required. 
config maxmemory=` + maxmem + `
config appendonly=yes
config bind=` + bind + `
config appendfsync=everysec
config protected-mode=yes
config maxmemory-policy=noeviction
info loading:0
info rdb_last_bgsave_status:ok
info aof_enabled:1
info aof_last_write_status:ok
info used_memory:1021456
info maxmemory:268435456
info maxmemory_policy:noeviction
info connected_clients:3
redis_up=1
`
}

func TestParseInspect(t *testing.T) {
	c := testConfig()
	var st State
	parseInspect(inspectOutput("127.0.0.1 -::1 10.0.0.5", "268435456"), c, &st)
	if !st.Active || !st.Enabled || !st.Ping || !st.AuthRequired || !st.RunningInSync || !st.ProtectedMode ||
		!st.SessionsSafe || !st.AOFLastWriteOK || !st.RDBLastSaveOK || st.Loading || !st.ExporterActive || !st.ExporterUp {
		t.Errorf("converged host misread: %+v", st)
	}
	if st.UsedMemoryBytes != 1021456 || st.MaxMemoryBytes != 268435456 || st.ConnectedClients != 3 || st.AppendFsync != "everysec" {
		t.Errorf("counters misread: %+v", st)
	}
	if p := st.Problems(); len(p) != 0 {
		t.Errorf("problems on a converged host: %v", p)
	}

	var stale State
	parseInspect(inspectOutput("127.0.0.1 -::1", "0"), c, &stale)
	if stale.RunningInSync {
		t.Error("a Redis still on the image's bind line and no maxmemory is not in sync")
	}

	var down State
	parseInspect("active=inactive\nenabled=enabled\nexporter_active=active\nping=Could not connect to Redis at 10.0.0.5:6379: Connection refused \nnoauth=Could not connect \nredis_up=0\n", c, &down)
	if down.Active || down.Ping || down.ExporterUp {
		t.Errorf("stopped Redis misread: %+v", down)
	}
	p := strings.Join(down.Problems(), "\n")
	for _, want := range []string{"redis-server is not running", "Connection refused", "redis_up is not 1"} {
		if !strings.Contains(p, want) {
			t.Errorf("problems lack %q:\n%s", want, p)
		}
	}

	var evicting State
	out := strings.Replace(inspectOutput("127.0.0.1 -::1 10.0.0.5", "268435456"), "maxmemory-policy=noeviction", "maxmemory-policy=allkeys-lru", 1)
	parseInspect(out, c, &evicting)
	if evicting.SessionsSafe || !strings.Contains(strings.Join(evicting.Problems(), "\n"), "sessions are not safe") {
		t.Errorf("an evicting Redis must be reported: %+v", evicting)
	}
}

// fakeRedisHost scripts a Fake as a converged Redis host; restarts counts the restarts of each service and
// *inspect is what the inspection script prints.
func fakeRedisHost(restarts map[string]int, inspect *string) *remote.Fake {
	f := remote.NewFake("")
	f.Strict = true
	f.On(`^ip -o addr show$`, remote.Result{Stdout: []byte("2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\n")})
	f.On(`^systemctl daemon-reload$`, remote.Result{})
	f.OnFunc(`^svc=`, func(c remote.Cmd) (remote.Result, error) {
		svc := strings.TrimPrefix(strings.SplitN(c.Command, "\n", 2)[0], "svc=")
		if strings.Contains(c.Command, "if [ 1 = 1 ]") {
			restarts[svc]++
			return remote.Result{Stdout: []byte("changed\n")}, nil
		}
		return remote.Result{}, nil
	})
	f.On(`redis-cli --no-auth-warning -h "\$addr" -p 6379 ping 2>&1\) && \[`, remote.Result{})
	f.On(`grep -qx 'redis_up 1'`, remote.Result{})
	f.OnFunc(`^p=`, func(c remote.Cmd) (remote.Result, error) {
		// InspectScript: answer from the fake's file table.
		path := strings.TrimPrefix(strings.SplitN(c.Command, "\n", 2)[0], "p=")
		file, ok := f.File(strings.Trim(path, "'"))
		if !ok {
			return remote.Result{Stdout: []byte("missing\n")}, nil
		}
		u, _ := remote.NewUpload(f.Name(), file)
		return remote.Result{Stdout: []byte("present " + u.SHA256 + " " + u.Mode + " 0 0 " + file.Owner + " " + file.Group + "\n")}, nil
	})
	f.OnFunc(`^IFS= read -r REDISCLI_AUTH \|\| true\nexport REDISCLI_AUTH\naddr=.*\nport=`, func(remote.Cmd) (remote.Result, error) {
		return remote.Result{Stdout: []byte(*inspect)}, nil
	})
	return f
}

func TestConfigureIdempotentAndSecret(t *testing.T) {
	ctx := context.Background()
	restarts := map[string]int{}
	inspect := inspectOutput("127.0.0.1 -::1 10.0.0.5", "268435456")
	f := fakeRedisHost(restarts, &inspect)
	c := testConfig()

	changed, err := Configure(ctx, f, c)
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Error("first Configure reported no change")
	}
	if restarts[redisService] != 1 || restarts[exporterService] != 1 {
		t.Errorf("restarts after the first Configure: %v, want one each", restarts)
	}
	if got := f.LocksTaken(); len(got) != 1 || got[0] != "redis" {
		t.Errorf("locks: %v", got)
	}
	site, ok := f.File(SiteConfPath)
	if !ok || !strings.Contains(string(site.Content), "requirepass ") {
		t.Fatalf("site file not written: %+v", site)
	}

	changed, err = Configure(ctx, f, c)
	if err != nil {
		t.Fatal(err)
	}
	if changed {
		t.Error("second Configure reported a change")
	}
	if restarts[redisService] != 1 || restarts[exporterService] != 1 {
		t.Errorf("the second Configure restarted something: %v", restarts)
	}

	// A new memory limit restarts Redis only.
	c.MaxMemoryMB = 512
	_, err = Configure(ctx, f, c)
	if err == nil || !strings.Contains(err.Error(), "does not have the configured bind/maxmemory") {
		t.Errorf("Configure must fail while Redis does not run with the new maxmemory (the scripted one has 256 MiB): %v", err)
	}
	inspect = inspectOutput("127.0.0.1 -::1 10.0.0.5", "536870912")
	if changed, err := Configure(ctx, f, c); err != nil || changed {
		t.Errorf("Configure once Redis runs with 512 MiB: changed %t, %v", changed, err)
	}
	if restarts[redisService] != 2 || restarts[exporterService] != 1 {
		t.Errorf("restarts after a maxmemory change: %v, want redis 2, exporter 1", restarts)
	}

	// The password never travels on a command line; it is redacted wherever it is used.
	for _, call := range f.Calls() {
		if strings.Contains(call.Command, c.Password) {
			t.Errorf("the password is on a command line: %s", call.Command)
		}
		if strings.Contains(string(call.Stdin), c.Password) && !containsString(call.Secrets, c.Password) {
			t.Errorf("step %q gets the password without listing it in Secrets", call.Step())
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestConfigureRefusesForeignAddress(t *testing.T) {
	inspect := inspectOutput("127.0.0.1 -::1 10.0.0.5", "268435456")
	f := fakeRedisHost(map[string]int{}, &inspect)
	c := testConfig()
	c.BindAddress = "10.0.0.99"
	_, err := Configure(context.Background(), f, c)
	if err == nil || !strings.Contains(err.Error(), "not an address of this host") {
		t.Fatalf("err = %v", err)
	}
	if len(f.Uploads()) != 0 {
		t.Error("files were written before the address was checked")
	}
}

func TestInspectDetectsDrift(t *testing.T) {
	ctx := context.Background()
	inspect := inspectOutput("127.0.0.1 -::1 10.0.0.5", "268435456")
	f := fakeRedisHost(map[string]int{}, &inspect)
	c := testConfig()
	if _, err := Configure(ctx, f, c); err != nil {
		t.Fatal(err)
	}
	st, err := Inspect(ctx, f, c)
	if err != nil {
		t.Fatal(err)
	}
	if !st.InSync || len(st.Problems()) != 0 {
		t.Fatalf("converged host: %+v", st)
	}
	site, _ := f.File(SiteConfPath)
	site.Content = append(site.Content, "maxmemory 1mb\n"...)
	f.SetFile(site)
	pw, _ := f.File(ExporterPasswordPath)
	pw.Mode = 0o644
	f.SetFile(pw)
	if st, err = Inspect(ctx, f, c); err != nil {
		t.Fatal(err)
	}
	d := strings.Join(st.Drift, "\n")
	if st.InSync || !strings.Contains(d, SiteConfPath+" was changed") || !strings.Contains(d, ExporterPasswordPath+" has mode 644") {
		t.Errorf("drift not reported: %+v", st)
	}
	if strings.Contains(d, c.Password) {
		t.Error("drift report holds the password")
	}
}
