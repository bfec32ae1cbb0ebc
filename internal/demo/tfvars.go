package demo

import (
	"fmt"
	"slices"
	"strings"
)

// Layout is which hosts play which part in the root module (examples/local): the variables besides the
// hosts and secrets.
type Layout struct {
	Frontends  []string
	Backends   []string
	DBHosts    []string
	DBPrimary  string
	NFS        string
	Redis      string
	Monitoring string
}

// DefaultLayout is the demo's site: two front ends, two web nodes, a primary and its replica, NFS, Redis,
// monitoring.
func DefaultLayout() Layout {
	return Layout{
		Frontends:  []string{"lb1", "lb2"},
		Backends:   []string{"web1", "web2"},
		DBHosts:    []string{"db1", "db2"},
		DBPrimary:  "db1",
		NFS:        "nfs1",
		Redis:      "redis1",
		Monitoring: "mon1",
	}
}

// renderTFVars renders terraform.tfvars for the root module: every host's address and host key, the
// layout, the code and the secrets. The output depends on its inputs only (hosts in name order), so an
// unchanged demo writes the same file.
func renderTFVars(s *State, l Layout, code string, sec Secrets) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("# Written by `make demo` (internal/demo): the lab's hosts and the site's generated passwords.")
	p("# Secret (mode 0600) and git-ignored; `make demo-destroy` removes it.")
	p("")
	group := func(kv ...string) { // key = value lines, aligned as terraform fmt aligns them
		w := 0
		for i := 0; i < len(kv); i += 2 {
			w = max(w, len(kv[i]))
		}
		for i := 0; i < len(kv); i += 2 {
			p("%-*s = %s", w, kv[i], kv[i+1])
		}
		p("")
	}
	group("ssh_user", hclString(s.User), "ssh_private_key_file", hclString(s.KeyFile), "cluster_cidr", hclString(s.Subnet),
		"vip", hclString(s.VIP), "code_path", hclString(code))
	p("hosts = {")
	hosts := slices.Clone(s.Hosts)
	slices.SortFunc(hosts, func(a, b HostState) int { return strings.Compare(a.Name, b.Name) })
	width := 0
	for _, h := range hosts {
		width = max(width, len(h.Name))
	}
	for _, h := range hosts {
		p("  %-*s = { address = %s, host_key = %s }", width, h.Name, hclString(h.Addr), hclString(h.HostKey))
	}
	p("}")
	p("")
	group("frontends", hclList(l.Frontends), "backends", hclList(l.Backends), "db_hosts", hclList(l.DBHosts),
		"db_primary", hclString(l.DBPrimary), "nfs", hclString(l.NFS), "redis", hclString(l.Redis),
		"monitoring", hclString(l.Monitoring))
	group("admin_password", hclString(sec.Admin), "db_password", hclString(sec.Database),
		"replication_password", hclString(sec.Replication), "redis_password", hclString(sec.Redis))
	return b.String()
}

// hclString quotes s for HCL: escapes, and the template sequences ${ and %{ doubled so they stay literal.
func hclString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "${", "$${", "%{", "%%{")
	return `"` + r.Replace(s) + `"`
}

func hclList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = hclString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
