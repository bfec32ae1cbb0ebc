package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/mohd-dev/mohd/internal/haproxy"
	"github.com/mohd-dev/mohd/internal/mariadb"
	"github.com/mohd-dev/mohd/internal/monitoring"
	"github.com/mohd-dev/mohd/internal/nfs"
	"github.com/mohd-dev/mohd/internal/redis"
	"github.com/mohd-dev/mohd/internal/remote"
)

// Status is what the cluster reports after apply and on every read.
type Status struct {
	// Primary is the database primary's address.
	Primary string
	// Event says what the last apply did beyond converging ("switched over from 10.0.0.5", ...).
	Event string
	// MoodleVersion and MoodleRelease are read from the site's database (empty until installed).
	MoodleVersion, MoodleRelease string
}

// SwitchoverTimeout bounds how long a switchover waits for the replica to catch up.
const SwitchoverTimeout = 5 * time.Minute

func (s *Spec) members() []member {
	var out []member
	for _, h := range s.hosts() {
		role := map[string]string{"nfs": "nfs", "redis": "redis", "database primary": "db", "monitoring": "monitoring"}[h.what]
		if role == "" {
			role = "haproxy"
		}
		out = append(out, member{what: h.what, role: role, host: h.host})
	}
	return out
}

func (s *Spec) primaryConfig() mariadb.PrimaryConfig {
	_, n, _ := net.ParseCIDR(s.ClusterCIDR)
	hosts := []string{mariadbNetmask(n)}
	return mariadb.PrimaryConfig{
		BindAddress:     s.Database.Primary.Address,
		Database:        s.Database.Name,
		App:             mariadb.Account{User: s.Database.User, Password: s.Database.Password, Hosts: hosts},
		Replication:     mariadb.Account{User: s.Database.ReplicationUser, Password: s.Database.ReplicationPassword, Hosts: hosts},
		SemiSync:        true,
		SemiSyncTimeout: 10 * time.Second,
	}
}

// mariadbNetmask is the account host MariaDB matches for a network: "10.20.0.0/255.255.255.0".
func mariadbNetmask(n *net.IPNet) string {
	if n == nil {
		return ""
	}
	return n.IP.String() + "/" + net.IP(n.Mask).String()
}

func (s *Spec) replicaConfig(bind string) mariadb.ReplicaConfig {
	pc := s.primaryConfig()
	return mariadb.ReplicaConfig{
		PrimaryAddress: s.Database.Primary.Address,
		PrimaryPort:    3306,
		Replication:    pc.Replication,
		BindAddress:    bind,
		SemiSync:       true,
	}
}

func (s *Spec) vip(i int) (haproxy.VIP, error) {
	ip, n, err := net.ParseCIDR(s.VIP)
	if err != nil {
		return haproxy.VIP{}, err
	}
	ones, _ := n.Mask.Size()
	peer := s.Frontends[1-i].Address
	return haproxy.VIP{
		Address:   ip.String(),
		PrefixLen: ones,
		Peers:     []string{peer},
		// The first front end holds the address while both are healthy.
		Priority: 150 - 50*i,
		RouterID: routerID(s.Name),
		Password: derivedSecret(s.Database.ReplicationPassword, "vrrp:"+s.Name)[:8],
	}, nil
}

