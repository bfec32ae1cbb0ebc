package redis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/redis"
	"github.com/mohd-dev/mohd/internal/remote"
)

// labPassword has every character that needs quoting somewhere: Redis's configuration, JSON, the shell.
const labPassword = `lab pass "with" $pecial 'chars' \ and ` + "`backticks`"

// asClient runs redis-cli on host against addr; auth, when set, travels in REDISCLI_AUTH through a file
// (a test's docker exec has it on its command line otherwise).
func asClient(t *testing.T, h *lab.Host, addr, auth, args string) string {
	t.Helper()
	script := "timeout 10 redis-cli -h " + addr + " " + args + " 2>&1"
	if auth != "" {
		labtest.Exec(t, h, "umask 077; cat > /root/redis-auth <<'MOHD_EOF'\n"+auth+"\nMOHD_EOF")
		script = "REDISCLI_AUTH=$(cat /root/redis-auth) " + script
	}
	out, _ := h.Exec(context.Background(), script)
	return strings.TrimSpace(out)
}

func TestLabRedis(t *testing.T) {
	l := labtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	imgs, err := lab.EnsureRoleImages(ctx, lab.RoleImageOptions{Roles: []string{"redis"}, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	hosts := labtest.Start(t, l, lab.RoleHostSpec("redis1", imgs[0]), lab.HostSpec{Name: "client"})
	srv, client := hosts[0], hosts[1]
	rh := labtest.Remote(t, srv)

	// The client gets redis-cli while the server is configured.
	aptDone := make(chan error, 1)
	go func() {
		out, err := client.Exec(ctx, "export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends redis-tools >/dev/null")
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		aptDone <- err
	}()

	c := redis.Config{BindAddress: srv.Addr, Password: labPassword, MaxMemoryMB: 128}
	start := time.Now()
	changed, err := redis.Configure(ctx, rh, c)
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatal("first Configure reported no change")
	}
	t.Logf("first Configure: %s", time.Since(start).Round(100*time.Millisecond))
	start = time.Now()
	if changed, err = redis.Configure(ctx, rh, c); err != nil || changed {
		t.Fatalf("second Configure: changed %t, %v", changed, err)
	}
	t.Logf("second Configure (nothing to do): %s", time.Since(start).Round(100*time.Millisecond))

	if got := labtest.Exec(t, srv, "stat -c '%a %U:%G' "+redis.SiteConfPath+" "+redis.ExporterPasswordPath); got != "640 redis:redis\n640 root:prometheus" {
		t.Errorf("modes and owners:\n%s", got)
	}
	// The secret is on no command line, in no unit property.
	if got := labtest.Exec(t, srv, "cat /proc/$(pidof prometheus-redis-exporter)/cmdline | tr '\\0' ' '; echo; ps -eo args; systemctl show prometheus-redis-exporter -p Environment -p ExecStart"); strings.Contains(got, "$pecial") {
		t.Errorf("the password shows in a command line or unit property:\n%s", got)
	}
	if got := labtest.Exec(t, srv, "curl -fsS http://127.0.0.1:9121/metrics | grep -E '^redis_up '"); got != "redis_up 1" {
		t.Errorf("the exporter does not scrape Redis with the password:\n%s", got)
	}

	if err := <-aptDone; err != nil {
		t.Fatalf("installing redis-tools on the client: %v", err)
	}
	if got := asClient(t, client, srv.Addr, "", "ping"); !strings.Contains(got, "NOAUTH") {
		t.Errorf("redis-cli without a password from %s: %q, want NOAUTH", client.Name, got)
	}
	if got := asClient(t, client, srv.Addr, "wrong", "ping"); !strings.Contains(got, "WRONGPASS") {
		t.Errorf("redis-cli with a wrong password: %q, want WRONGPASS", got)
	}
	if got := asClient(t, client, srv.Addr, labPassword, "ping"); got != "PONG" {
		t.Errorf("redis-cli with the password from %s: %q, want PONG", client.Name, got)
	}
	// Sessions survive a restart (append-only file).
	if got := asClient(t, client, srv.Addr, labPassword, "set mohd:session:probe alive"); got != "OK" {
		t.Fatalf("SET: %q", got)
	}
	labtest.Exec(t, srv, "systemctl restart redis-server")
	var got string
	for i := 0; i < 40; i++ {
		if got = asClient(t, client, srv.Addr, labPassword, "get mohd:session:probe"); got == "alive" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if got != "alive" {
		t.Errorf("a key did not survive a restart: %q", got)
	}

	st, err := redis.Inspect(ctx, rh, c)
	if err != nil {
		t.Fatal(err)
	}
	if p := st.Problems(); !st.InSync || len(p) > 0 {
		t.Fatalf("converged host: %+v\n%v", st, p)
	}
	if !st.ProtectedMode || !st.SessionsSafe || !st.AuthRequired || st.MaxMemoryBytes != 128<<20 || st.UsedMemoryBytes == 0 || st.ConnectedClients < 1 {
		t.Errorf("converged host: %+v", st)
	}
	t.Logf("Redis: %d bytes used of %d, %d clients, bind %q", st.UsedMemoryBytes, st.MaxMemoryBytes, st.ConnectedClients, st.Bind)

	t.Run("hand edit", func(t *testing.T) {
		labtest.Exec(t, srv, "echo 'maxmemory 1mb' >> "+redis.SiteConfPath)
		st, err := redis.Inspect(ctx, rh, c)
		if err != nil {
			t.Fatal(err)
		}
		if st.InSync || !strings.Contains(strings.Join(st.Drift, "\n"), redis.SiteConfPath) {
			t.Errorf("a hand edit is not reported: %+v", st)
		}
		if !st.Ping || !st.RunningInSync {
			t.Errorf("the running Redis is unchanged until a restart: %+v", st)
		}
		repair(t, rh, c)
	})

	t.Run("stopped service", func(t *testing.T) {
		labtest.Exec(t, srv, "systemctl stop redis-server")
		st, err := redis.Inspect(ctx, rh, c)
		if err != nil {
			t.Fatal(err)
		}
		if st.Active || st.Ping || !st.InSync || st.ExporterUp {
			t.Errorf("a stopped Redis: %+v", st)
		}
		if p := strings.Join(st.Problems(), "\n"); !strings.Contains(p, "redis-server is not running") {
			t.Errorf("problems: %s", p)
		}
		repair(t, rh, c)
	})

	t.Run("stopped exporter and changed limit", func(t *testing.T) {
		labtest.Exec(t, srv, "systemctl stop prometheus-redis-exporter")
		c2 := c
		c2.MaxMemoryMB = 0
		if st, err := redis.Inspect(ctx, rh, c2); err != nil || st.InSync || st.ExporterActive || st.RunningInSync {
			t.Errorf("Inspect for a new limit with the exporter stopped: %+v %v", st, err)
		}
		repair(t, rh, c2)
		if st, err := redis.Inspect(ctx, rh, c2); err != nil || st.MaxMemoryBytes != 0 {
			t.Errorf("maxmemory after removing the limit: %+v %v", st, err)
		}
	})
}

// repair runs Configure, which must change the host and converge it; a second run changes nothing.
func repair(t *testing.T, h remote.Host, c redis.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	changed, err := redis.Configure(ctx, h, c)
	if err != nil || !changed {
		t.Fatalf("repairing Configure: changed %t, %v", changed, err)
	}
	st, err := redis.Inspect(ctx, h, c)
	if err != nil || len(st.Problems()) > 0 {
		t.Fatalf("after the repair: %+v %v", st.Problems(), err)
	}
	if changed, err = redis.Configure(ctx, h, c); err != nil || changed {
		t.Fatalf("Configure after the repair: changed %t, %v", changed, err)
	}
}
