// Package hostfacts reads what a sysadmin sizes a host by (OS, CPUs, RAM, disks) and the MOHD role manifest
// its image carries. It only reads: it is what Terraform's Read and the moodle_host data source use.
package hostfacts

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/mohd-dev/mohd/internal/imagemanifest"
	"github.com/mohd-dev/mohd/internal/remote"
)

//go:embed probe.sh
var probeScript []byte

// Facts are a host's facts.
type Facts struct {
	Hostname       string
	OSID           string // "debian"
	OSVersionID    string // "12"
	OSPrettyName   string
	Kernel         string
	Arch           string
	Virtualization string
	CPUs           int
	// MemoryBytes is the RAM the host may use: the smaller of MemTotal and a cgroup limit.
	MemoryBytes int64
	Disks       []Disk
	Filesystems []Filesystem
	// Manifest is the role image manifest, nil on a host not built by MOHD's Packer plugin.
	Manifest *imagemanifest.Manifest
	// ManifestRaw is the manifest file as read.
	ManifestRaw string
}

// Disk is a block device.
type Disk struct {
	Name       string
	SizeBytes  int64
	Rotational bool
}

// Filesystem is a mounted filesystem.
type Filesystem struct {
	Mountpoint     string
	Type           string
	SizeBytes      int64
	AvailableBytes int64
}

// Probe reads h's facts with one remote command.
func Probe(ctx context.Context, h remote.Host) (*Facts, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: "sh -s", Stdin: probeScript, Desc: "read host facts"})
	if err != nil {
		return nil, err
	}
	return Parse(res.Stdout)
}

// Parse reads the probe's output.
func Parse(out []byte) (*Facts, error) {
	f := &Facts{}
	var memTotalKB, memLimit int64 = -1, -1
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		var err error
		switch key {
		case "os_id":
			f.OSID = val
		case "os_version_id":
			f.OSVersionID = val
		case "os_pretty_name":
			f.OSPrettyName = val
		case "hostname":
			f.Hostname = val
		case "kernel":
			f.Kernel = val
		case "arch":
			f.Arch = val
		case "virtualization":
			f.Virtualization = val
		case "cpus":
			f.CPUs, err = strconv.Atoi(val)
		case "mem_total_kb":
			memTotalKB, err = strconv.ParseInt(val, 10, 64)
		case "mem_limit_bytes":
			// "max" (v2) means no limit; v1 writes a huge number instead, which the min below ignores.
			if val != "max" {
				memLimit, err = strconv.ParseInt(val, 10, 64)
			}
		case "disk":
			err = f.addDisk(val)
		case "fs":
			err = f.addFilesystem(val)
		case "manifest":
			err = f.addManifest(val)
		}
		if err != nil {
			return nil, fmt.Errorf("host facts: bad %s line %q: %w", key, val, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if f.OSID == "" || f.CPUs == 0 || memTotalKB <= 0 {
		return nil, fmt.Errorf("host facts: incomplete probe output (os_id=%q cpus=%d mem_total_kb=%d)", f.OSID, f.CPUs, memTotalKB)
	}
	f.MemoryBytes = memTotalKB * 1024
	if memLimit > 0 && memLimit < f.MemoryBytes {
		f.MemoryBytes = memLimit
	}
	return f, nil
}

func (f *Facts) addDisk(val string) error {
	p := strings.Fields(val)
	if len(p) != 3 {
		return fmt.Errorf("want name size rota")
	}
	size, err := strconv.ParseInt(p[1], 10, 64)
	if err != nil {
		return err
	}
	f.Disks = append(f.Disks, Disk{Name: p[0], SizeBytes: size, Rotational: p[2] == "1"})
	return nil
}

func (f *Facts) addFilesystem(val string) error {
	p := strings.Fields(val)
	if len(p) != 4 {
		return fmt.Errorf("want mountpoint type size avail")
	}
	size, err := strconv.ParseInt(p[2], 10, 64)
	if err != nil {
		return err
	}
	avail, err := strconv.ParseInt(p[3], 10, 64)
	if err != nil {
		return err
	}
	f.Filesystems = append(f.Filesystems, Filesystem{Mountpoint: p[0], Type: p[1], SizeBytes: size, AvailableBytes: avail})
	return nil
}

func (f *Facts) addManifest(b64 string) error {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return err
	}
	if f.Manifest, err = imagemanifest.Decode(raw); err != nil {
		return err
	}
	f.ManifestRaw = string(raw)
	return nil
}

// IsDebian12 reports whether the host runs the OS MOHD's roles are written for.
func (f *Facts) IsDebian12() bool { return f.OSID == "debian" && f.OSVersionID == "12" }
