package lab_test

// Capability probes: what this Docker engine lets lab hosts do, checked for real on lab hosts. Each test
// starts its own lab and checks one capability; docs/lab-capabilities.md records the outcome and what it
// means for the project's tests. A kernel feature that is truly absent makes its test skip, loudly, after
// proving the absence; everything else asserts.
//
//	go test ./internal/lab/ -run TestCapability -v -timeout 20m
//
// The probes install Debian packages inside lab hosts with apt-get (the Debian mirror must be reachable from
// the containers). Traffic stays between the lab's containers and the test process.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
)

// ---------------------------------------------------------------------------------------------------------
// helpers

// capCtx bounds one probe so a hung step fails the test instead of eating the suite's timeout.
func capCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dockerCLI runs the Docker CLI from the test (for flags HostSpec has no field for), returning combined output.
func dockerCLI(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// subnetAddr is the address with the given last byte in the lab's /24.
func subnetAddr(l *lab.Lab, last byte) string {
	ip := make(net.IP, 4)
	copy(ip, l.Subnet.IP.To4())
	ip[3] = last
	return ip.String()
}

// rawHost starts a container with exactly the lab's flags for systemd as PID 1 (see lab.go) plus extra
// docker-run flags that HostSpec cannot express, on the lab's network and with the lab's label, so the
// lab's Close removes it. It returns the container's name once systemd has finished booting (or failed to).
func rawHost(t *testing.T, l *lab.Lab, name string, last byte, extra ...string) (container, state string, err error) {
	t.Helper()
	ctx := capCtx(t, 3*time.Minute)
	image, err := lab.EnsureBaseImage(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	container = l.ID + "-" + name
	args := []string{"run", "-d", "--name", container, "--hostname", name,
		"--label", lab.Label + "=" + l.ID, "--network", l.Network, "--ip", subnetAddr(l, last),
		"--stop-signal", "SIGRTMIN+3",
		"--tmpfs", "/run:exec,mode=755", "--tmpfs", "/run/lock", "--tmpfs", "/tmp:exec,mode=1777",
		"-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro"}
	args = append(args, extra...)
	args = append(args, image, "/sbin/init")
	if out, err := dockerCLI(ctx, args...); err != nil {
		return container, "", fmt.Errorf("docker run %s: %v: %s", strings.Join(extra, " "), err, out)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, _ := dockerCLI(ctx, "exec", container, "systemctl", "is-system-running")
		if out == "running" || out == "degraded" || time.Now().After(deadline) {
			return container, out, nil
		}
		if st, _ := dockerCLI(ctx, "inspect", "-f", "{{.State.Running}}", container); st != "true" {
			code, _ := dockerCLI(ctx, "inspect", "-f", "{{.State.ExitCode}}", container)
			return container, "exited with code " + code, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rawExec runs a root shell command in a container started by rawHost.
func rawExec(ctx context.Context, container, script string) (string, error) {
	return dockerCLI(ctx, "exec", container, "sh", "-c", script)
}

// aptJob is one host's package installation.
type aptJob struct {
	h    *lab.Host
	pkgs []string
}

// aptInstall installs Debian packages on each host in parallel (apt-get update first, as on a fresh VM).
func aptInstall(t *testing.T, hosts []*lab.Host, pkgs ...string) {
	t.Helper()
	jobs := make([]aptJob, len(hosts))
	for i, h := range hosts {
		jobs[i] = aptJob{h, pkgs}
	}
	aptInstallJobs(t, jobs...)
}

// aptInstallJobs runs several hosts' installations in parallel.
func aptInstallJobs(t *testing.T, jobs ...aptJob) {
	t.Helper()
	ctx := capCtx(t, 3*time.Minute)
	start := time.Now()
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			script := "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq >/tmp/apt.log 2>&1 && " +
				"apt-get install -y -qq --no-install-recommends " + strings.Join(j.pkgs, " ") + " >>/tmp/apt.log 2>&1 " +
				"|| { tail -20 /tmp/apt.log; exit 1; }"
			if out, err := j.h.Exec(ctx, script); err != nil {
				errs[i] = fmt.Errorf("apt-get install %s on %s: %w: %s", strings.Join(j.pkgs, " "), j.h.Name, err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var what []string
	for _, j := range jobs {
		what = append(what, j.h.Name+": "+strings.Join(j.pkgs, " "))
	}
	t.Logf("TIMING apt-get install (%s): %s", strings.Join(what, "; "), time.Since(start).Round(100*time.Millisecond))
}

// inspect decodes `docker inspect` of a container.
func inspect(t *testing.T, container string) map[string]any {
	t.Helper()
	out, err := dockerCLI(capCtx(t, time.Minute), "inspect", container)
	if err != nil {
		t.Fatalf("docker inspect %s: %v: %s", container, err, out)
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 1 {
		t.Fatalf("docker inspect %s: %v", container, err)
	}
	return v[0]
}

// machineHas reports whether the machine's kernel lists fs in /proc/filesystems (containers share it).
func machineHas(t *testing.T, fs string) bool {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		t.Fatal(err)
	}
	return hasFS(string(b), fs)
}

func hasFS(procFilesystems, fs string) bool {
	for _, line := range strings.Split(procFilesystems, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == fs {
			return true
		}
	}
	return false
}

// machineCapBnd is the test process's capability bounding set (the engine runs with the same one here).
func machineCapBnd() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "CapBnd:") {
			v := strings.TrimSpace(strings.TrimPrefix(line, "CapBnd:"))
			if n, err := strconv.ParseUint(v, 16, 64); err == nil && n&(1<<24) == 0 {
				return v + " (no CAP_SYS_RESOURCE)"
			}
			return v
		}
	}
	return "unknown"
}

// kernelConfig returns the CONFIG_ line for opt from /proc/config.gz, or "" where the kernel does not expose it.
func kernelConfig(opt string) string {
	out, err := exec.Command("sh", "-c", "zcat /proc/config.gz 2>/dev/null | grep -E '(^|# )"+opt+"[= ]'").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// sshHostKeyAt returns the ed25519 host key that the SSH server at addr:22 presents (authorized_keys form,
// without comment), completing only the key exchange: which host holds a VIP is told by its host key.
func sshHostKeyAt(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "22"), 3*time.Second)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var got string
	errGot := errors.New("host key captured")
	_, _, _, err = ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:              "probe",
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
			return errGot
		},
	})
	if got != "" {
		return got, nil
	}
	return "", err
}

