package cluster

import (
	"context"
	"fmt"

	"github.com/mohd-dev/mohd/internal/mariadb"
	"github.com/mohd-dev/mohd/internal/monitoring"
	"github.com/mohd-dev/mohd/internal/remote"
)

// Replica is a MariaDB replica of the cluster's primary.
type Replica struct {
	Name string
	Host Host
}

// ReplicaStatus is what a replica reports: mariadb's status plus whether the host is the primary now (after a
// switchover made it one).
type ReplicaStatus struct {
	mariadb.ReplicaStatus
	IsPrimary bool
}

// ValidateReplica refuses a replica on a host the cluster already uses for something else.
func (s *Spec) ValidateReplica(r Replica) error {
	for _, m := range s.members() {
		if m.host.Same(r.Host) && m.role != "db" {
			return fmt.Errorf("replica %s is the cluster's %s: a replica needs a db host of its own", r.Host, m.what)
		}
	}
	return nil
}

// isPrimary: after a switchover the cluster's primary is the host a replica resource was created on; that
// resource then has nothing to do until the primary moves back.
func (s *Spec) isPrimary(r Replica) bool { return s.Database.Primary.Same(r.Host) }

// ApplyReplica makes r's host replicate from the cluster's primary: seeded with a consistent copy of the
// primary when it does not replicate from it yet, otherwise only its settings are converged.
func ApplyReplica(ctx context.Context, dial Dialer, s *Spec, r Replica, create bool, say Progress) (ReplicaStatus, error) {
	var st ReplicaStatus
	if err := s.ValidateReplica(r); err != nil {
		return st, err
	}
	if create && s.isPrimary(r) {
		return st, fmt.Errorf("replica %s is the cluster's database primary: a replica needs another db host", r.Host)
	}
	hosts, err := checkRoles(ctx, dial, []member{
		{what: "replica " + r.Name, role: "db", host: r.Host},
		{what: "database primary", role: "db", host: s.Database.Primary},
	})
	if err != nil {
		return st, err
	}
	rep, primary := hosts[0], hosts[1]
	if err := ensureServices(ctx, rep, "db"); err != nil {
		return st, err
	}
	if s.isPrimary(r) {
		st.IsPrimary = true
		return st, nil
	}
	cfg := s.replicaConfig(r.Host.Address)
	cur, err := mariadb.InspectReplica(ctx, rep)
	if err != nil {
		return st, err
	}
	if cur.MasterHost == "" {
		say("replica %s: seeding from the primary %s (mariabackup over SSH)", r.Name, primary.Name())
		if err := mariadb.SeedReplica(ctx, primary, rep, cfg, func(m string) { say("replica %s: %s", r.Name, m) }); err != nil {
			return st, err
		}
	}
	say("replica %s: replicating from %s", r.Name, s.Database.Primary.Address)
	if _, err := mariadb.ConfigureReplica(ctx, rep, cfg); err != nil {
		return st, err
	}
	err = withMonitoring(dial, s, func(mon remote.Host) error {
		return registerTargets(ctx, mon, s.replicaMember(r), r.targets())
	})
	if err != nil {
		return st, err
	}
	st.ReplicaStatus, err = mariadb.InspectReplica(ctx, rep)
	return st, err
}

// InspectReplica reads the replica's state and lists what differs from replicating from the primary. A
// replica that cannot be read is drift, not an error.
func InspectReplica(ctx context.Context, dial Dialer, s *Spec, r Replica) (ReplicaStatus, []string, error) {
	var st ReplicaStatus
	if s.isPrimary(r) {
		st.IsPrimary = true
	}
	probes := []probe{{"replica " + r.Name, r.Host, func(ctx context.Context, rep remote.Host) ([]string, error) {
		var err error
		if st.ReplicaStatus, err = mariadb.InspectReplica(ctx, rep); err != nil || st.IsPrimary {
			return nil, err
		}
		return mariadb.DiffReplica(ctx, rep, s.replicaConfig(r.Host.Address))
	}}}
	if !s.isPrimary(r) {
		probes = append(probes, s.monitoringProbe(s.replicaMember(r), r.targets())...)
	}
	drift := runProbes(ctx, dial, probes)
	return st, drift, nil
}

// RemoveReplica stops replication cleanly; the server stays up, read-only, with its data.
func RemoveReplica(ctx context.Context, dial Dialer, s *Spec, r Replica) error {
	if s.isPrimary(r) {
		return fmt.Errorf("replica %s is the cluster's primary now: move the primary to another host before deleting it", r.Host)
	}
	rep, err := dial(r.Host)
	if err != nil {
		return err
	}
	if err := mariadb.RemoveReplica(ctx, rep); err != nil {
		return err
	}
	return withMonitoring(dial, s, func(mon remote.Host) error { return monitoring.Unregister(ctx, mon, s.replicaMember(r)) })
}

func (r Replica) targets() []monitoring.Target {
	return exporters("db", r.Host, monitoring.JobMySQLd)
}
