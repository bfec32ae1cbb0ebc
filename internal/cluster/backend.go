package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mohd-dev/mohd/internal/haproxy"
	"github.com/mohd-dev/mohd/internal/monitoring"
	"github.com/mohd-dev/mohd/internal/moodle"
	"github.com/mohd-dev/mohd/internal/nfs"
	"github.com/mohd-dev/mohd/internal/remote"
)

// Backend is one web node of a cluster.
type Backend struct {
	Name   string
	Host   Host
	Weight int
	// State is "active", "drain" or "maintenance" (HAProxy's view of the node).
	State string
	// ReadReplicas are the replica addresses Moodle sends its read-only queries to.
	ReadReplicas []string
	// FPMChildMemoryMB and FPMMaxChildren override the pool sizing the role derives from RAM (0: derived).
	FPMChildMemoryMB, FPMMaxChildren int
	// DrainTimeout bounds how long a removal waits for in-flight requests.
	DrainTimeout time.Duration
}

// BackendStates are the values Backend.State takes.
var BackendStates = []string{"active", "drain", "maintenance"}

// BackendStatus is what a backend reports.
type BackendStatus struct {
	Release           moodle.Release
	FPMMaxChildren    int
	FrontendStates    map[string]string // front end address -> HAProxy's operational state of this server
	InstalledMoodle   bool              // this apply installed Moodle's database
	HealthCheckAnswer string
}

const (
	fpmSizeDefaults = "/etc/default/mohd-php-fpm-size"
	fpmSizeFile     = "/etc/php/8.2/fpm/pool.d/60-moodle-size.conf"
	healthIni       = "/etc/mohd/health.ini"
)

func (s *Spec) moodleSite(b Backend) moodle.Site {
	proxies := make([]string, 0, len(s.Frontends)+1)
	for _, f := range s.Frontends {
		proxies = append(proxies, f.Address)
	}
	return moodle.Site{
		WWWRoot: s.WWWRoot,
		DB: moodle.DB{
			Host: s.Database.Primary.Address, Port: 3306, Name: s.Database.Name,
			User: s.Database.User, Password: s.Database.Password, Prefix: "mdl_",
			ReadReplicas: b.ReadReplicas,
		},
		Redis:           moodle.Redis{Host: s.Redis.Host.Address, Port: 6379, Password: s.Redis.Password, Prefix: "mohd_" + s.Name + "_"},
		SSLProxy:        s.TLSCertificate != "",
		TrustedProxies:  proxies,
		LogLifetimeDays: s.LogLifetimeDays,
		Settings:        s.Settings,
	}
}

func (s *Spec) mount() nfs.Mount {
	return nfs.Mount{Server: s.NFS.Host.Address, Export: s.NFS.Export, Version: s.NFS.Version, Existing: s.NFS.ExistingStorage}
}

func (b Backend) server() haproxy.Server {
	return haproxy.Server{Name: b.Name, Address: b.Host.Address, Port: 80, Weight: b.Weight, State: b.State}
}

// ValidateBackend checks a backend's own settings against its cluster, at plan time.
func (s *Spec) ValidateBackend(b Backend) error {
	if b.Name == "" || strings.ContainsAny(b.Name, " /\t") {
		return fmt.Errorf("backend name %q must be non-empty, without spaces or slashes (HAProxy names the server after it)", b.Name)
	}
	if b.Weight < 0 || b.Weight > 256 {
		return fmt.Errorf("weight %d is out of HAProxy's range 0..256", b.Weight)
	}
	ok := false
	for _, st := range BackendStates {
		ok = ok || st == b.State
	}
	if !ok {
		return fmt.Errorf("state %q is not one of %s", b.State, strings.Join(BackendStates, ", "))
	}
	for _, m := range s.members() {
		if m.host.Same(b.Host) {
			return fmt.Errorf("backend %s is the cluster's %s: a web node needs a host of its own", b.Host, m.what)
		}
	}
	return nil
}

