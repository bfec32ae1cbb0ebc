package nfs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// The client side, on web nodes (role "web"): /var/www/moodledata is a root-owned 0755 mount point in the
// image, not writable while nothing is mounted on it, so that an unmounted share fails loudly instead of
// filling one node's disk. ConfigureMount mounts the export there with a systemd mount unit; with Existing,
// the operator already provides shared storage there (a cloud's shared volume, the lab's Docker volume).
// Either way PHP-FPM and Apache get a drop-in that makes them start after moodledata is mounted and stop
// before it is unmounted.

// Paths of the client side.
const (
	// MountPoint is moodledata on a web node ($CFG->dataroot).
	MountPoint = "/var/www/moodledata"
	// MountUnitPath is the mount unit (named after MountPoint, as systemd requires).
	MountUnitPath = "/etc/systemd/system/var-www-moodledata.mount"
	mountUnit     = "var-www-moodledata.mount"
	// dropInName is the drop-in that orders the web services after the mount.
	dropInName = "60-mohd-moodledata.conf"
)

// webServices must not run without moodledata.
var webServices = []string{"php8.2-fpm.service", "apache2.service"}

// Mount is how a web node gets moodledata.
type Mount struct {
	// Server is the NFS server's address or host name.
	Server string
	// Export is the path the server exports (default DefaultExport).
	Export string
	// Version is the NFS version: "3" (default, as the original deployment), "4", "4.0", "4.1" or "4.2".
	Version string
	// Options are more mount options (nfs(5)); an option given here replaces the default of the same name
	// ("timeo=100"), and "soft"/"hard", "atime"/"noatime"/"relatime" replace each other.
	Options []string
	// Existing: the operator already provides shared storage at MountPoint; nothing is mounted, it is
	// verified (a mount point, writable by www-data) and given to www-data when it is empty and root's.
	Existing bool
}

// MountState is what InspectMount found on a web node.
type MountState struct {
	// Mounted: something is mounted on MountPoint; Source, FSType and Options describe it.
	Mounted        bool
	Source, FSType string
	Options        []string
	// Owner ("uid:gid") and Mode (octal) of MountPoint.
	Owner, Mode string
	// Writable: www-data may write in MountPoint (access(2) as www-data: nothing is written).
	Writable bool
	// KernelNFS: the kernel lists the file system type the version needs (nfs, nfs4) in /proc/filesystems.
	// A kernel that loads it as a module on demand shows it only once loaded.
	KernelNFS bool
	// UnitActive and UnitEnabled describe the mount unit (NFS mode).
	UnitActive, UnitEnabled bool
	// Drift lists the files that differ from what ConfigureMount writes.
	Drift []string

	want Mount
}

// InSync reports whether the node is as ConfigureMount leaves it.
func (s MountState) InSync() bool { return len(s.Problems()) == 0 }

// Problems lists what differs from what ConfigureMount leaves, one line each (Drift included).
func (s MountState) Problems() []string {
	m := s.want
	p := slices.Clone(s.Drift)
	switch {
	case !s.Mounted:
		p = append(p, "nothing is mounted on "+MountPoint)
	case !m.Existing && (s.Source != m.what() || (s.FSType != "nfs" && s.FSType != "nfs4")):
		p = append(p, fmt.Sprintf("%s has %s (%s) mounted, want %s over NFS", MountPoint, s.Source, s.FSType, m.what()))
	}
	if !m.Existing {
		if !s.KernelNFS && !s.Mounted {
			p = append(p, "the kernel lists no "+m.fsType()+" file system (no NFS client, or its module is not loaded)")
		}
		if !s.UnitEnabled {
			p = append(p, mountUnit+" is not enabled at boot")
		}
	}
	if s.Mounted && !s.Writable {
		p = append(p, fmt.Sprintf("www-data may not write in %s (owner %s, mode %s)", MountPoint, s.Owner, s.Mode))
	}
	return p
}

var (
	hostnameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	exportRe   = regexp.MustCompile(`^(/[A-Za-z0-9._-]+)+$`)
	optionRe   = regexp.MustCompile(`^[A-Za-z0-9_]+(=[A-Za-z0-9._:/-]+)?$`)
)

// withDefaults fills the defaults.
func (m Mount) withDefaults() Mount {
	if m.Export == "" {
		m.Export = DefaultExport
	}
	if m.Version == "" {
		m.Version = "3"
	}
	return m
}

