package nfs

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// ProbeExport proves from the web node client that the NFS server serves export to it, without a kernel
// mount (the lab's kernels have no NFS client), changing nothing. With libnfs-utils on the client (nfs-ls, a
// user-space NFS client), it lists the export over NFSv3 and NFSv4 as www-data (uid 33) would. Without it,
// it asks the server's MOUNT service for its export list (showmount -e, from nfs-common): NFS-Ganesha lists
// an export only to a client its CLIENT blocks let in, so the export being listed proves access.
func ProbeExport(ctx context.Context, client remote.Host, server, export string) error {
	if export == "" {
		export = DefaultExport
	}
	m := Mount{Server: server, Export: export}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%s: probe of the NFS export: %w", client.Name(), err)
	}
	res, err := client.Run(ctx, remote.Cmd{Command: "command -v nfs-ls || true", Desc: "is libnfs-utils installed"})
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(res.Stdout)) != "" {
		return probeNFSLs(ctx, client, server, export)
	}
	return probeShowmount(ctx, client, server, export)
}

// nfsURL is libnfs's URL of the export, as www-data (AUTH_SYS uid/gid 33: root would be squashed).
func nfsURL(server, export, version string) string {
	host := server
	if a, err := netip.ParseAddr(server); err == nil && a.Is6() {
		host = "[" + a.String() + "]"
	}
	return "nfs://" + host + export + "?uid=33&gid=33&version=" + version
}

func probeNFSLs(ctx context.Context, client remote.Host, server, export string) error {
	for _, v := range []string{"3", "4"} {
		url := nfsURL(server, export, v)
		if _, err := client.Run(ctx, remote.Cmd{Command: "timeout 30 nfs-ls " + remote.Quote(url),
			Desc: fmt.Sprintf("list %s:%s over NFSv%s (nfs-ls)", server, export, v)}); err != nil {
			return fmt.Errorf("%s: the NFS server %s does not serve %s to this host over NFSv%s: %w", client.Name(), server, export, v, err)
		}
	}
	return nil
}

func probeShowmount(ctx context.Context, client remote.Host, server, export string) error {
	res, err := client.Run(ctx, remote.Cmd{Command: "timeout 30 showmount -e " + remote.Quote(server) + " 2>&1",
		Desc: "ask " + server + " for its NFS exports (showmount)"})
	if err != nil {
		return fmt.Errorf("%s: the NFS server %s does not answer MOUNT requests (showmount -e; is it up, and does its firewall admit this host?): %w",
			client.Name(), server, err)
	}
	exports := parseShowmount(string(res.Stdout))
	if _, ok := exports[export]; ok {
		return nil
	}
	src := sourceAddr(ctx, client, server)
	listed := make([]string, 0, len(exports))
	for e := range exports {
		listed = append(listed, e)
	}
	return fmt.Errorf("%s: the NFS server %s does not export %s to this host (%s): it lists %s to it; add this host to the export's clients",
		client.Name(), server, export, src, listOrNone(listed))
}

// parseShowmount parses `showmount -e`: a header line, then "PATH CLIENT,CLIENT..." per export.
func parseShowmount(out string) map[string][]string {
	exports := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "/") {
			continue
		}
		var clients []string
		if len(f) > 1 {
			clients = strings.Split(f[1], ",")
		}
		exports[f[0]] = clients
	}
	return exports
}

// sourceAddr is the address client uses to reach server, for messages ("unknown" when it cannot be told).
func sourceAddr(ctx context.Context, client remote.Host, server string) string {
	res, err := client.Run(ctx, remote.Cmd{Command: "ip -o route get " + remote.Quote(server), Desc: "the route to " + server})
	if err != nil {
		return "unknown address"
	}
	f := strings.Fields(string(res.Stdout))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "src" {
			return f[i+1]
		}
	}
	return "unknown address"
}