// pingFromTest sends one ICMP echo from the test process (raw socket: the test runs as root) and waits
// for the reply from addr.
func pingFromTest(addr string, seq int) error {
	c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return fmt.Errorf("raw ICMP socket: %w", err)
	}
	defer func() { _ = c.Close() }()
	id := os.Getpid() & 0xffff
	msg := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'm', 'o', 'h', 'd'}
	cs := icmpChecksum(msg)
	msg[2], msg[3] = byte(cs>>8), byte(cs)
	dst := &net.IPAddr{IP: net.ParseIP(addr)}
	if _, err := c.WriteTo(msg, dst); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no ICMP echo reply from %s: %w", addr, err)
		}
		// Replies to other processes' pings arrive on a raw socket too: match source, type, id and seq.
		if from.String() == addr && n >= 8 && buf[0] == 0 &&
			int(buf[4])<<8|int(buf[5]) == id && int(buf[6])<<8|int(buf[7]) == seq {
			return nil
		}
	}
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// pingLoss runs ping on h towards addr and returns the packet-loss percentage ping reports.
func pingLoss(ctx context.Context, h *lab.Host, addr string, count int) (int, string, error) {
	out, _ := h.Exec(ctx, fmt.Sprintf("ping -q -n -c %d -i 0.02 -W 1 %s 2>&1 || true", count, addr))
	i := strings.Index(out, "% packet loss")
	if i < 0 {
		return 0, out, fmt.Errorf("no ping summary from %s: %s", h.Name, out)
	}
	j := strings.LastIndexAny(out[:i], " ,") + 1
	f, err := strconv.ParseFloat(out[j:i], 64)
	return int(f + 0.5), out, err
}

// ---------------------------------------------------------------------------------------------------------
// 1. systemd as PID 1 without --privileged; --cgroupns=private on this engine

func TestCapabilitySystemdUnprivileged(t *testing.T) {
	start := time.Now()
	l := labtest.New(t)
	h := labtest.Start(t, l, lab.HostSpec{Name: "sd"})[0]
	t.Logf("TIMING lab host up (systemd booted, SSH answering): %s", time.Since(start).Round(100*time.Millisecond))
	ctx := capCtx(t, 3*time.Minute)

	info, err := dockerCLI(ctx, "info", "--format", "cgroup v{{.CgroupVersion}} driver={{.CgroupDriver}} storage={{.Driver}} kernel={{.KernelVersion}} engine={{.ServerVersion}}")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("engine: %s", info)

	if got := labtest.Exec(t, h, "ps -p 1 -o comm="); got != "systemd" {
		t.Fatalf("PID 1 is %q, want systemd", got)
	}
	if got, _ := h.Exec(ctx, "systemctl is-system-running --wait"); got != "running" {
		failed, _ := h.Exec(ctx, "systemctl --failed --no-legend")
		t.Fatalf("systemd state %q, failed units: %s", got, failed)
	}
	hc := inspect(t, h.Container)["HostConfig"].(map[string]any)
	if hc["Privileged"] != false {
		t.Fatalf("the lab host runs privileged: %v", hc["Privileged"])
	}
	// Every lab host gets exactly these two (systemd's unit sandboxing and the roles' firewalls need them).
	if caps := fmt.Sprint(hc["CapAdd"]); caps != "[CAP_NET_ADMIN CAP_SYS_ADMIN]" {
		t.Fatalf("a host without HostSpec.CapAdd got capabilities %s, want SYS_ADMIN and NET_ADMIN only", caps)
	}
	t.Logf("flags in force: Privileged=%v Tmpfs=%v Binds=%v CgroupnsMode=%v", hc["Privileged"], hc["Tmpfs"], hc["Binds"], hc["CgroupnsMode"])
	// systemd can manage services: a transient unit runs and a real one restarts.
	labtest.Exec(t, h, "systemd-run --wait -q /bin/true && systemctl restart ssh && systemctl is-active ssh")

	// Recorded, not asserted: --privileged asks for every capability, and the engine's own bounding set lacks
	// some (CAP_SYS_RESOURCE on the probe machine), so runc refuses it; single --cap-add flags are the way.
	image, _ := lab.EnsureBaseImage(ctx, nil)
	out, err := dockerCLI(ctx, "run", "--rm", "--label", lab.Label+"="+l.ID, "--privileged", image, "true")
	t.Logf("docker run --privileged: err=%v %s; the engine's capability bounding set: %s", err,
		strings.Join(strings.Fields(out), " "), machineCapBnd())

	t.Run("cgroupns=private", func(t *testing.T) {
		c, state, err := rawHost(t, l, "sd-cgns", 240, "--cgroupns=private")
		if err != nil {
			t.Fatalf("the engine refused --cgroupns=private: %v", err)
		}
		t.Logf("--cgroupns=private with the lab's flags: systemd state %q", state)
		if state != "running" {
			t.Fatalf("systemd did not reach running under --cgroupns=private: %q", state)
		}
		cg, _ := rawExec(ctx, c, "head -1 /proc/1/cgroup")
		// On cgroup v1 the bind-mounted host tree and the private namespace disagree: PID 1's cgroup shows as
		// "/../../init.scope", outside the namespace's root. It boots, but the host namespace is the clean setup.
		t.Logf("PID 1 cgroup under --cgroupns=private: %s", cg)
	})
}