// Validate checks m (with its defaults) without contacting any host.
func (m Mount) Validate() error {
	m = m.withDefaults()
	if m.Existing {
		return nil
	}
	var errs []error
	if m.Server == "" {
		errs = append(errs, errors.New("server is empty: give the NFS server's address (or set existing for shared storage already mounted)"))
	} else if _, err := netip.ParseAddr(m.Server); err != nil && !hostnameRe.MatchString(m.Server) {
		errs = append(errs, fmt.Errorf("server %q is neither an IP address nor a host name", m.Server))
	}
	if !exportRe.MatchString(m.Export) {
		errs = append(errs, fmt.Errorf("export %q must be an absolute path of letters, digits, '.', '_' and '-'", m.Export))
	}
	switch m.Version {
	case "3", "4", "4.0", "4.1", "4.2":
	default:
		errs = append(errs, fmt.Errorf("version %q: use 3, 4, 4.0, 4.1 or 4.2", m.Version))
	}
	for _, o := range m.Options {
		if !optionRe.MatchString(o) {
			errs = append(errs, fmt.Errorf("mount option %q: one option per entry, NAME or NAME=VALUE", o))
			continue
		}
		switch optionName(o) {
		case "vers", "nfsvers", "minorversion":
			errs = append(errs, fmt.Errorf("mount option %q: set the version with version", o))
		}
	}
	return errors.Join(errs...)
}

func optionName(o string) string {
	n, _, _ := strings.Cut(o, "=")
	return n
}

// optionFamily groups options that replace each other.
func optionFamily(o string) string {
	switch n := optionName(o); n {
	case "hard", "soft", "softerr":
		return "hard/soft"
	case "atime", "noatime", "relatime", "strictatime", "norelatime":
		return "atime"
	default:
		return n
	}
}

// mountOptions are the unit's options: the version, TCP, hard mounts (a server outage stalls PHP instead of
// corrupting a file), 60 s timeouts retried twice (nfs(5)'s TCP defaults, explicit), no atime updates,
// _netdev; then m.Options, each replacing a default of its family.
func (m Mount) mountOptions() []string {
	opts := []string{"vers=" + m.Version, "proto=tcp"}
	if m.Version == "3" {
		// The role's Ganesha serves MOUNT over TCP only.
		opts = append(opts, "mountproto=tcp")
	}
	opts = append(opts, "hard", "timeo=600", "retrans=2", "noatime", "_netdev")
	for _, o := range m.Options {
		fam := optionFamily(o)
		opts = slices.DeleteFunc(opts, func(d string) bool { return optionFamily(d) == fam })
		opts = append(opts, o)
	}
	return opts
}

// what is the mount's source, SERVER:EXPORT ([v6]:EXPORT).
func (m Mount) what() string {
	if a, err := netip.ParseAddr(m.Server); err == nil && a.Is6() {
		return "[" + a.String() + "]:" + m.Export
	}
	return m.Server + ":" + m.Export
}

// fsType is the file system type the kernel needs for the version.
func (m Mount) fsType() string {
	if m.Version == "3" {
		return "nfs"
	}
	return "nfs4"
}

// kernelModule is the module that provides fsType.
func (m Mount) kernelModule() string {
	if m.Version == "3" {
		return "nfs"
	}
	return "nfsv4"
}

func (m Mount) unitFile() remote.File {
	text := `# Managed by MOHD (moodle_backend): Moodle's shared data (moodledata) from the NFS server.
[Unit]
Description=moodledata: NFS ` + m.what() + ` (NFSv` + m.Version + `)
Documentation=man:nfs(5)
After=network-online.target
Wants=network-online.target

[Mount]
What=` + m.what() + `
Where=` + MountPoint + `
Type=nfs
Options=` + strings.Join(m.mountOptions(), ",") + `
TimeoutSec=2min

[Install]
WantedBy=remote-fs.target
`
	return remote.File{Path: MountUnitPath, Content: []byte(text), Mode: 0o644, Owner: "root", Group: "root"}
}