// Apply converges the cluster-level hosts: NFS, Redis, the database primary and the front ends. prev is the
// spec of the previous apply (nil on create): when the primary moved to another host, the database is
// switched over first (or failed over when the old primary does not answer).
func Apply(ctx context.Context, dial Dialer, s *Spec, prev *Spec, say Progress) (Status, error) {
	st := Status{Primary: s.Database.Primary.Address}
	if err := s.Validate(); err != nil {
		return st, err
	}
	say("checking the roles of %d hosts", len(s.members()))
	hosts, err := checkRoles(ctx, dial, s.members())
	if err != nil {
		return st, err
	}
	nfsHost, redisHost, primary, fronts := hosts[0], hosts[1], hosts[2], hosts[3:3+len(s.Frontends)]
	if err := ensureAllServices(ctx, hosts, s.members()); err != nil {
		return st, err
	}

	if prev != nil && !prev.Database.Primary.Same(s.Database.Primary) {
		ev, err := movePrimary(ctx, dial, prev, s, primary, say)
		if err != nil {
			return st, err
		}
		st.Event = ev
	}

	say("nfs %s: export %s", nfsHost.Name(), s.NFS.Export)
	if _, err := nfs.ConfigureExport(ctx, nfsHost, nfs.Export{Clients: []string{s.ClusterCIDR}}); err != nil {
		return st, err
	}
	say("redis %s: password and private address", redisHost.Name())
	if _, err := redis.Configure(ctx, redisHost, redis.Config{BindAddress: s.Redis.Host.Address, Password: s.Redis.Password}); err != nil {
		return st, err
	}
	say("database %s: primary, database %q and accounts", primary.Name(), s.Database.Name)
	if _, err := mariadb.ConfigurePrimary(ctx, primary, s.primaryConfig()); err != nil {
		return st, err
	}
	site := haproxy.Site{TLSCertificatePEM: s.TLSCertificate, TLSKeyPEM: s.TLSKey}
	err = forEach(fronts, func(i int, h remote.Host) error {
		say("front end %s: site configuration", h.Name())
		if _, err := haproxy.ConfigureSite(ctx, h, site); err != nil {
			return err
		}
		if s.VIP == "" {
			return nil
		}
		v, err := s.vip(i)
		if err != nil {
			return err
		}
		_, err = haproxy.ConfigureVIP(ctx, h, v)
		return err
	})
	if err != nil {
		return st, err
	}
	if s.Monitoring != nil {
		mon := hosts[len(hosts)-1]
		say("monitoring %s: the cluster's exporters and alerting", mon.Name())
		if err := registerTargets(ctx, mon, s.clusterMember(), s.clusterTargets()); err != nil {
			return st, err
		}
		if _, err := monitoring.ConfigureAlerting(ctx, mon, s.Monitoring.WebhookURL); err != nil {
			return st, err
		}
	}
	st.MoodleVersion, st.MoodleRelease = siteVersion(ctx, primary, s.Database.Name)
	return st, nil
}

// movePrimary makes s's primary (today a replica of prev's) the primary: a switchover when the old primary
// answers, a failover when it does not.
func movePrimary(ctx context.Context, dial Dialer, prev, s *Spec, newPrimary remote.Host, say Progress) (string, error) {
	rs, err := mariadb.InspectReplica(ctx, newPrimary)
	if err != nil {
		return "", err
	}
	oldAddr := prev.Database.Primary.Address
	if rs.MasterHost != oldAddr && rs.MasterHost != "" {
		return "", fmt.Errorf("the new primary %s replicates from %s, not from the current primary %s: the primary can only move to one of this cluster's replicas", newPrimary.Name(), rs.MasterHost, oldAddr)
	}
	if rs.MasterHost == "" {
		// Already promoted by an apply that failed later: carry on converging.
		return "primary " + s.Database.Primary.Address + " already promoted", nil
	}
	topo := mariadb.Topology{Replication: s.primaryConfig().Replication, PrimaryPort: 3306, SemiSync: true}
	old, err := dial(prev.Database.Primary)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err = old.Run(pctx, remote.Cmd{Command: "true", Desc: "reach the old primary"})
		cancel()
	}
	if err != nil {
		say("database: the old primary %s does not answer (%v): failing over to %s", oldAddr, err, newPrimary.Name())
		pos, ferr := mariadb.Failover(ctx, newPrimary, nil, topo, SwitchoverTimeout)
		if ferr != nil {
			return "", ferr
		}
		return fmt.Sprintf("failed over from %s (unreachable) at GTID %s: rebuild it as a replica before using it again", oldAddr, pos), nil
	}
	say("database: switching over from %s to %s", oldAddr, newPrimary.Name())
	if err := mariadb.Switchover(ctx, old, newPrimary, nil, topo, SwitchoverTimeout); err != nil {
		return "", err
	}
	return "switched over from " + oldAddr + "; it now replicates from the new primary", nil
}

// siteVersion reads Moodle's version and release from the database; empty when it is not installed yet.
func siteVersion(ctx context.Context, primary remote.Host, db string) (version, release string) {
	rows, err := mariadb.Query(ctx, primary, fmt.Sprintf(
		"SELECT name, value FROM `%s`.`mdl_config` WHERE name IN ('version', 'release')", strings.ReplaceAll(db, "`", "``")))
	if err != nil {
		return "", ""
	}
	for _, r := range rows {
		if len(r) == 2 && r[0] == "version" {
			version = r[1]
		} else if len(r) == 2 {
			release = r[1]
		}
	}
	return version, release
}