// ---------------------------------------------------------------------------------------------------------
// 2a. kernel NFS (server and client)

func TestCapabilityKernelNFS(t *testing.T) {
	l := labtest.New(t)
	hosts := labtest.Start(t, l,
		lab.HostSpec{Name: "knfs-srv", CapAdd: []string{"SYS_ADMIN"}, Volumes: []string{"/srv/export"}},
		lab.HostSpec{Name: "knfs-cli", CapAdd: []string{"SYS_ADMIN"}})
	srv, cli := hosts[0], hosts[1]
	ctx := capCtx(t, 3*time.Minute)

	inContainer := labtest.Exec(t, cli, "cat /proc/filesystems")
	machine := map[string]bool{"nfs": machineHas(t, "nfs"), "nfs4": machineHas(t, "nfs4"), "nfsd": machineHas(t, "nfsd")}
	container := map[string]bool{"nfs": hasFS(inContainer, "nfs"), "nfs4": hasFS(inContainer, "nfs4"), "nfsd": hasFS(inContainer, "nfsd")}
	t.Logf("/proc/filesystems: machine %v, container %v; kernel config: %q %q(CONFIG_NFS_FS) %q", machine, container,
		kernelConfig("CONFIG_NETWORK_FILESYSTEMS"), kernelConfig("CONFIG_NFS_FS"), kernelConfig("CONFIG_MODULES"))

	aptInstall(t, []*lab.Host{srv, cli}, "nfs-kernel-server", "nfs-common")
	labtest.Exec(t, srv, "echo ok > /srv/export/probe.txt && "+
		"echo '/srv/export "+l.Subnet.String()+"(rw,no_root_squash,no_subtree_check,fsid=1)' > /etc/exports")
	serverOut, serverErr := srv.Exec(ctx, "systemctl restart nfs-server 2>&1")
	serverState, _ := srv.Exec(ctx, "systemctl is-active nfs-server proc-fs-nfsd.mount; "+
		"journalctl -u proc-fs-nfsd.mount --no-pager -o cat | grep -m1 -i 'unknown filesystem' || true")
	t.Logf("nfs-kernel-server with CAP_SYS_ADMIN: restart err=%v %s; state: %s", serverErr, serverOut, serverState)

	mountOut, mountErr := cli.Exec(ctx, "mkdir -p /mnt/nfs && mount -t nfs4 -o timeo=30,retrans=1 "+srv.Addr+":/srv/export /mnt/nfs 2>&1")
	rawOut, _ := cli.Exec(ctx, "mount -i -t nfs4 "+srv.Addr+":/srv/export /mnt/nfs 2>&1; "+
		"mkdir -p /tmp/nfsd && mount -t nfsd nfsd /tmp/nfsd 2>&1; true")
	t.Logf("client mount.nfs4 with CAP_SYS_ADMIN: err=%v %s; mount(2) without helper: %s", mountErr, mountOut, rawOut)

	if !container["nfs"] && !container["nfs4"] && !container["nfsd"] {
		// Proven absent: the kernel has no nfs/nfsd, the server's nfsd mount and the client's mount both fail.
		if serverErr == nil || mountErr == nil {
			t.Fatalf("kernel lists no NFS yet a step succeeded: server err=%v, client err=%v", serverErr, mountErr)
		}
		t.Skipf("NOT AVAILABLE on this engine: kernel NFS. /proc/filesystems (machine and container) has no "+
			"nfs, nfs4 or nfsd; kernel config %q (so no CONFIG_NFS_FS/CONFIG_NFSD: %q), %q (no loadable modules); nfs-kernel-server fails "+
			"(%s); `mount -t nfs4` from a container with CAP_SYS_ADMIN fails (%s; %s). Use the user-space "+
			"server (TestCapabilityGaneshaNFS) and a FUSE client instead.",
			kernelConfig("CONFIG_NETWORK_FILESYSTEMS"), kernelConfig("CONFIG_NFS_FS"), kernelConfig("CONFIG_MODULES"),
			strings.Join(strings.Fields(serverState), " "), strings.TrimSpace(mountOut),
			strings.Join(strings.Fields(rawOut), " "))
	}

	// The kernel has NFS: the server and the mount must really work.
	if serverErr != nil {
		t.Fatalf("the kernel lists NFS but nfs-kernel-server does not start: %v %s %s", serverErr, serverOut, serverState)
	}
	if mountErr != nil {
		t.Fatalf("the kernel lists NFS but the client cannot mount: %v %s", mountErr, mountOut)
	}
	if got := labtest.Exec(t, cli, "cat /mnt/nfs/probe.txt && echo w > /mnt/nfs/w.txt && umount /mnt/nfs"); got != "ok" {
		t.Fatalf("read over kernel NFS: %q", got)
	}
	if got := labtest.Exec(t, srv, "cat /srv/export/w.txt"); got != "w" {
		t.Fatalf("write over kernel NFS: %q", got)
	}
}