// dropIns order the web services after moodledata: RequiresMountsFor= adds Requires= and After= on the
// mount unit of MountPoint, whichever provides it (ours, fstab's, a container's).
func dropIns() []remote.File {
	var files []remote.File
	for _, s := range webServices {
		text := "# Managed by MOHD (moodle_backend): " + strings.TrimSuffix(s, ".service") +
			" starts once moodledata is mounted and stops before it is unmounted.\n[Unit]\nRequiresMountsFor=" + MountPoint + "\n"
		files = append(files, remote.File{Path: "/etc/systemd/system/" + s + ".d/" + dropInName, Content: []byte(text),
			Mode: 0o644, Owner: "root", Group: "root", MkdirParents: true})
	}
	return files
}

// mounted is one line of findmnt about MountPoint.
type mounted struct {
	Source, FSType string
	Options        []string
}

// findmntCmd prints the mount on MountPoint itself (not a parent's) as KEY="value" pairs; exit 1 when none.
const findmntCmd = "findmnt -n -P -o SOURCE,FSTYPE,OPTIONS --mountpoint " + MountPoint

// parseFindmnt parses findmnt -P output; the last line is the mount on top (mounts can be stacked).
func parseFindmnt(out string) (mounted, bool) {
	var m mounted
	found := false
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		kv := parsePairs(line)
		if kv["SOURCE"] == "" && kv["FSTYPE"] == "" {
			continue
		}
		m = mounted{Source: kv["SOURCE"], FSType: kv["FSTYPE"]}
		if o := kv["OPTIONS"]; o != "" {
			m.Options = strings.Split(o, ",")
		}
		found = true
	}
	return m, found
}

// parsePairs parses KEY="value" KEY="value" (findmnt -P escapes unsafe characters as \xHH).
func parsePairs(line string) map[string]string {
	kv := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		k, rest, ok := strings.Cut(line, `="`)
		if !ok {
			break
		}
		end := strings.IndexByte(rest, '"')
		if end < 0 {
			break
		}
		kv[k] = unescapeHex(rest[:end])
		line = rest[end+1:]
	}
	return kv
}

func unescapeHex(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func readMount(ctx context.Context, h remote.Host) (mounted, bool, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: findmntCmd + " || true", Desc: "what is mounted on " + MountPoint})
	if err != nil {
		return mounted{}, false, err
	}
	m, ok := parseFindmnt(string(res.Stdout))
	return m, ok, nil
}

// kernelCheckScript prints "ok" when the kernel can mount fs (loading module when it must and can), else
// "no REASON".
func kernelCheckScript(fs, module string) string {
	return `fs=` + fs + `; mod=` + module + `
has() { grep -qw "$fs" /proc/filesystems; }
if has; then echo ok; exit 0; fi
why="/proc/filesystems lists no $fs"
if [ ! -e /proc/modules ]; then
	why="$why, and the kernel has no module support (/proc/modules is missing): NFS is not built in"
elif ! command -v modprobe >/dev/null 2>&1; then
	why="$why, and modprobe is not installed (package kmod)"
elif out=$(modprobe "$mod" 2>&1); then
	if has; then echo ok; exit 0; fi
	why="$why, even after modprobe $mod"
else
	why="$why; modprobe $mod: $(echo "$out" | tail -n 1)"
fi
virt=$(systemd-detect-virt 2>/dev/null || true)
[ -z "$virt" ] || why="$why; virtualization: $virt"
echo "no $why"`
}

// ErrNoKernelNFS is wrapped by ConfigureMount's error when the host's kernel cannot mount NFS.
var ErrNoKernelNFS = errors.New("this host's kernel cannot mount NFS")

// ConfigureMount gives the web node h moodledata: with m.Existing, it verifies the operator's shared storage;
// otherwise it mounts the NFS export with a systemd mount unit, enabled at boot. Either way the web services
// wait for the mount, and the result is verified by writing, reading and removing a file as www-data.
// changed reports whether anything on the host was modified.
func ConfigureMount(ctx context.Context, h remote.Host, m Mount) (changed bool, err error) {
	m = m.withDefaults()
	if err := m.Validate(); err != nil {
		return false, fmt.Errorf("%s: moodledata mount: %w", h.Name(), err)
	}
	unlock, err := h.Lock(ctx, "moodledata")
	if err != nil {
		return false, err
	}
	defer func() { _ = unlock() }()

	if m.Existing {
		changed, err = configureExisting(ctx, h)
	} else {
		changed, err = configureNFS(ctx, h, m)
	}
	if err != nil {
		return changed, err
	}
	ch, err := uploadDropIns(ctx, h)
	changed = changed || ch
	if err != nil {
		return changed, err
	}
	return changed, probeWritable(ctx, h)
}

