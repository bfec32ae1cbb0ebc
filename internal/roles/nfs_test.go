package roles

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// nfsBlock returns the body of the first block "name {...}" of a Ganesha configuration (nested braces included).
func nfsBlock(t *testing.T, conf, name string) string {
	t.Helper()
	loc := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(name) + `\s*\{`).FindStringIndex(conf)
	if loc == nil {
		t.Fatalf("no %s block in:\n%s", name, conf)
	}
	depth := 0
	for i := loc[1] - 1; i < len(conf); i++ {
		switch conf[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return conf[loc[1]:i]
			}
		}
	}
	t.Fatalf("unterminated %s block", name)
	return ""
}

// nfsSettings returns the "Key = value;" settings of a block body at its own level (nested blocks removed).
func nfsSettings(body string) map[string]string {
	var flat strings.Builder
	depth := 0
	for _, c := range body {
		switch {
		case c == '{':
			depth++
		case c == '}':
			depth--
		case depth == 0:
			flat.WriteRune(c)
		}
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(\w+)\s*=\s*([^;]*);`).FindAllStringSubmatch(flat.String(), -1) {
		out[strings.ToLower(m[1])] = strings.TrimSpace(m[2])
	}
	return out
}

func nfsWant(t *testing.T, block string, got map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[strings.ToLower(k)] != v {
			t.Errorf("%s: %s = %q, want %q", block, k, got[strings.ToLower(k)], v)
		}
	}
}

func TestNFSGaneshaConfigRendering(t *testing.T) {
	files := renderedFiles(t, "nfs", Params{ClusterCIDR: "10.20.0.0/24"})
	f, ok := files["/etc/ganesha/ganesha.conf"]
	if !ok {
		t.Fatal("no /etc/ganesha/ganesha.conf")
	}
	if !contains(f.Restart, "nfs-ganesha") {
		t.Errorf("ganesha.conf changes must restart nfs-ganesha: %v", f.Restart)
	}
	conf := string(f.Content)
	if strings.Count(conf, "{") != strings.Count(conf, "}") {
		t.Fatalf("unbalanced braces:\n%s", conf)
	}

	nfsWant(t, "NFS_CORE_PARAM", nfsSettings(nfsBlock(t, conf, "NFS_CORE_PARAM")), map[string]string{
		"Protocols": "3, 4", "NFS_Port": "2049", "MNT_Port": "20048", "NLM_Port": "32803",
		"Enable_NLM": "true", "Enable_RQUOTA": "false", "Enable_UDP": "false", "Mount_Path_Pseudo": "true",
	})
	v4 := nfsSettings(nfsBlock(t, conf, "NFSV4"))
	nfsWant(t, "NFSV4", v4, map[string]string{"Minor_Versions": "0, 1, 2", "Only_Numeric_Owners": "true"})
	lease, _ := strconv.Atoi(v4["lease_lifetime"])
	grace, _ := strconv.Atoi(v4["grace_period"])
	if lease < 10 || grace < lease || grace > 60 {
		t.Errorf("lease %d s, grace %d s: want a short grace period (<= 60 s) no shorter than the lease", lease, grace)
	}
	if g := nfsSettings(nfsBlock(t, conf, "NFSV4"))["graceless"]; g == "true" {
		t.Error("Graceless would let a client take a lock another client still has to reclaim")
	}

	export := nfsBlock(t, conf, "EXPORT")
	nfsWant(t, "EXPORT", nfsSettings(export), map[string]string{
		"Export_Id": "1", "Path": "/srv/moodledata", "Pseudo": "/moodledata", "Protocols": "3, 4",
		"Transports": "TCP", "SecType": "sys", "Squash": "Root_Squash",
		// Export-level access is what clients outside every CLIENT block get.
		"Access_Type": "None",
	})
	nfsWant(t, "EXPORT_DEFAULTS", nfsSettings(nfsBlock(t, conf, "EXPORT_DEFAULTS")), map[string]string{"Access_Type": "None"})
	nfsWant(t, "FSAL", nfsSettings(nfsBlock(t, export, "FSAL")), map[string]string{"Name": "VFS"})

	// CLIENT blocks: read-write for the cluster network only, read-only loopback for the role's checks.
	clients := map[string]string{}
	rest := export
	for strings.Contains(rest, "CLIENT") {
		body := nfsBlock(t, rest, "CLIENT")
		s := nfsSettings(body)
		clients[s["clients"]] = s["access_type"]
		rest = rest[strings.Index(rest, body)+len(body):]
	}
	want := map[string]string{"10.20.0.0/24": "RW", "127.0.0.1": "RO"}
	if fmt.Sprint(clients) != fmt.Sprint(want) {
		t.Errorf("CLIENT blocks %v, want %v", clients, want)
	}
}

// Every port the configuration pins is opened by the firewall to the cluster, and nothing is public but SSH.
func TestNFSPortsMatchConfiguration(t *testing.T) {
	r, err := Get("nfs")
	if err != nil {
		t.Fatal(err)
	}
	files := renderedFiles(t, "nfs", Params{ClusterCIDR: "10.20.0.0/24"})
	core := nfsSettings(nfsBlock(t, string(files["/etc/ganesha/ganesha.conf"].Content), "NFS_CORE_PARAM"))
	statd := string(files["/etc/nfs.conf.d/mohd-statd.conf"].Content)
	m := regexp.MustCompile(`(?m)^port = (\d+)$`).FindStringSubmatch(statd)
	if m == nil || !strings.Contains(statd, "[statd]") {
		t.Fatalf("statd port not pinned:\n%s", statd)
	}
	public, cluster := r.ports()
	if fmt.Sprint(public) != "[tcp . 22]" {
		t.Errorf("public ports %v: the NFS server must be reachable from the cluster only", public)
	}
	for _, want := range []string{
		"tcp . " + core["nfs_port"], "tcp . " + core["mnt_port"], "tcp . " + core["nlm_port"],
		"tcp . 111", "udp . 111", "tcp . " + m[1], "udp . " + m[1],
	} {
		if !contains(cluster, want) {
			t.Errorf("%s is not opened to the cluster: %v", want, cluster)
		}
	}
	fw := string(files["/etc/nftables.conf"].Content)
	if !strings.Contains(fw, "ip saddr 10.20.0.0/24 meta l4proto . th dport @cluster_ports accept") {
		t.Errorf("cluster ports are not limited to the cluster network:\n%s", fw)
	}
	if !contains(r.Forbidden, "nfs-kernel-server") {
		t.Error("nfs-kernel-server must be forbidden: it takes port 2049 from Ganesha")
	}
}

func TestNFSConfigRenderingIPv6(t *testing.T) {
	files := renderedFiles(t, "nfs", Params{ClusterCIDR: "fd00:20::/64"})
	conf := string(files["/etc/ganesha/ganesha.conf"].Content)
	if s := nfsSettings(nfsBlock(t, nfsBlock(t, conf, "EXPORT"), "CLIENT")); s["clients"] != "fd00:20::/64" || s["access_type"] != "RW" {
		t.Errorf("first CLIENT block %v", s)
	}
}

// The moodledata step fixes owner and mode, then reports no change; it runs as root (chown to uid 33).
func TestNFSExportDirStep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root to chown to uid 33")
	}
	r, err := Get("nfs")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() + "/moodledata"
	script := strings.ReplaceAll(r.Setup[0].Script, nfsExportDir, dir)
	run := func() string {
		t.Helper()
		cmd := exec.Command("sh", "-eu")
		cmd.Stdin = strings.NewReader(script)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("step: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out := run(); out != "changed" {
		t.Fatalf("first run: %q", out)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSetgid == 0 || st.Mode().Perm() != 0o770 {
		t.Errorf("mode %v, want drwxrws---", st.Mode())
	}
	if out := run(); out != "" {
		t.Fatalf("second run: %q, want no change", out)
	}
	if err := os.WriteFile(dir+"/data", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out := run(); out != "changed" {
		t.Fatalf("after chmod: %q", out)
	}
	// Never recursive: the site's files keep their owner.
	if out, _ := exec.Command("stat", "-c", "%u", dir+"/data").Output(); strings.TrimSpace(string(out)) != "0" {
		t.Errorf("the step changed the owner of a file inside moodledata: %s", out)
	}
}
