package nfs

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// The NFS server side: the role's image (role "nfs") serves ExportDir as DefaultExport to its whole cluster
// network. The site narrows the read-write clients to its web nodes. The role's ganesha.conf has no include
// point for that (Ganesha reads %include at the top level only, never inside an EXPORT block), so the site
// does not edit the role's file: it derives its copy of the export from it (SiteExportPath: the role's
// EXPORT block with the read-write Clients replaced) and gives it to the running Ganesha over D-Bus
// (ExportMgr.UpdateExport, which swaps an export's client list in place, without a restart or a grace
// period). A drop-in on nfs-ganesha.service does the same after every start and reload, so the restriction
// survives restarts and reboots; for the second or so between Ganesha loading the role's file and the
// drop-in's update, the export is the role's (the cluster network, which the firewall limits it to anyway).

// Paths of the server side.
const (
	// RoleConfPath is the role's Ganesha configuration, the export's only definition.
	RoleConfPath = "/etc/ganesha/ganesha.conf"
	// SiteExportPath is the role's EXPORT block with the site's read-write clients.
	SiteExportPath = "/etc/ganesha/mohd-site-export.conf"
	// ApplyScriptPath gives SiteExportPath to the running Ganesha over D-Bus (retrying while it starts).
	ApplyScriptPath = "/usr/local/lib/mohd/nfs-site-export"
	// GaneshaDropInPath runs ApplyScriptPath after every start and reload of nfs-ganesha.service.
	GaneshaDropInPath = "/etc/systemd/system/nfs-ganesha.service.d/60-mohd-site-export.conf"
	// ExportDir is moodledata on the server.
	ExportDir = "/srv/moodledata"
	// DefaultExport is the export's pseudo path, which NFSv3 and NFSv4 clients mount (SERVER:/moodledata).
	DefaultExport = "/moodledata"
)

// Export is the site's export of moodledata.
type Export struct {
	// Clients are the addresses or CIDR networks allowed read-write (the web nodes). Empty: the role's
	// cluster network, as baked into the image.
	Clients []string
}

// Client is one client entry of the served export.
type Client struct {
	// Match is the address or network as Ganesha prints it ("10.0.0.5/32"), "*" or a host pattern.
	Match string
	// Access is "RW", "RO" or "None".
	Access string
}

// ExportState is what InspectExport found on the NFS server.
type ExportState struct {
	Active bool // nfs-ganesha.service
	// Served: Ganesha has the export loaded (D-Bus DisplayExport) and listens on 2049.
	Served             bool
	ExportID           int
	Path, Pseudo       string
	Clients            []Client // as Ganesha serves them now, in its matching order
	RWClients          []string // the read-write entries, normalized and sorted
	WantRWClients      []string // what Export asks for (the role's clients when it lists none)
	ClientsInSync      bool     // RWClients == WantRWClients
	FilesInSync        bool     // the site's files are as ConfigureExport writes them (absent when Export lists none)
	Drift              []string // what differs, one line each
	DirOwner, DirMode  string   // of ExportDir: "33:33", "2770"
	DirOK              bool     // owned by www-data (33:33) with mode 2770, as the role makes it
	ListeningOnNFSPort bool
}

// InSync reports whether the export is served with exactly the wanted clients and nothing has drifted.
func (s ExportState) InSync() bool { return len(s.Problems()) == 0 }