func uploadDropIns(ctx context.Context, h remote.Host) (bool, error) {
	changed := false
	for _, f := range dropIns() {
		ch, err := h.Upload(ctx, f)
		if err != nil {
			return changed, err
		}
		changed = changed || ch
	}
	if changed {
		// Ordering applies from the services' next start: a reload is enough, nothing restarts.
		if _, err := h.Run(ctx, remote.Cmd{Command: "systemctl daemon-reload", Desc: "systemctl daemon-reload (web service drop-ins)"}); err != nil {
			return true, err
		}
	}
	return changed, nil
}

// configureExisting verifies the operator's storage on MountPoint and gives it to www-data when it is
// root's and empty (a fresh volume), never a tree that holds data.
func configureExisting(ctx context.Context, h remote.Host) (bool, error) {
	mt, ok, err := readMount(ctx, h)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, fmt.Errorf("%s: nothing is mounted on %s: existing = true needs the shared storage (a shared volume, an NFS mount of your own) mounted there; or set existing = false to mount the NFS server's export",
			h.Name(), MountPoint)
	}
	if slices.Contains(mt.Options, "ro") {
		return false, fmt.Errorf("%s: %s (%s, %s) is mounted read-only: Moodle writes moodledata", h.Name(), MountPoint, mt.Source, mt.FSType)
	}
	res, err := h.Run(ctx, remote.Cmd{Desc: "give an empty " + MountPoint + " to www-data", Command: `d=` + MountPoint + `
[ "$(stat -c '%u:%g' "$d")" = 0:0 ] || exit 0
# Empty but for a fresh file system's lost+found and other nodes' write probes.
if [ -z "$(ls -A "$d" | grep -v -e '^lost+found$' -e '^\.mohd-probe-')" ]; then
	chown www-data:www-data "$d"
	chmod 2770 "$d"
	echo changed
fi`})
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(res.Stdout)) == "changed", nil
}

// configureNFS mounts the export with the mount unit.
func configureNFS(ctx context.Context, h remote.Host, m Mount) (bool, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: kernelCheckScript(m.fsType(), m.kernelModule()), Desc: "can the kernel mount NFS"})
	if err != nil {
		return false, err
	}
	if out := strings.TrimSpace(string(res.Stdout)); out != "ok" {
		return false, fmt.Errorf("%s: %w (%s); on a VM, install a kernel with its NFS client (Debian's linux-image-amd64 "+
			"and linux-image-cloud-amd64 have it as a module) and reboot; in a container, the host's kernel decides: use "+
			"existing shared storage mounted on %s (a volume shared by the web nodes) with existing = true",
			h.Name(), ErrNoKernelNFS, strings.TrimPrefix(out, "no "), MountPoint)
	}
	if _, err := h.Run(ctx, remote.Cmd{Command: "test -x /sbin/mount.nfs", Desc: "is nfs-common installed"}); err != nil {
		return false, fmt.Errorf("%s: /sbin/mount.nfs is missing: install nfs-common (the web role image has it): %w", h.Name(), err)
	}
	unit := m.unitFile()
	mt, isMounted, err := readMount(ctx, h)
	if err != nil {
		return false, err
	}
	if isMounted && !(mt.FSType == "nfs" || mt.FSType == "nfs4") {
		return false, fmt.Errorf("%s: %s already has %s (%s) mounted on it: unmount it, or set existing = true to use it",
			h.Name(), MountPoint, mt.Source, mt.FSType)
	}
	changed, err := h.Upload(ctx, unit)
	if err != nil {
		return false, err
	}
	// A changed unit remounts (its dependents, PHP-FPM and Apache, restart with it); an unchanged one is
	// started when it is not mounted, and enabled.
	action := "start"
	if changed {
		action = "restart"
	}
	res, err = h.Run(ctx, remote.Cmd{Desc: "mount " + m.what() + " on " + MountPoint, Command: `changed=
u=` + mountUnit + `
fail() { echo "mounting ` + m.what() + ` on ` + MountPoint + ` failed:" >&2; journalctl -u "$u" -n 20 --no-pager >&2 || true; exit 1; }
if [ ` + strconv.FormatBool(changed) + ` = true ]; then systemctl daemon-reload; changed=1; fi
if [ ` + action + ` = restart ] || ! systemctl is-active --quiet "$u"; then
	systemctl ` + action + ` "$u" || fail
	changed=1
fi
if ! systemctl is-enabled --quiet "$u"; then systemctl enable --quiet "$u"; changed=1; fi
[ -z "$changed" ] || echo changed`})
	changed = changed || strings.TrimSpace(string(res.Stdout)) == "changed"
	if err != nil {
		return changed, err
	}
	mt, isMounted, err = readMount(ctx, h)
	if err != nil {
		return changed, err
	}
	if !isMounted || mt.Source != m.what() || (mt.FSType != "nfs" && mt.FSType != "nfs4") {
		return changed, fmt.Errorf("%s: %s has %q (%s) mounted after the mount unit started, want %s over NFS",
			h.Name(), MountPoint, mt.Source, mt.FSType, m.what())
	}
	return changed, nil
}