// ReadTimeout bounds how long a read waits for one host: a dead host must not stall a plan (planning a
// failover is what one does when the primary is dead).
const ReadTimeout = 45 * time.Second

// probe is one read of one host: what differs from the desired state.
type probe struct {
	where string
	host  Host
	read  func(ctx context.Context, h remote.Host) ([]string, error)
}

// runProbes runs the probes in parallel, each bounded by ReadTimeout. A host that cannot be read is drift too
// (the plan shows an update, whose apply says what is wrong), not an error that would block every plan.
func runProbes(ctx context.Context, dial Dialer, probes []probe) []string {
	out := make([][]string, len(probes))
	_ = forEach(probes, func(i int, p probe) error {
		pctx, cancel := context.WithTimeout(ctx, ReadTimeout)
		defer cancel()
		h, err := dial(p.host)
		var diffs []string
		if err == nil {
			diffs, err = p.read(pctx, h)
		}
		if err != nil {
			diffs = append(diffs, "cannot be read: "+err.Error())
		}
		for _, d := range diffs {
			out[i] = append(out[i], p.where+" "+p.host.String()+": "+d)
		}
		return nil
	})
	var drift []string
	for _, o := range out {
		drift = append(drift, o...)
	}
	return drift
}

// servicesProbe reads whether the role's services run.
func servicesProbe(role string) func(context.Context, remote.Host) ([]string, error) {
	return func(ctx context.Context, h remote.Host) ([]string, error) { return servicesDown(ctx, h, role) }
}

// Inspect reads the cluster-level hosts and lists what differs from s (empty: in sync). It changes nothing.
func Inspect(ctx context.Context, dial Dialer, s *Spec) (Status, []string, error) {
	st := Status{Primary: s.Database.Primary.Address}
	var probes []probe
	for _, m := range s.members() {
		probes = append(probes, probe{m.what, m.host, servicesProbe(m.role)})
	}
	probes = append(probes,
		probe{"nfs", s.NFS.Host, func(ctx context.Context, h remote.Host) ([]string, error) {
			es, err := nfs.InspectExport(ctx, h, nfs.Export{Clients: []string{s.ClusterCIDR}})
			return es.Problems(), err
		}},
		probe{"redis", s.Redis.Host, func(ctx context.Context, h remote.Host) ([]string, error) {
			rs, err := redis.Inspect(ctx, h, redis.Config{BindAddress: s.Redis.Host.Address, Password: s.Redis.Password})
			return rs.Problems(), err
		}},
		probe{"database primary", s.Database.Primary, func(ctx context.Context, h remote.Host) ([]string, error) {
			ps, err := mariadb.InspectPrimary(ctx, h, s.primaryConfig())
			if err == nil {
				st.MoodleVersion, st.MoodleRelease = siteVersion(ctx, h, s.Database.Name)
			}
			return ps.Diffs, err
		}},
	)
	for i, f := range s.Frontends {
		probes = append(probes, probe{"front end", f, func(ctx context.Context, h remote.Host) ([]string, error) {
			hs, err := haproxy.Inspect(ctx, h)
			if err != nil {
				return nil, err
			}
			diffs := hs.SiteDiffs(haproxy.Site{TLSCertificatePEM: s.TLSCertificate, TLSKeyPEM: s.TLSKey})
			if s.VIP == "" {
				return diffs, nil
			}
			v, err := s.vip(i)
			if err != nil {
				return diffs, err
			}
			vs, err := haproxy.InspectVIP(ctx, h, v)
			return append(diffs, vs.Diffs...), err
		}})
	}
	if s.Monitoring != nil {
		probes = append(probes, probe{"monitoring", s.Monitoring.Host, func(ctx context.Context, h remote.Host) ([]string, error) {
			diffs, err := targetDiffs(ctx, h, s.clusterMember(), s.clusterTargets())
			if err != nil {
				return nil, err
			}
			ad, err := monitoring.InspectAlerting(ctx, h, s.Monitoring.WebhookURL)
			return append(diffs, ad...), err
		}})
	}
	return st, runProbes(ctx, dial, probes), nil
}

func routerID(name string) int {
	h := 0
	for _, c := range name {
		h = (h*31 + int(c)) % 255
	}
	return h + 1
}