// ApplyBackend converges one web node and registers it with every front end: moodledata, the code, config.php,
// cron, the health check's database settings, Moodle's installation (once per site, under a lock on the
// database primary), then HAProxy. The node only enters the front ends once its health check answers.
func ApplyBackend(ctx context.Context, dial Dialer, s *Spec, b Backend, say Progress) (BackendStatus, error) {
	var st BackendStatus
	if err := s.ValidateBackend(b); err != nil {
		return st, err
	}
	members := []member{{what: "backend " + b.Name, role: "web", host: b.Host}, {what: "database primary", role: "db", host: s.Database.Primary}}
	for i, f := range s.Frontends {
		members = append(members, member{what: fmt.Sprintf("front end %d", i+1), role: "haproxy", host: f})
	}
	hosts, err := checkRoles(ctx, dial, members)
	if err != nil {
		return st, err
	}
	web, primary, fronts := hosts[0], hosts[1], hosts[2:]
	if err := ensureAllServices(ctx, hosts, members); err != nil {
		return st, err
	}

	say("backend %s: moodledata", b.Name)
	if _, err := nfs.ConfigureMount(ctx, web, s.mount()); err != nil {
		return st, err
	}
	if err := writeSizing(ctx, web, b); err != nil {
		return st, err
	}
	say("backend %s: Moodle code", b.Name)
	rel, _, err := moodle.Deploy(ctx, web, s.Code, func(m string) { say("backend %s: %s", b.Name, m) })
	if err != nil {
		return st, err
	}
	st.Release = rel
	site := s.moodleSite(b)
	if _, err := moodle.WriteConfig(ctx, web, site); err != nil {
		return st, err
	}
	if _, err := web.Upload(ctx, remote.File{Path: healthIni, Content: healthIniContent(s), Mode: 0o640, Owner: "root", Group: "www-data", MkdirParents: true}); err != nil {
		return st, err
	}
	installed, err := installOnce(ctx, web, primary, s, say)
	if err != nil {
		return st, err
	}
	st.InstalledMoodle = installed
	if err := upgradeOnce(ctx, web, primary, s, say); err != nil {
		return st, err
	}
	if _, err := moodle.EnsureCron(ctx, web); err != nil {
		return st, err
	}
	say("backend %s: waiting for its health check", b.Name)
	if st.HealthCheckAnswer, err = waitHealthy(ctx, web); err != nil {
		return st, err
	}
	err = forEach(fronts, func(i int, h remote.Host) error {
		say("front end %s: server %s (%s, weight %d)", h.Name(), b.Name, b.State, b.Weight)
		if _, err := haproxy.PutServer(ctx, h, b.server()); err != nil {
			return err
		}
		if b.State != "active" {
			return nil
		}
		return waitServing(ctx, h, b.Name)
	})
	if err != nil {
		return st, err
	}
	err = withMonitoring(dial, s, func(mon remote.Host) error {
		return registerTargets(ctx, mon, s.backendMember(b), b.targets())
	})
	if err != nil {
		return st, err
	}
	st.FPMMaxChildren = fpmMaxChildren(ctx, web)
	st.FrontendStates, _, err = frontendStates(ctx, fronts, s.Frontends, b)
	return st, err
}

func (b Backend) targets() []monitoring.Target {
	return exporters("web", b.Host, monitoring.JobApache)
}

