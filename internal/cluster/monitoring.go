package cluster

import (
	"context"

	"github.com/mohd-dev/mohd/internal/monitoring"
	"github.com/mohd-dev/mohd/internal/remote"
)

// Each resource registers its own hosts' exporters with the monitoring host under a member id of its own, as
// web nodes register with the front ends: they come and go independently.

func (s *Spec) clusterMember() string          { return "cluster/" + s.Name }
func (s *Spec) backendMember(b Backend) string { return "backend/" + s.Name + "/" + b.Name }
func (s *Spec) replicaMember(r Replica) string { return "replica/" + s.Name + "/" + r.Name }

// exporters lists a host's targets: its node exporter and the role's own exporters.
func exporters(role string, h Host, jobs ...string) []monitoring.Target {
	var out []monitoring.Target
	for _, job := range append([]string{monitoring.JobNode}, jobs...) {
		t, err := monitoring.Exporter(job, h.Address, map[string]string{"role": role})
		if err == nil {
			out = append(out, t)
		}
	}
	return out
}

// clusterTargets are the cluster-level hosts' exporters (the monitoring host scrapes itself).
func (s *Spec) clusterTargets() []monitoring.Target {
	t := exporters("nfs", s.NFS.Host, monitoring.JobNFS)
	t = append(t, exporters("redis", s.Redis.Host, monitoring.JobRedis)...)
	t = append(t, exporters("db", s.Database.Primary, monitoring.JobMySQLd)...)
	for _, f := range s.Frontends {
		t = append(t, exporters("haproxy", f, monitoring.JobHAProxy)...)
	}
	return t
}

func registerTargets(ctx context.Context, mon remote.Host, member string, targets []monitoring.Target) error {
	_, err := monitoring.Register(ctx, mon, member, targets)
	return err
}

func targetDiffs(ctx context.Context, mon remote.Host, member string, want []monitoring.Target) ([]string, error) {
	st, err := monitoring.Inspect(ctx, mon, member, want)
	return st.Diffs, err
}

// withMonitoring runs fn on the monitoring host when the site has one.
func withMonitoring(dial Dialer, s *Spec, fn func(mon remote.Host) error) error {
	if s.Monitoring == nil {
		return nil
	}
	mon, err := dial(s.Monitoring.Host)
	if err != nil {
		return err
	}
	return fn(mon)
}

// monitoringProbe is the read of a member's registration, when the site has monitoring.
func (s *Spec) monitoringProbe(member string, want []monitoring.Target) []probe {
	if s.Monitoring == nil {
		return nil
	}
	return []probe{{"monitoring", s.Monitoring.Host, func(ctx context.Context, h remote.Host) ([]string, error) {
		return targetDiffs(ctx, h, member, want)
	}}}
}
