package hostfacts

import (
	"context"
	"strings"
	"testing"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
)

const sample = `os_id=debian
os_version_id=12
os_pretty_name=Debian GNU/Linux 12 (bookworm)
hostname=db1
kernel=6.1.0-27-amd64
arch=x86_64
cpus=4
mem_total_kb=8039936
virtualization=vmware
disk=sda 21474836480 1
disk=sdb 107374182400 0
fs=/ ext4 20957446144 15000000000
fs=/var/lib/mysql xfs 107321753600 107000000000
manifest=eyJyb2xlIjoiZGIiLCJwbHVnaW5fdmVyc2lvbiI6IjAuMS4wIiwiYnVpbGRfdGltZSI6IjIwMjYtMTEtMjdUMDA6MDA6MDBaIn0=
`

func TestParse(t *testing.T) {
	f, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if !f.IsDebian12() || f.CPUs != 4 || f.MemoryBytes != 8039936*1024 || f.Hostname != "db1" {
		t.Fatalf("facts %+v", f)
	}
	if len(f.Disks) != 2 || f.Disks[1].Rotational || !f.Disks[0].Rotational || f.Disks[1].SizeBytes != 107374182400 {
		t.Fatalf("disks %+v", f.Disks)
	}
	if len(f.Filesystems) != 2 || f.Filesystems[1].Mountpoint != "/var/lib/mysql" || f.Filesystems[1].Type != "xfs" {
		t.Fatalf("filesystems %+v", f.Filesystems)
	}
	if f.Manifest == nil || f.Manifest.Role != "db" || f.Manifest.PluginVersion != "0.1.0" {
		t.Fatalf("manifest %+v", f.Manifest)
	}
}

func TestParseMemoryLimit(t *testing.T) {
	base := "os_id=debian\ncpus=2\nmem_total_kb=4000000\n"
	for _, c := range []struct {
		extra string
		want  int64
	}{
		{"", 4000000 * 1024},
		{"mem_limit_bytes=1073741824\n", 1 << 30},
		{"mem_limit_bytes=9223372036854771712\n", 4000000 * 1024}, // cgroup v1 "no limit"
	} {
		f, err := Parse([]byte(base + c.extra))
		if err != nil {
			t.Fatal(err)
		}
		if f.MemoryBytes != c.want {
			t.Errorf("%q: memory %d, want %d", c.extra, f.MemoryBytes, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"os_id=debian\n", "incomplete"},
		{"os_id=debian\ncpus=two\nmem_total_kb=1\n", "bad cpus"},
		{"os_id=debian\ncpus=2\nmem_total_kb=1\ndisk=sda\n", "bad disk"},
		{"os_id=debian\ncpus=2\nmem_total_kb=1\nmanifest=e30=\n", "names no role"},
		{"os_id=debian\ncpus=2\nmem_total_kb=1\nmanifest=!!\n", "bad manifest"},
	} {
		_, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
	}
}

// TestProbeOnLabHost runs the real probe script on a real host with a 1 GiB memory limit.
func TestProbeOnLabHost(t *testing.T) {
	l := labtest.New(t)
	h := labtest.Start(t, l, lab.HostSpec{Name: "facts", Memory: "1g"})[0]
	out, err := h.Exec(context.Background(), "runuser -u debian -- sh -s <<'EOF'\n"+string(probeScript)+"\nEOF")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse([]byte(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !f.IsDebian12() || f.Hostname != "facts" || f.CPUs < 1 {
		t.Fatalf("facts %+v", f)
	}
	if f.MemoryBytes != 1<<30 {
		t.Fatalf("memory %d, want the container's 1 GiB limit", f.MemoryBytes)
	}
	if f.Manifest != nil {
		t.Fatalf("the base image carries no role manifest, got %+v", f.Manifest)
	}
	if len(f.Filesystems) == 0 {
		t.Fatalf("no filesystems in %s", out)
	}
}