// waitServing waits until the front end's health checks see the node up, so that an apply ends with the node
// taking requests (a node that was down needs a few successful checks).
func waitServing(ctx context.Context, fh remote.Host, name string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		hs, err := haproxy.Inspect(ctx, fh)
		if err != nil {
			return err
		}
		ss, ok := hs.Server(name)
		if ok && ss.Operational == "up" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: HAProxy's health checks do not see %s up after 2 minutes (check %s %s %s): see /mohd-health on the node", fh.Name(), name, ss.CheckStatus, ss.CheckCode, ss.CheckDesc)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// frontendStates reads HAProxy's view of b on every front end, and what differs from b's desired state.
func frontendStates(ctx context.Context, fronts []remote.Host, addrs []Host, b Backend) (map[string]string, []string, error) {
	states := map[string]string{}
	var drift []string
	for i, fh := range fronts {
		hs, err := haproxy.Inspect(ctx, fh)
		if err != nil {
			return nil, nil, err
		}
		diffs, state := hs.ServerDiffs(b.server())
		states[addrs[i].Address] = state
		for _, d := range diffs {
			drift = append(drift, "front end "+addrs[i].String()+": "+d)
		}
	}
	return states, drift, nil
}

// installOnce installs Moodle's database from web unless the site is installed. The lock lives on the
// database primary, which every backend reaches: backends created together install exactly once.
func installOnce(ctx context.Context, web, primary remote.Host, s *Spec, say Progress) (bool, error) {
	// Only "installed" settles it without the lock: another backend may be installing right now, which reads
	// as an error (a config table without a version) until it is done.
	if ok, err := moodle.Installed(ctx, web); err == nil && ok {
		return false, nil
	}
	unlock, err := primary.Lock(ctx, "moodle-install-"+s.Name)
	if err != nil {
		return false, err
	}
	defer func() { _ = unlock() }()
	if ok, err := moodle.Installed(ctx, web); err != nil || ok {
		return false, err
	}
	say("installing Moodle's database from %s (once for the site)", web.Name())
	return true, moodle.Install(ctx, web, s.Admin)
}

// upgradeOnce upgrades the site's database when this node's code is newer: maintenance mode on (it is in the
// shared dataroot, so every node shows it), upgrade.php, caches purged, maintenance off. The first backend
// with the new code does it, under the same lock as the installation; the others find it done. A failed
// upgrade leaves the site in maintenance: the database may be half-upgraded, which only the fix and a new
// apply, or a restore of the database backup and the previous code, can settle.
func upgradeOnce(ctx context.Context, web, primary remote.Host, s *Spec, say Progress) error {
	v, err := moodle.Version(ctx, web)
	if err != nil || !v.Installed || (!v.UpgradePending && !v.Downgrade) {
		return err
	}
	if v.Downgrade {
		return fmt.Errorf("%s: the code deployed (%s, version %s) is older than the site's database (version %s): Moodle refuses to run it; deploy the code the database was upgraded to",
			web.Name(), v.Code.Release, v.Code.Version, v.DBVersion)
	}
	unlock, err := primary.Lock(ctx, "moodle-install-"+s.Name)
	if err != nil {
		return err
	}
	defer func() { _ = unlock() }()
	if v, err = moodle.Version(ctx, web); err != nil || !v.UpgradePending {
		return err
	}
	say("upgrading the site's database from version %s to %s (maintenance mode on every node meanwhile)", v.DBVersion, v.Code.Version)
	if err := moodle.SetMaintenance(ctx, web, true); err != nil {
		return err
	}
	if err := moodle.Upgrade(ctx, web); err != nil {
		return fmt.Errorf("the upgrade failed, the site stays in maintenance mode: %w; fix the cause and apply again, or restore the database backup and the previous code", err)
	}
	if err := moodle.PurgeCaches(ctx, web); err != nil {
		return err
	}
	return moodle.SetMaintenance(ctx, web, false)
}

// healthIniContent is the web role's health check settings: the site's database through Moodle's account.
func healthIniContent(s *Spec) []byte {
	return []byte(fmt.Sprintf("; Managed by MOHD: the database /mohd-health checks.\ndbhost = \"%s\"\ndbport = 3306\ndbname = \"%s\"\ndbuser = \"%s\"\ndbpass = \"%s\"\n",
		s.Database.Primary.Address, s.Database.Name, s.Database.User, s.Database.Password))
}

// writeSizing writes the PHP-FPM sizing overrides (or removes them) and resizes the pool when they changed.
func writeSizing(ctx context.Context, web remote.Host, b Backend) error {
	var lines []string
	if b.FPMChildMemoryMB > 0 {
		lines = append(lines, "CHILD_MB="+strconv.Itoa(b.FPMChildMemoryMB))
	}
	if b.FPMMaxChildren > 0 {
		lines = append(lines, "MAX_CHILDREN="+strconv.Itoa(b.FPMMaxChildren), "MIN_CHILDREN="+strconv.Itoa(min(4, b.FPMMaxChildren)))
	}
	content := "# Managed by MOHD (moodle_backend): PHP-FPM pool sizing overrides.\n" + strings.Join(lines, "\n") + "\n"
	changed, err := web.Upload(ctx, remote.File{Path: fpmSizeDefaults, Content: []byte(content), Mode: 0o644, Owner: "root", Group: "root"})
	if err != nil || !changed {
		return err
	}
	_, err = web.Run(ctx, remote.Cmd{Command: "systemctl restart mohd-php-fpm-size && systemctl reload php8.2-fpm", Desc: "resize the PHP-FPM pool"})
	return err
}

func fpmMaxChildren(ctx context.Context, web remote.Host) int {
	r, err := web.Run(ctx, remote.Cmd{Command: "sed -n 's/^pm\\.max_children = \\([0-9]*\\)$/\\1/p' " + fpmSizeFile, Desc: "read the PHP-FPM pool size"})
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(r.Stdout)))
	return n
}