// ---------------------------------------------------------------------------------------------------------
// 2b. user-space NFS: nfs-ganesha under systemd, verified with libnfs's user-space client

// ganeshaConf exports /srv/moodledata as /moodledata to the given clients only. Mount_Path_Pseudo makes
// NFSv3 MOUNT requests use the pseudo path too, so nfs://ADDR/moodledata works for v3 and v4 alike (without
// it v3 clients must ask for the real Path, /srv/moodledata, and get MNT3ERR_ACCES for /moodledata). The
// export-level Access_Type is the default for every client no CLIENT block matches: it must be None, or
// the CLIENT list restricts nothing (Access_Type = RW there exports to the whole network).
func ganeshaConf(clients string) string {
	return `NFS_CORE_PARAM { Protocols = 3, 4; Enable_NLM = false; Enable_RQUOTA = false; Mount_Path_Pseudo = true; }
NFSV4 { Graceless = true; }
EXPORT {
	Export_Id = 1;
	Path = /srv/moodledata;
	Pseudo = /moodledata;
	Access_Type = None;
	Squash = No_Root_Squash;
	Protocols = 3, 4;
	Transports = TCP;
	SecType = sys;
	CLIENT { Clients = ` + clients + `; Access_Type = RW; }
	FSAL { Name = VFS; }
}
`
}

func TestCapabilityGaneshaNFS(t *testing.T) {
	l := labtest.New(t)
	// FSAL_VFS works on file handles: name_to_handle_at, which Docker's default seccomp profile allows only
	// with CAP_SYS_ADMIN, and open_by_handle_at, which needs CAP_DAC_READ_SEARCH. Without the first the export
	// fails to load ("Could not get handle for path"), without the second every READDIR fails with NFS3ERR_PERM.
	// moodledata is an anonymous volume, as a data disk would be (the export also works on the overlay root).
	hosts := labtest.Start(t, l,
		lab.HostSpec{Name: "nfs", CapAdd: []string{"SYS_ADMIN", "DAC_READ_SEARCH"}, Volumes: []string{"/srv/moodledata"}},
		lab.HostSpec{Name: "web1"},
		lab.HostSpec{Name: "outsider"})
	srv, cli, outsider := hosts[0], hosts[1], hosts[2]
	ctx := capCtx(t, 3*time.Minute)
	aptInstallJobs(t,
		aptJob{srv, []string{"nfs-ganesha", "nfs-ganesha-vfs"}},
		aptJob{cli, []string{"libnfs-utils"}},
		aptJob{outsider, []string{"libnfs-utils"}})

	start := time.Now()
	// Only web1 is a client of the export, as only the web hosts are on a real site.
	labtest.Exec(t, srv, "echo hello-from-nfs > /srv/moodledata/probe.txt && cat > /etc/ganesha/ganesha.conf <<'EOF'\n"+
		ganeshaConf(cli.Addr+"/32")+"EOF\nsystemctl restart nfs-ganesha")
	if out, err := srv.Exec(ctx, "systemctl is-active nfs-ganesha"); err != nil || out != "active" {
		t.Fatalf("nfs-ganesha is %q: %v", out, err)
	}
	url := "nfs://" + srv.Addr + "/moodledata"
	var ls string
	err := func() error {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		for {
			out, err := cli.Exec(wctx, "nfs-ls "+url+" 2>&1")
			if err == nil && strings.Contains(out, "probe.txt") {
				ls = out
				return nil
			}
			if wctx.Err() != nil {
				return fmt.Errorf("nfs-ls %s: %v: %s", url, err, out)
			}
			time.Sleep(time.Second)
		}
	}()
	if err != nil {
		log, _ := srv.Exec(ctx, "tail -20 /var/log/ganesha/ganesha.log")
		t.Fatalf("%v\nganesha log:\n%s", err, log)
	}
	if crit, _ := srv.Exec(ctx, "grep -E ' :(CRIT|MAJ) :' /var/log/ganesha/ganesha.log | grep -viE 'krb5|keytab|principal' || true"); crit != "" {
		t.Fatalf("ganesha logged critical errors:\n%s", crit)
	}
	t.Logf("TIMING ganesha configured and serving: %s; nfs-ls (v3) from web1:\n%s", time.Since(start).Round(100*time.Millisecond), ls)

	for _, v := range []struct{ name, query string }{{"v3", ""}, {"v4", "?version=4"}} {
		if got := labtest.Exec(t, cli, "nfs-cat "+url+"/probe.txt"+v.query); got != "hello-from-nfs" {
			t.Fatalf("NFS%s read: %q", v.name, got)
		}
		labtest.Exec(t, cli, "echo written-by-web1-"+v.name+" > /tmp/w && nfs-cp /tmp/w "+url+"/w-"+v.name+".txt"+v.query)
		if got := labtest.Exec(t, srv, "cat /srv/moodledata/w-"+v.name+".txt"); got != "written-by-web1-"+v.name {
			t.Fatalf("NFS%s write landed as %q on the server", v.name, got)
		}
		if got := labtest.Exec(t, cli, "nfs-ls "+url+v.query); !strings.Contains(got, "w-"+v.name+".txt") {
			t.Fatalf("NFS%s listing misses the written file:\n%s", v.name, got)
		}
	}
	// Squash = No_Root_Squash: root's writes stay root's.
	if got := labtest.Exec(t, srv, "stat -c %u /srv/moodledata/w-v3.txt"); got != "0" {
		t.Fatalf("root's file is owned by uid %s on the server: squashed", got)
	}
	// With Mount_Path_Pseudo the real path is not an export name.
	if out, err := cli.Exec(ctx, "nfs-ls nfs://"+srv.Addr+"/srv/moodledata 2>&1"); err == nil {
		t.Fatalf("the real path should not be mountable, got:\n%s", out)
	}
	// A host outside the CLIENT list is refused, over v3 and v4.
	for _, q := range []string{"", "?version=4"} {
		if out, err := outsider.Exec(ctx, "nfs-cat "+url+"/probe.txt"+q+" 2>&1"); err == nil || strings.Contains(out, "hello-from-nfs") {
			t.Fatalf("a host outside the export's clients read it (%s): %s", q, out)
		} else {
			t.Logf("outsider refused%s: %s", q, strings.Join(strings.Fields(out), " "))
		}
	}

	// A FUSE NFS client would let web hosts mount this export on a kernel without NFS. Debian 12 ships none
	// (libnfs builds only libnfs-dev, libnfs-utils and the library); record what apt says.
	if out, err := cli.Exec(ctx, "apt-cache show fuse-nfs 2>&1"); err == nil {
		t.Logf("fuse-nfs IS packaged here, try it as the web hosts' client:\n%s", out)
	} else {
		others, _ := cli.Exec(ctx, "apt-cache search --names-only fuse | grep -E '(^|-)nfs' || true")
		t.Logf("fuse-nfs is not a Debian 12 package (apt-cache show: %s); other FUSE NFS clients: %q",
			strings.Join(strings.Fields(out), " "), others)
	}
}