// Problems lists what differs from what ConfigureExport leaves.
func (s ExportState) Problems() []string {
	var p []string
	if !s.Active {
		p = append(p, "nfs-ganesha is not running")
	} else if !s.Served {
		p = append(p, "NFS-Ganesha does not serve the export "+DefaultExport+" (or does not answer on D-Bus, or does not listen on 2049)")
	}
	if s.Served && !s.ClientsInSync {
		p = append(p, fmt.Sprintf("the export's read-write clients are %s, want %s", listOrNone(s.RWClients), listOrNone(s.WantRWClients)))
	}
	p = append(p, s.Drift...)
	if !s.DirOK {
		p = append(p, fmt.Sprintf("%s has owner %s mode %s, want 33:33 (www-data) 2770", ExportDir, s.DirOwner, s.DirMode))
	}
	return p
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// siteFiles are the server-side files for clients (normalized, non-empty), derived from the role's
// configuration text.
func siteFiles(roleConf string, e exportBlock, clients []string) []remote.File {
	text := "# Managed by MOHD (moodle_cluster): the export of " + RoleConfPath + " (role nfs) with its read-write\n" +
		"# clients narrowed to this site's web nodes. " + ApplyScriptPath + " gives it to the running NFS-Ganesha over\n" +
		"# D-Bus after every start and reload; derived from the role's file each time the provider applies it.\n" +
		siteExportText(roleConf, e, clients) + "\n"
	return []remote.File{
		{Path: SiteExportPath, Content: []byte(text), Mode: 0o644, Owner: "root", Group: "root"},
		{Path: ApplyScriptPath, Content: []byte(applyScript(e.ID)), Mode: 0o755, Owner: "root", Group: "root", MkdirParents: true},
		{Path: GaneshaDropInPath, Content: []byte(ganeshaDropIn), Mode: 0o644, Owner: "root", Group: "root", MkdirParents: true},
	}
}

// ganeshaDropIn runs the apply script after each start and reload. "-": a failure (D-Bus down) must not
// stop the NFS service; the export then keeps the role's clients and InspectExport reports it.
const ganeshaDropIn = `# Managed by MOHD (moodle_cluster): after every start and reload, NFS-Ganesha gets the site's export
# (` + SiteExportPath + `: read-write for the web nodes only) over D-Bus.
[Service]
ExecStartPost=-` + ApplyScriptPath + `
ExecReload=-` + ApplyScriptPath + ` --after-reload
`

// updateExport is a shell snippet that gives the export id of the configuration file in $conf to the
// running Ganesha, retrying for up to 30 s while it starts (it answers on D-Bus once its exports are loaded).
func updateExport(id int) string {
	return `i=0
until out=$(` + dbusExportMgr("UpdateExport", `string:"$conf"`, `string:'EXPORT(Export_Id=`+strconv.Itoa(id)+`)'`) + ` 2>&1); do
	i=$((i + 1))
	if [ "$i" -ge 60 ]; then
		echo "mohd: NFS-Ganesha did not take the export of $conf over D-Bus: $out" >&2
		exit 1
	fi
	sleep 0.5
done
echo "mohd: NFS-Ganesha took the export of $conf: $(echo "$out" | tail -n 1 | sed 's/^ *//')"
`
}

func applyScript(id int) string {
	return `#!/bin/sh
# Managed by MOHD (moodle_cluster): gives the running NFS-Ganesha the site's export (` + SiteExportPath + `),
# whose read-write clients are the web nodes. Run by nfs-ganesha.service after each start and reload.
set -u
conf=` + SiteExportPath + `
# After SIGHUP, Ganesha rereads the role's file in the background: let it finish before narrowing again.
if [ "${1:-}" = --after-reload ]; then sleep 2; fi
if [ ! -f "$conf" ]; then
	echo "mohd: $conf is missing: the export keeps the role's clients" >&2
	exit 1
fi
` + updateExport(id)
}

func dbusExportMgr(method string, args ...string) string {
	return "dbus-send --system --print-reply --reply-timeout=10000 --dest=org.ganesha.nfsd /org/ganesha/nfsd/ExportMgr org.ganesha.nfsd.exportmgr." +
		method + " " + strings.Join(args, " ")
}

// ConfigureExport restricts the read-write clients of the role's export to e.Clients (the role's cluster
// network when empty) on the NFS server h, at once and across restarts, and verifies that Ganesha serves
// exactly those. changed reports whether anything on the host was modified.
func ConfigureExport(ctx context.Context, h remote.Host, e Export) (changed bool, err error) {
	clients, err := normalizeClients(e.Clients)
	if err != nil {
		return false, fmt.Errorf("%s: nfs export clients: %w", h.Name(), err)
	}
	unlock, err := h.Lock(ctx, "nfs-export")
	if err != nil {
		return false, err
	}
	defer func() { _ = unlock() }()

	roleConf, blk, err := readRoleExport(ctx, h)
	if err != nil {
		return false, err
	}
	want := clients
	applyFrom := SiteExportPath
	siteChanged := false
	if len(clients) == 0 {
		// Back to the role's export: the site's files go, Ganesha takes the role's block again.
		if want, err = normalizeClients(blk.RWClients); err != nil {
			return false, fmt.Errorf("%s: the role's export clients: %w", h.Name(), err)
		}
		applyFrom = RoleConfPath
		res, err := h.Run(ctx, remote.Cmd{Desc: "remove the site's NFS export files", Command: `changed=
for f in ` + SiteExportPath + ` ` + ApplyScriptPath + ` ` + GaneshaDropInPath + `; do
	if [ -e "$f" ]; then rm -f "$f"; changed=1; fi
done
if [ -n "$changed" ]; then systemctl daemon-reload; echo changed; fi`})
		if err != nil {
			return false, err
		}
		siteChanged = strings.TrimSpace(string(res.Stdout)) == "changed"
	} else {
		dropInChanged := false
		for _, f := range siteFiles(roleConf, blk, clients) {
			ch, err := h.Upload(ctx, f)
			if err != nil {
				return changed, err
			}
			siteChanged = siteChanged || ch
			dropInChanged = dropInChanged || (ch && f.Path == GaneshaDropInPath)
		}
		if dropInChanged {
			if _, err := h.Run(ctx, remote.Cmd{Command: "systemctl daemon-reload", Desc: "systemctl daemon-reload (nfs-ganesha drop-in)"}); err != nil {
				return true, err
			}
		}
	}
	changed = siteChanged

	// A stopped Ganesha is started; the drop-in applies the site's export as it comes up.
	res, err := h.Run(ctx, remote.Cmd{Desc: "start nfs-ganesha", Command: `if ! systemctl is-active --quiet nfs-ganesha; then
	systemctl start nfs-ganesha || { journalctl -u nfs-ganesha -n 20 --no-pager >&2; tail -n 20 /var/log/ganesha/ganesha.log >&2; exit 1; }
	echo changed
fi`})
	if err != nil {
		return changed, err
	}
	changed = changed || strings.TrimSpace(string(res.Stdout)) == "changed"

	served, err := displayExport(ctx, h, blk.ID, true)
	if err != nil {
		return changed, err
	}
	if siteChanged || !slices.Equal(rwClients(served.Clients), want) {
		if _, err := h.Run(ctx, remote.Cmd{Command: "conf=" + remote.Quote(applyFrom) + "\n" + updateExport(blk.ID),
			Desc: "give NFS-Ganesha the export's clients over D-Bus"}); err != nil {
			return changed, err
		}
		changed = true
		if served, err = displayExport(ctx, h, blk.ID, true); err != nil {
			return changed, err
		}
	}
	if got := rwClients(served.Clients); !slices.Equal(got, want) {
		return changed, fmt.Errorf("%s: NFS-Ganesha serves %s read-write to %s after the update, want %s (see /var/log/ganesha/ganesha.log)",
			h.Name(), DefaultExport, listOrNone(got), listOrNone(want))
	}
	return changed, nil
}

// readRoleExport reads the role's configuration on h and finds the export in it.
func readRoleExport(ctx context.Context, h remote.Host) (string, exportBlock, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: "cat " + RoleConfPath, Desc: "read the nfs role's " + RoleConfPath})
	if err != nil {
		return "", exportBlock{}, fmt.Errorf("%w (is this a host of the nfs role?)", err)
	}
	conf := string(res.Stdout)
	blk, err := findExport(conf, DefaultExport)
	if err != nil {
		return "", exportBlock{}, fmt.Errorf("%s: %w", h.Name(), err)
	}
	return conf, blk, nil
}