// waitHealthy waits until the node's own health endpoint answers OK (PHP-FPM up, database reachable).
func waitHealthy(ctx context.Context, web remote.Host) (string, error) {
	r, err := web.Run(ctx, remote.Cmd{Desc: "wait for /mohd-health", Command: `for i in $(seq 60); do
	out=$(curl -sS --max-time 5 -H 'Host: localhost' http://127.0.0.1/mohd-health 2>&1) && case $out in OK*) echo "$out"; exit 0 ;; esac
	sleep 1
done
echo "the health check still answers: $out (see journalctl -u php8.2-fpm -u apache2)" >&2
exit 1`})
	return strings.TrimSpace(string(r.Stdout)), err
}

// InspectBackend lists what differs from the desired state of b (empty: in sync). It changes nothing; a host
// that cannot be read is drift too.
func InspectBackend(ctx context.Context, dial Dialer, s *Spec, b Backend) (BackendStatus, []string, error) {
	st := BackendStatus{FrontendStates: map[string]string{}}
	var mu sync.Mutex
	probes := []probe{
		{"backend " + b.Name, b.Host, func(ctx context.Context, web remote.Host) ([]string, error) {
			ms, err := nfs.InspectMount(ctx, web, s.mount())
			if err != nil {
				return nil, err
			}
			mst, err := moodle.Inspect(ctx, web, s.moodleSite(b))
			if err != nil {
				return nil, err
			}
			down, err := servicesDown(ctx, web, "web")
			if err != nil {
				return nil, err
			}
			st.Release = mst.Release
			st.FPMMaxChildren = fpmMaxChildren(ctx, web)
			return append(append(ms.Problems(), mst.Diffs...), down...), nil
		}},
	}
	for _, f := range s.Frontends {
		probes = append(probes, probe{"front end", f, func(ctx context.Context, fh remote.Host) ([]string, error) {
			hs, err := haproxy.Inspect(ctx, fh)
			if err != nil {
				return nil, err
			}
			diffs, state := hs.ServerDiffs(b.server())
			mu.Lock()
			st.FrontendStates[f.Address] = state
			mu.Unlock()
			return diffs, nil
		}})
	}
	probes = append(probes, s.monitoringProbe(s.backendMember(b), b.targets())...)
	drift := runProbes(ctx, dial, probes)
	for _, f := range s.Frontends {
		if _, ok := st.FrontendStates[f.Address]; !ok {
			st.FrontendStates[f.Address] = "unknown"
		}
	}
	return st, drift, nil
}

// RemoveBackend drains the node on every front end (in-flight requests finish, up to b.DrainTimeout), removes
// it, and stops its cron so that a retired node runs no task. A node whose host is gone is still removed from
// the front ends.
func RemoveBackend(ctx context.Context, dial Dialer, s *Spec, b Backend, say Progress) error {
	err := forEach(s.Frontends, func(_ int, f Host) error {
		fh, err := dial(f)
		if err != nil {
			return err
		}
		say("front end %s: draining and removing %s", fh.Name(), b.Name)
		return haproxy.RemoveServer(ctx, fh, b.Name, b.DrainTimeout, func(m string) { say("front end %s: %s", fh.Name(), m) })
	})
	if err != nil {
		return err
	}
	err = withMonitoring(dial, s, func(mon remote.Host) error { return monitoring.Unregister(ctx, mon, s.backendMember(b)) })
	if err != nil {
		return err
	}
	web, err := dial(b.Host)
	if err != nil {
		return err
	}
	if _, err := moodle.StopCron(ctx, web); err != nil {
		say("backend %s: could not stop its cron (%v): the node is out of the front ends; stop or delete the host", b.Name, err)
	}
	return nil
}

// derivedSecret is a stable secret for purpose, derived from a site secret: nothing more for users to manage.
func derivedSecret(secret, purpose string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(purpose))
	return hex.EncodeToString(m.Sum(nil))
}