// ---------------------------------------------------------------------------------------------------------
// 2c. FUSE in a lab host

func TestCapabilityFUSE(t *testing.T) {
	if !machineHas(t, "fuse") {
		t.Skipf("NOT AVAILABLE on this engine: the kernel lists no fuse in /proc/filesystems")
	}
	l := labtest.New(t)
	hosts := labtest.Start(t, l,
		lab.HostSpec{Name: "fuse-nodev", CapAdd: []string{"SYS_ADMIN"}},
		lab.HostSpec{Name: "fuse-bind", CapAdd: []string{"SYS_ADMIN"}, Volumes: []string{"/dev/fuse:/dev/fuse"}})
	nodev, bind := hosts[0], hosts[1]
	ctx := capCtx(t, 3*time.Minute)
	// HostSpec has no device field: --device /dev/fuse is given by hand, on a container with the lab's flags.
	dev, state, err := rawHost(t, l, "fuse-dev", 241, "--cap-add", "SYS_ADMIN", "--device", "/dev/fuse")
	if err != nil || state != "running" {
		t.Fatalf("host with --device /dev/fuse: %v (systemd %q)", err, state)
	}
	if out, err := nodev.Exec(ctx, "test -e /dev/fuse"); err == nil {
		t.Fatalf("a lab host has /dev/fuse without asking: %s", out)
	}
	aptInstall(t, []*lab.Host{bind}, "bindfs")
	if out, err := rawExec(ctx, dev, "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends bindfs >/dev/null 2>&1"); err != nil {
		t.Fatalf("apt-get install bindfs on %s: %v %s", dev, err, out)
	}
	mount := "mkdir -p /srv/src /mnt/b && echo via-fuse > /srv/src/f && bindfs /srv/src /mnt/b 2>&1 && cat /mnt/b/f && grep ' /mnt/b fuse' /proc/mounts >/dev/null"
	// A bind-mounted device node is there, but the devices cgroup refuses to open it.
	if out, err := bind.Exec(ctx, mount); err == nil {
		t.Fatalf("FUSE through -v /dev/fuse:/dev/fuse unexpectedly worked: %s", out)
	} else if !strings.Contains(out, "Operation not permitted") {
		t.Fatalf("FUSE through -v /dev/fuse: unexpected failure: %v %s", err, out)
	} else {
		t.Logf("-v /dev/fuse:/dev/fuse (HostSpec.Volumes) + SYS_ADMIN: refused as expected: %s", out)
	}
	out, err := rawExec(ctx, dev, mount)
	if err != nil || !strings.HasSuffix(out, "via-fuse") {
		t.Fatalf("FUSE with --device /dev/fuse + SYS_ADMIN: %v %s", err, out)
	}
	t.Logf("--device /dev/fuse + --cap-add SYS_ADMIN: bindfs mounted and read %q", out)
}

// ---------------------------------------------------------------------------------------------------------
// 3. keepalived VRRP: a VIP that fails over between two lab hosts