// servedExport is Ganesha's answer to DisplayExport.
type servedExport struct {
	ID           int
	Path, Pseudo string
	Clients      []Client
}

// displayExport asks the running Ganesha for export id. With must, a missing export or an unreachable
// Ganesha is an error; without, it is reported as ok=false in ID (0).
func displayExport(ctx context.Context, h remote.Host, id int, must bool) (servedExport, error) {
	res, err := h.Run(ctx, remote.Cmd{Command: dbusExportMgr("DisplayExport", "uint16:"+strconv.Itoa(id)),
		Desc: "ask NFS-Ganesha for its export over D-Bus"})
	if err != nil {
		if must {
			return servedExport{}, err
		}
		return servedExport{}, nil
	}
	se, err := parseDisplayExport(string(res.Stdout))
	if err != nil {
		return servedExport{}, fmt.Errorf("%s: %w", h.Name(), err)
	}
	return se, nil
}

// Export permission bits of Ganesha's client entries (nfs_exports.h).
const (
	ganeshaReadAccess  = 0x20
	ganeshaWriteAccess = 0x40
)

// parseDisplayExport parses `dbus-send --print-reply` of ExportMgr.DisplayExport: the export id (uint16),
// path, pseudo path and tag (strings), then an array of client structs (siyyiuuuuu: name, CIDR version,
// address, mask, protocol, anonymous uid, anonymous gid, attribute expiry, options, set).
func parseDisplayExport(out string) (servedExport, error) {
	var se servedExport
	var top []string
	var structs [][]string
	var cur []string
	inStruct := false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "method return"):
		case line == "array [" || line == "]":
		case line == "struct {":
			inStruct, cur = true, nil
		case line == "}":
			if inStruct {
				structs = append(structs, cur)
			}
			inStruct = false
		default:
			typ, val, _ := strings.Cut(line, " ")
			if typ == "string" {
				val = strings.TrimSuffix(strings.TrimPrefix(val, `"`), `"`)
			}
			if inStruct {
				cur = append(cur, val)
			} else {
				top = append(top, val)
			}
		}
	}
	if len(top) < 3 {
		return se, fmt.Errorf("unexpected DisplayExport answer from NFS-Ganesha: %q", remote.ShortCommand(out))
	}
	var err error
	if se.ID, err = strconv.Atoi(top[0]); err != nil {
		return se, fmt.Errorf("unexpected export id %q in NFS-Ganesha's DisplayExport answer", top[0])
	}
	se.Path, se.Pseudo = top[1], top[2]
	for _, s := range structs {
		if len(s) < 9 {
			return se, fmt.Errorf("unexpected client entry %q in NFS-Ganesha's DisplayExport answer", s)
		}
		opts, err := strconv.ParseUint(s[8], 10, 32)
		if err != nil {
			return se, fmt.Errorf("unexpected client options %q in NFS-Ganesha's DisplayExport answer", s[8])
		}
		access := "None"
		switch {
		case opts&ganeshaWriteAccess != 0:
			access = "RW"
		case opts&ganeshaReadAccess != 0:
			access = "RO"
		}
		se.Clients = append(se.Clients, Client{Match: s[0], Access: access})
	}
	return se, nil
}