// probeWritable writes, reads back and removes a file in MountPoint as www-data.
func probeWritable(ctx context.Context, h remote.Host) error {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	token := hex.EncodeToString(b)
	script := `d=` + MountPoint + `; f="$d/.mohd-probe-$(hostname)-` + token + `"
if ! printf '%s\n' ` + token + ` > "$f"; then
	echo "www-data cannot create a file in $d (owner $(stat -c '%U:%G mode %a' "$d")): make it writable by www-data (uid 33)" >&2
	exit 1
fi
got=$(cat "$f"); rm -f "$f"
[ "$got" = ` + token + ` ] || { echo "a file written in $d reads back as '$got'" >&2; exit 1; }
[ ! -e "$f" ] || { echo "www-data cannot remove its file $f" >&2; exit 1; }`
	// A hard NFS mount of a dead server blocks I/O for ever: bounded (SIGKILL ends a task waiting on NFS).
	_, err := h.Run(ctx, remote.Cmd{AsUser: "www-data", Desc: "write, read and remove a file in " + MountPoint + " as www-data",
		Command: "timeout -s KILL 60 sh -c " + remote.Quote(script)})
	return err
}

// InspectMount reads the state of moodledata on the web node h against m, changing nothing.
func InspectMount(ctx context.Context, h remote.Host, m Mount) (MountState, error) {
	m = m.withDefaults()
	st := MountState{want: m}
	if err := m.Validate(); err != nil {
		return st, fmt.Errorf("%s: moodledata mount: %w", h.Name(), err)
	}
	mt, ok, err := readMount(ctx, h)
	if err != nil {
		return st, err
	}
	st.Mounted, st.Source, st.FSType, st.Options = ok, mt.Source, mt.FSType, mt.Options

	files := dropIns()
	if !m.Existing {
		files = append([]remote.File{m.unitFile()}, files...)
	}
	for _, f := range files {
		d, err := remote.Drift(ctx, h, f)
		if err != nil {
			return st, err
		}
		if d != "" {
			st.Drift = append(st.Drift, d)
		}
	}

	// stat and access go to the server on an NFS mount: bounded, so that a dead server cannot hang a plan.
	res, err := h.Run(ctx, remote.Cmd{Desc: "inspect " + MountPoint, Command: `echo "stat=$(timeout -s KILL 10 stat -c '%u:%g %a' ` + MountPoint + ` 2>/dev/null)"
if grep -qw ` + m.fsType() + ` /proc/filesystems; then echo kernel=yes; else echo kernel=no; fi
echo "active=$(systemctl is-active ` + mountUnit + ` 2>/dev/null)"
echo "enabled=$(systemctl is-enabled ` + mountUnit + ` 2>/dev/null)"`})
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "stat":
			st.Owner, st.Mode, _ = strings.Cut(v, " ")
		case "kernel":
			st.KernelNFS = v == "yes"
		case "active":
			st.UnitActive = v == "active"
		case "enabled":
			st.UnitEnabled = v == "enabled"
		}
	}
	// access(2) as www-data, not a write: the probe must leave the host as it is.
	_, werr := h.Run(ctx, remote.Cmd{AsUser: "www-data", Command: "timeout -s KILL 10 test -w " + MountPoint + " -a -x " + MountPoint,
		Desc: "may www-data write in " + MountPoint})
	st.Writable = werr == nil
	var exitErr *remote.ExitError
	if werr != nil && !errors.As(werr, &exitErr) {
		return st, werr
	}

	return st, nil
}
