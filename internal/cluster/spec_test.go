package cluster

import (
	"strings"
	"testing"

	"github.com/mohd-dev/mohd/internal/moodle"
	"github.com/mohd-dev/mohd/internal/repo"
)

func validSpec(t *testing.T) *Spec {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	return &Spec{
		Name: "site", WWWRoot: "https://moodle.example.edu", ClusterCIDR: "10.20.0.0/24",
		Frontends:      []Host{{Address: "10.20.0.11"}, {Address: "10.20.0.12"}},
		VIP:            "10.20.0.10/24",
		TLSCertificate: "cert", TLSKey: "key",
		Database: Database{Primary: Host{Address: "10.20.0.31"}, Name: "moodle", User: "moodle", Password: "p4ssw0rd-db",
			ReplicationUser: "mohd_repl", ReplicationPassword: "p4ssw0rd-repl"},
		NFS:   NFS{Host: Host{Address: "10.20.0.41"}, Export: "/moodledata", Version: "3"},
		Redis: Redis{Host: Host{Address: "10.20.0.51"}, Password: "p4ssw0rd-redis"},
		Code:  moodle.Source{Path: root + "/internal/moodle/testdata/fixture"},
		Admin: moodle.Admin{User: "admin", Password: "p4ssw0rd-admin", Email: "a@example.edu", FullName: "Moodle", ShortName: "moodle"},
	}
}

func TestSpecValidate(t *testing.T) {
	if err := validSpec(t).Validate(); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	cases := []struct {
		name   string
		change func(*Spec)
		want   string
	}{
		{"two front ends without a VIP", func(s *Spec) { s.VIP = "" }, "need a virtual IP"},
		{"a VIP with one front end", func(s *Spec) { s.Frontends = s.Frontends[:1] }, "needs two front ends"},
		{"the same front end twice", func(s *Spec) { s.Frontends[1] = s.Frontends[0] }, "are the same host"},
		{"https without certificate", func(s *Spec) { s.TLSCertificate, s.TLSKey = "", "" }, "no TLS certificate"},
		{"certificate without key", func(s *Spec) { s.TLSKey = "" }, "both the certificate and its private key"},
		{"same user for the app and replication", func(s *Spec) { s.Database.ReplicationUser = "moodle" }, "least privilege"},
		{"bad NFS version", func(s *Spec) { s.NFS.Version = "4" }, `nfs version must be "3" or "4.2"`},
		{"bad CIDR", func(s *Spec) { s.ClusterCIDR = "10.20.0.0" }, "not a CIDR network"},
		{"unknown setting", func(s *Spec) { s.Settings = map[string]string{"session_redis_lock_retry": "1"} }, "session_redis_acquire_lock_retry"},
		{"no code", func(s *Spec) { s.Code = moodle.Source{} }, "code:"},
		{"quote in the database password", func(s *Spec) { s.Database.Password = `pass"word-1234` }, "double quote"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := validSpec(t)
			c.change(s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestSpecEncodeDecode(t *testing.T) {
	s := validSpec(t)
	enc, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := d.Encode(); again != enc {
		t.Fatalf("round trip changed the spec:\n%s\n%s", enc, again)
	}
	if _, err := Decode("not json"); err == nil || !strings.Contains(err.Error(), "not one a moodle_cluster produced") {
		t.Fatalf("garbage accepted: %v", err)
	}
}

func TestValidateBackendAndReplica(t *testing.T) {
	s := validSpec(t)
	ok := Backend{Name: "web1", Host: Host{Address: "10.20.0.21"}, Weight: 100, State: "active"}
	if err := s.ValidateBackend(ok); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		b    Backend
		want string
	}{
		{Backend{Name: "web 1", Host: ok.Host, Weight: 1, State: "active"}, "without spaces"},
		{Backend{Name: "web1", Host: ok.Host, Weight: 257, State: "active"}, "out of HAProxy's range"},
		{Backend{Name: "web1", Host: ok.Host, Weight: 1, State: "paused"}, "is not one of active, drain, maintenance"},
		{Backend{Name: "web1", Host: s.Redis.Host, Weight: 1, State: "active"}, "is the cluster's redis"},
	} {
		if err := s.ValidateBackend(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.b, err, c.want)
		}
	}
	if err := s.ValidateReplica(Replica{Name: "db2", Host: s.NFS.Host}); err == nil || !strings.Contains(err.Error(), "is the cluster's nfs") {
		t.Errorf("a replica on the NFS host: %v", err)
	}
	if err := s.ValidateReplica(Replica{Name: "db2", Host: Host{Address: "10.20.0.32"}}); err != nil {
		t.Error(err)
	}
}

func TestPrimaryAccountsLimitedToTheClusterNetwork(t *testing.T) {
	pc := validSpec(t).primaryConfig()
	if got := pc.App.Hosts; len(got) != 1 || got[0] != "10.20.0.0/255.255.255.0" {
		t.Fatalf("app account hosts %v", got)
	}
	if pc.Replication.User != "mohd_repl" || !pc.SemiSync {
		t.Fatalf("replication %+v", pc.Replication)
	}
}

func TestVIPPeersAndPriorities(t *testing.T) {
	s := validSpec(t)
	v0, err := s.vip(0)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := s.vip(1)
	if v0.Peers[0] != "10.20.0.12" || v1.Peers[0] != "10.20.0.11" || v0.Priority <= v1.Priority {
		t.Fatalf("vip 0 %+v, vip 1 %+v", v0, v1)
	}
	if v0.Password != v1.Password || len(v0.Password) != 8 || v0.RouterID != v1.RouterID || v0.Address != "10.20.0.10" || v0.PrefixLen != 24 {
		t.Fatalf("the two front ends disagree: %+v %+v", v0, v1)
	}
}

func TestHealthIniHoldsTheDatabase(t *testing.T) {
	ini := string(healthIniContent(validSpec(t)))
	for _, want := range []string{`dbhost = "10.20.0.31"`, `dbname = "moodle"`, `dbuser = "moodle"`, `dbpass = "p4ssw0rd-db"`} {
		if !strings.Contains(ini, want) {
			t.Errorf("health.ini lacks %s:\n%s", want, ini)
		}
	}
}