// rwClients returns the read-write entries of clients, normalized and sorted (entries that are not
// addresses or networks are kept as Ganesha prints them).
func rwClients(clients []Client) []string {
	var out []string
	for _, c := range clients {
		if c.Access != "RW" {
			continue
		}
		if p, err := normalizeClient(c.Match); err == nil {
			out = append(out, p.String())
		} else {
			out = append(out, c.Match)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// InspectExport reads the export's state on the NFS server h against e, changing nothing: the service, the
// export as Ganesha serves it (D-Bus), the site's files (derived again from the role's file, so a changed
// role shows as drift), and the owner and mode of ExportDir.
func InspectExport(ctx context.Context, h remote.Host, e Export) (ExportState, error) {
	var st ExportState
	clients, err := normalizeClients(e.Clients)
	if err != nil {
		return st, fmt.Errorf("%s: nfs export clients: %w", h.Name(), err)
	}
	roleConf, blk, err := readRoleExport(ctx, h)
	if err != nil {
		return st, err
	}
	st.WantRWClients = clients
	if len(clients) == 0 {
		if st.WantRWClients, err = normalizeClients(blk.RWClients); err != nil {
			return st, fmt.Errorf("%s: the role's export clients: %w", h.Name(), err)
		}
		res, err := h.Run(ctx, remote.Cmd{Desc: "look for the site's NFS export files",
			Command: "for f in " + SiteExportPath + " " + ApplyScriptPath + " " + GaneshaDropInPath + `; do [ ! -e "$f" ] || echo "$f"; done`})
		if err != nil {
			return st, err
		}
		for _, f := range strings.Fields(string(res.Stdout)) {
			st.Drift = append(st.Drift, f+" exists, but the export is to keep the role's clients")
		}
	} else {
		for _, f := range siteFiles(roleConf, blk, clients) {
			d, err := remote.Drift(ctx, h, f)
			if err != nil {
				return st, err
			}
			if d != "" {
				st.Drift = append(st.Drift, d)
			}
		}
	}
	st.FilesInSync = len(st.Drift) == 0

	res, err := h.Run(ctx, remote.Cmd{Desc: "inspect nfs-ganesha and " + ExportDir, Command: `echo "active=$(systemctl is-active nfs-ganesha 2>/dev/null)"
echo "listen=$(ss -Hltn 'sport = :2049' 2>/dev/null | head -n 1)"
echo "dir=$(stat -c '%u:%g %a' ` + ExportDir + ` 2>&1)"`})
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "active":
			st.Active = v == "active"
		case "listen":
			st.ListeningOnNFSPort = strings.TrimSpace(v) != ""
		case "dir":
			st.DirOwner, st.DirMode, _ = strings.Cut(strings.TrimSpace(v), " ")
		}
	}
	st.DirOK = st.DirOwner == "33:33" && st.DirMode == "2770"

	if st.Active {
		se, err := displayExport(ctx, h, blk.ID, false)
		if err != nil {
			return st, err
		}
		if se.ID == blk.ID {
			st.Served = st.ListeningOnNFSPort
			st.ExportID, st.Path, st.Pseudo, st.Clients = se.ID, se.Path, se.Pseudo, se.Clients
			st.RWClients = rwClients(se.Clients)
		}
	}
	st.ClientsInSync = st.Served && slices.Equal(st.RWClients, st.WantRWClients)
	return st, nil
}