func keepalivedConf(prio int, vip string, unicastSrc, unicastPeer string) string {
	uni := ""
	if unicastSrc != "" {
		uni = fmt.Sprintf("\tunicast_src_ip %s\n\tunicast_peer { %s }\n", unicastSrc, unicastPeer)
	}
	return fmt.Sprintf(`global_defs { enable_script_security }
vrrp_instance VI_1 {
	state BACKUP
	interface eth0
	virtual_router_id 51
	priority %d
	advert_int 1
%s	virtual_ipaddress { %s/24 dev eth0 }
}
`, prio, uni, vip)
}

func TestCapabilityKeepalivedVRRP(t *testing.T) {
	start := time.Now()
	l := labtest.New(t)
	hosts := labtest.Start(t, l,
		lab.HostSpec{Name: "lb1", CapAdd: []string{"NET_ADMIN"}},
		lab.HostSpec{Name: "lb2", CapAdd: []string{"NET_ADMIN"}},
		lab.HostSpec{Name: "client"})
	lb1, lb2, client := hosts[0], hosts[1], hosts[2]
	ctx := capCtx(t, 3*time.Minute)
	vip := subnetAddr(l, 200)
	aptInstall(t, []*lab.Host{lb1, lb2}, "keepalived")

	holds := func(h *lab.Host) bool {
		out, err := h.Exec(ctx, "ip -4 -o addr show dev eth0")
		return err == nil && strings.Contains(out, " "+vip+"/")
	}
	// waitHolder waits until want (and only want, among the running ones) holds the VIP.
	waitHolder := func(want, other *lab.Host, otherRunning bool, within time.Duration) (time.Duration, error) {
		t0 := time.Now()
		for time.Since(t0) < within {
			if holds(want) && (!otherRunning || !holds(other)) {
				return time.Since(t0), nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return time.Since(t0), fmt.Errorf("%s did not take the VIP %s alone within %s (%s holds: %v)",
			want.Name, vip, within, other.Name, otherRunning && holds(other))
	}
	// answers checks that the VIP is served by want: its SSH host key, seen from the third host and from the
	// test process, and ICMP from both.
	answers := func(want *lab.Host) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var last string
		for {
			fromClient, _ := client.Exec(wctx, "ssh-keyscan -T 3 -t ed25519 "+vip+" 2>/dev/null | cut -d' ' -f2-3")
			fromTest, err := sshHostKeyAt(vip)
			if fromClient == want.HostKey && err == nil && fromTest == want.HostKey {
				break
			}
			last = fmt.Sprintf("client sees %q, test process sees %q (%v)", fromClient, fromTest, err)
			if wctx.Err() != nil {
				t.Fatalf("VIP %s is not served by %s: %s", vip, want.Name, last)
			}
			time.Sleep(300 * time.Millisecond)
		}
		labtest.Exec(t, client, "ping -c1 -W2 "+vip)
		var err error
		for seq := 1; seq <= 5; seq++ {
			if err = pingFromTest(vip, seq); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("ICMP from the test process to the VIP: %v", err)
		}
	}

	configure := func(unicast bool) {
		t.Helper()
		for _, p := range []struct {
			h, peer *lab.Host
			prio    int
		}{{lb1, lb2, 150}, {lb2, lb1, 100}} {
			src, peer := "", ""
			if unicast {
				src, peer = p.h.Addr, p.peer.Addr
			}
			labtest.Exec(t, p.h, "cat > /etc/keepalived/keepalived.conf <<'EOF'\n"+keepalivedConf(p.prio, vip, src, peer)+
				"EOF\nsystemctl restart keepalived && systemctl is-active keepalived")
		}
	}

	mode := "multicast (224.0.0.18, the default)"
	configure(false)
	// A backup that hears no adverts becomes master too: both holding the VIP means multicast is lost.
	if d, err := waitHolder(lb1, lb2, true, 15*time.Second); err != nil {
		t.Logf("multicast VRRP did not settle (%v): trying unicast peers", err)
		mode = "unicast (unicast_src_ip/unicast_peer)"
		configure(true)
		if _, err := waitHolder(lb1, lb2, true, 15*time.Second); err != nil {
			t.Fatalf("unicast VRRP did not settle either: %v", err)
		}
	} else {
		t.Logf("TIMING VRRP %s: lb1 MASTER with VIP %s %s after keepalived start", mode, vip, d.Round(100*time.Millisecond))
	}
	// lb2 stays BACKUP for good (it hears lb1's adverts).
	time.Sleep(3 * time.Second)
	if holds(lb2) {
		t.Fatalf("split brain: lb2 also holds the VIP in %s mode", mode)
	}
	answers(lb1)

	// Master hung (paused): the backup takes over after about 3 missed adverts.
	if err := lb1.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := waitHolder(lb2, lb1, false, 20*time.Second)
	if err != nil {
		_ = lb1.Unpause(ctx)
		t.Fatal(err)
	}
	t.Logf("TIMING failover on master pause: lb2 holds the VIP %s after the pause", d.Round(100*time.Millisecond))
	answers(lb2)
	// A paused host's processes are frozen, its kernel is not: the VIP stays configured on the paused master
	// (two hosts hold it until the unpause) and its kernel still answers ARP/ICMP/TCP handshakes for it.
	if pid, err := dockerCLI(ctx, "inspect", "-f", "{{.State.Pid}}", lb1.Container); err == nil {
		if out, err := exec.CommandContext(ctx, "nsenter", "-t", pid, "-n", "ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput(); err == nil {
			t.Logf("paused lb1 still holds the VIP in its kernel: %v", strings.Contains(string(out), " "+vip+"/"))
		}
	}
	// Back: lb1 (higher priority, preempting) takes the VIP back and lb2 releases it.
	if err := lb1.Unpause(ctx); err != nil {
		t.Fatal(err)
	}
	if d, err = waitHolder(lb1, lb2, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING failback on unpause: lb1 holds the VIP alone %s after the unpause", d.Round(100*time.Millisecond))
	answers(lb1)

	// Master shut down cleanly: keepalived resigns (priority 0) and the backup takes over at once.
	t0 := time.Now()
	if err := lb1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(t0)
	if d, err = waitHolder(lb2, lb1, false, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING failover on master stop: docker stop took %s, lb2 held the VIP %s later", stopTook.Round(100*time.Millisecond), d.Round(100*time.Millisecond))
	answers(lb2)
	// Booted again: keepalived starts with the host and preempts.
	t0 = time.Now()
	if err := lb1.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err = waitHolder(lb1, lb2, true, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING failback on boot: lb1 holds the VIP alone %s after boot started", (time.Since(t0)).Round(100*time.Millisecond))
	answers(lb1)
	t.Logf("VRRP mode that works here: %s; total %s", mode, time.Since(start).Round(100*time.Millisecond))
}

// ---------------------------------------------------------------------------------------------------------
// 4. network faults inside a lab host: netem, nftables drops and loss, tbf

func TestCapabilityNetworkFaults(t *testing.T) {
	l := labtest.New(t)
	hosts := labtest.Start(t, l,
		lab.HostSpec{Name: "victim", CapAdd: []string{"NET_ADMIN"}},
		lab.HostSpec{Name: "peer"},
		lab.HostSpec{Name: "bystander"})
	victim, peer, bystander := hosts[0], hosts[1], hosts[2]
	ctx := capCtx(t, 3*time.Minute)

	t.Run("netem delay and loss", func(t *testing.T) {
		out, err := victim.Exec(ctx, "tc qdisc add dev eth0 root netem delay 200ms 2>&1")
		if err != nil {
			if !strings.Contains(out, "qdisc kind is unknown") {
				t.Fatalf("tc netem failed for another reason than a missing sch_netem: %v %s", err, out)
			}
			loss, _ := victim.Exec(ctx, "tc qdisc add dev eth0 root netem loss 10% 2>&1")
			t.Skipf("NOT AVAILABLE on this engine: sch_netem. `tc qdisc add dev eth0 root netem delay 200ms` "+
				"with NET_ADMIN answers %q (loss: %q); kernel config: %q, no loadable modules (%q). "+
				"Use nftables numgen drops for loss (subtest 'nftables random loss') and a delaying proxy for latency.",
				out, loss, kernelConfig("CONFIG_NET_SCH_NETEM"), kernelConfig("CONFIG_MODULES"))
		}
		defer func() { _, _ = victim.Exec(ctx, "tc qdisc del dev eth0 root") }()
		rtt := labtest.Exec(t, peer, "ping -n -c3 -W2 "+victim.Addr+" | tail -1")
		f := strings.Split(rtt, "/")
		if len(f) < 5 {
			t.Fatalf("ping summary %q", rtt)
		}
		avg, _ := strconv.ParseFloat(f[4], 64)
		if avg < 190 {
			t.Fatalf("netem delay 200ms: average RTT %.1f ms", avg)
		}
		labtest.Exec(t, victim, "tc qdisc change dev eth0 root netem loss 30%")
		if loss, out, err := pingLoss(ctx, peer, victim.Addr, 100); err != nil || loss < 10 || loss > 60 {
			t.Fatalf("netem loss 30%%: %d%% (%v) %s", loss, err, out)
		}
	})

	t.Run("tbf rate limit", func(t *testing.T) {
		labtest.Exec(t, victim, "tc qdisc add dev eth0 root tbf rate 1mbit burst 32kbit latency 400ms")
		got := labtest.Exec(t, victim, "tc qdisc show dev eth0")
		labtest.Exec(t, victim, "tc qdisc del dev eth0 root")
		if !strings.Contains(got, "tbf") || !strings.Contains(got, "rate 1Mbit") {
			t.Fatalf("tbf not in place: %s", got)
		}
	})

	t.Run("nftables partition", func(t *testing.T) {
		// The host's own table, never `nft flush ruleset`: Docker keeps its embedded-DNS NAT rules in there.
		labtest.Exec(t, victim, "nft -f - <<'EOF'\ntable inet mohd_fault {\n"+
			"\tchain input { type filter hook input priority -10; policy accept; ip saddr "+peer.Addr+" drop; }\n"+
			"\tchain output { type filter hook output priority -10; policy accept; ip daddr "+peer.Addr+" drop; }\n}\nEOF")
		if out, err := peer.Exec(ctx, "ping -n -c2 -W1 "+victim.Addr); err == nil {
			t.Fatalf("peer still reaches the partitioned host:\n%s", out)
		}
		if out, err := peer.Exec(ctx, "timeout 3 ssh-keyscan -T 2 "+victim.Addr+" 2>/dev/null"); err == nil && out != "" {
			t.Fatalf("peer still reaches the partitioned host's sshd:\n%s", out)
		}
		labtest.Exec(t, bystander, "ping -n -c2 -W1 "+victim.Addr)
		if key, err := sshHostKeyAt(victim.Addr); err != nil || key != victim.HostKey {
			t.Fatalf("the test process lost the partitioned host: %v", err)
		}
		c, err := dial(t, victim, victim.HostKey)
		if err != nil {
			t.Fatalf("SSH from the test process to the partitioned host: %v", err)
		}
		_ = c.Close()
		labtest.Exec(t, victim, "nft delete table inet mohd_fault")
		labtest.Exec(t, peer, "ping -n -c2 -W1 "+victim.Addr)
	})

	t.Run("nftables random loss", func(t *testing.T) {
		labtest.Exec(t, victim, "nft add table inet mohd_loss && "+
			"nft add chain inet mohd_loss input '{ type filter hook input priority -10; policy accept; }' && "+
			"nft add rule inet mohd_loss input ip saddr "+peer.Addr+" numgen random mod 100 '<' 30 drop")
		defer func() { _, _ = victim.Exec(ctx, "nft delete table inet mohd_loss") }()
		loss, out, err := pingLoss(ctx, peer, victim.Addr, 100)
		if err != nil || loss < 10 || loss > 60 {
			t.Fatalf("30%% random drop: peer saw %d%% loss (%v): %s", loss, err, out)
		}
		other, out2, err := pingLoss(ctx, bystander, victim.Addr, 30)
		if err != nil || other != 0 {
			t.Fatalf("bystander saw %d%% loss (%v): %s", other, err, out2)
		}
		t.Logf("nft numgen 30%% drop: peer %d%% loss over 100 pings, bystander %d%%", loss, other)
	})
}

// ---------------------------------------------------------------------------------------------------------
// 5. memory limit and CPU quota

func TestCapabilityResourceLimits(t *testing.T) {
	l := labtest.New(t)
	h := labtest.Start(t, l, lab.HostSpec{Name: "small", Memory: "1g", CPUs: "1"})[0]
	ctx := capCtx(t, 3*time.Minute)

	hc := inspect(t, h.Container)["HostConfig"].(map[string]any)
	if mem, _ := hc["Memory"].(float64); mem != 1<<30 {
		t.Fatalf("HostConfig.Memory = %v, want 1 GiB", hc["Memory"])
	}
	if cpus, _ := hc["NanoCpus"].(float64); cpus != 1e9 {
		t.Fatalf("HostConfig.NanoCpus = %v, want 1e9", hc["NanoCpus"])
	}
	t.Logf("docker accepted --memory 1g --cpus 1: Memory=%v MemorySwap=%v NanoCpus=%v", hc["Memory"], hc["MemorySwap"], hc["NanoCpus"])

	// The container's own cgroup (v1: the host's tree is mounted, PID 1's cgroup path points into it).
	const cg = `ID=$(sed -n 's#^[0-9]*:memory:##p' /proc/1/cgroup | sed 's#/init.scope$##'); `
	if got := labtest.Exec(t, h, cg+"cat /sys/fs/cgroup/memory$ID/memory.limit_in_bytes"); got != "1073741824" {
		t.Fatalf("memory.limit_in_bytes = %q", got)
	}
	quota := labtest.Exec(t, h, `ID=$(sed -n 's#^[0-9]*:cpu:##p' /proc/1/cgroup); cat /sys/fs/cgroup/cpu$ID/cpu.cfs_quota_us /sys/fs/cgroup/cpu$ID/cpu.cfs_period_us`)
	if f := strings.Fields(quota); len(f) != 2 || f[0] != f[1] {
		t.Fatalf("cfs quota/period = %q, want one CPU", quota)
	}
	// The limit is enforced: allocating past it (and past memory+swap, 2 GiB) gets the process OOM-killed.
	out, err := h.Exec(ctx, `python3 -c 'b = bytearray(2560 * 1024 * 1024); print("allocated", len(b))' 2>&1; echo "exit=$?"`)
	if err != nil || !strings.Contains(out, "exit=137") {
		t.Fatalf("2.5 GiB allocation under a 1 GiB limit: %v %s", err, out)
	}
	if state, _ := h.Exec(ctx, "systemctl is-system-running"); state != "running" {
		t.Fatalf("systemd after the OOM kill: %q", state)
	}
	// What software sizing itself from /proc sees: the machine's memory and CPUs (no lxcfs).
	meminfo := labtest.Exec(t, h, "grep MemTotal /proc/meminfo; nproc")
	t.Logf("inside the 1g/1cpu host: %s", strings.Join(strings.Fields(meminfo), " "))

	// CPU quota: two busy loops for 3 s use at most about one CPU.
	usage := labtest.Exec(t, h, `ID=$(sed -n 's#^[0-9]*:cpuacct:##p' /proc/1/cgroup); F=/sys/fs/cgroup/cpuacct$ID/cpuacct.usage; `+
		`a=$(cat $F); timeout 3 sh -c 'while :; do :; done' & timeout 3 sh -c 'while :; do :; done' & wait; b=$(cat $F); echo $((b - a))`)
	ns, err := strconv.ParseInt(usage, 10, 64)
	if err != nil {
		t.Fatalf("cpuacct.usage delta %q", usage)
	}
	cpus := float64(ns) / 3e9
	t.Logf("two busy loops for 3 s used %.2f CPUs under --cpus 1", cpus)
	if cpus > 1.2 {
		t.Fatalf("--cpus 1 not enforced: %.2f CPUs used", cpus)
	}
}
