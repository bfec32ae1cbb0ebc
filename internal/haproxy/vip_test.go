package haproxy

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mohd-dev/mohd/internal/remote"
)

// What netScript prints on a lab front end (172.30.55.10) asked about its peers 172.30.55.11 and itself.
const sampleNet = `172.30.55.200 172.30.55.200 dev eth0 src 172.30.55.10 uid 0 \    cache 
172.30.55.10 local 172.30.55.10 dev lo src 172.30.55.10 uid 0 \    cache <local> 
172.30.55.11 172.30.55.11 dev eth0 src 172.30.55.10 uid 0 \    cache 
====
1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
218: eth0    inet 172.30.55.10/24 brd 172.30.55.255 scope global eth0\       valid_lft forever preferred_lft forever
218: eth0    inet 172.30.55.200/24 scope global secondary eth0\       valid_lft forever preferred_lft forever
`

func TestVIPValidation(t *testing.T) {
	v, err := VIP{Address: "10.0.0.200", Peers: []string{"10.0.0.3", "10.0.0.2", "10.0.0.3"}, Priority: 100, RouterID: 1}.normalized()
	if err != nil || v.PrefixLen != 32 || !slices.Equal(v.Peers, []string{"10.0.0.2", "10.0.0.3"}) {
		t.Fatalf("normalized: %+v %v", v, err)
	}
	base := VIP{Address: "10.0.0.200", PrefixLen: 24, Priority: 100, RouterID: 51, Password: "12345678"}
	if _, err := base.normalized(); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(*VIP){
		"IPv6 address":     func(v *VIP) { v.Address = "fd00::1" },
		"no address":       func(v *VIP) { v.Address = "" },
		"prefix 33":        func(v *VIP) { v.PrefixLen = 33 },
		"priority 0":       func(v *VIP) { v.Priority = 0 },
		"priority 255":     func(v *VIP) { v.Priority = 255 },
		"router id 256":    func(v *VIP) { v.RouterID = 256 },
		"router id 0":      func(v *VIP) { v.RouterID = 0 },
		"password 9 chars": func(v *VIP) { v.Password = "123456789" },
		"password space":   func(v *VIP) { v.Password = "a b" },
		"password comment": func(v *VIP) { v.Password = "a#b" },
		"password quote":   func(v *VIP) { v.Password = `a"b` },
		"peer hostname":    func(v *VIP) { v.Peers = []string{"lb2.example.org"} },
		"peer is the VIP":  func(v *VIP) { v.Peers = []string{"10.0.0.200"} },
		"interface name":   func(v *VIP) { v.Interface = "eth0; rm" },
	} {
		v := base
		f(&v)
		if _, err := v.normalized(); err == nil {
			t.Errorf("%s: accepted", name)
		} else if v.Password != "" && strings.Contains(err.Error(), v.Password) {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
}

func TestParseNet(t *testing.T) {
	v := VIP{Address: "172.30.55.200", PrefixLen: 24, Peers: []string{"172.30.55.10", "172.30.55.11"}, Priority: 100, RouterID: 7}
	n, err := parseNet(sampleNet, v)
	if err != nil {
		t.Fatal(err)
	}
	// Its own address is not a peer; the source is its own address, never the virtual one it holds.
	if n.Interface != "eth0" || n.Source != "172.30.55.10" || !slices.Equal(n.Peers, []string{"172.30.55.11"}) {
		t.Fatalf("%+v", n)
	}
	// No peer: the interface whose network holds the address; multicast.
	n, err = parseNet(sampleNet, VIP{Address: "172.30.55.200", Priority: 1, RouterID: 1})
	if err != nil || n.Interface != "eth0" || n.Source != "172.30.55.10" || len(n.Peers) != 0 {
		t.Fatalf("no peer: %+v %v", n, err)
	}
	// An interface given by name.
	n, err = parseNet(sampleNet, VIP{Address: "10.9.9.9", Interface: "eth0", Peers: []string{"172.30.55.11"}, Priority: 1, RouterID: 1})
	if err != nil || n.Interface != "eth0" || n.Source != "172.30.55.10" {
		t.Fatalf("named interface: %+v %v", n, err)
	}
	if _, err := parseNet(sampleNet, VIP{Address: "10.9.9.9", Priority: 1, RouterID: 1}); err == nil {
		t.Error("an address outside every network, without an interface, was accepted")
	}
	if _, err := parseNet(sampleNet, VIP{Address: "10.9.9.9", Interface: "eth1", Priority: 1, RouterID: 1}); err == nil {
		t.Error("an interface without an address was accepted")
	}
	noRoute := "172.30.55.99 RTNETLINK answers: Network is unreachable\n====\n" + strings.SplitN(sampleNet, "====\n", 2)[1]
	if _, err := parseNet(noRoute, VIP{Address: "172.30.55.200", Peers: []string{"172.30.55.99"}, Priority: 1, RouterID: 1}); err == nil {
		t.Error("an unreachable peer was accepted")
	}
}

func TestVIPFiles(t *testing.T) {
	v, err := VIP{Address: "10.20.0.200", PrefixLen: 24, Peers: []string{"10.20.0.12", "10.20.0.11"}, Priority: 150, RouterID: 51, Password: "pa55word"}.normalized()
	if err != nil {
		t.Fatal(err)
	}
	conf, auth, check := vipFiles(v, vipNet{Interface: "ens3", Source: "10.20.0.11", Peers: []string{"10.20.0.12"}})
	want := `# Managed by MOHD: the front ends' virtual address. Do not edit: a change by hand shows as drift and the
# next apply undoes it.
global_defs {
	# Scripts run only when no one but root can write them. They run as root: HAProxy's runtime API is
	# root's and haproxy's (and keepalived 2.2.7's --config-test dies with another script user).
	enable_script_security
	script_user root
}

# HAProxy must answer on its runtime API; otherwise this node gives the address up (FAULT state).
vrrp_script mohd_haproxy {
	script "/etc/keepalived/mohd-check-haproxy"
	interval 1
	timeout 3
	fall 2
	rise 2
}

vrrp_instance mohd_vip {
	# Every node starts as a backup: the highest priority among those whose HAProxy answers wins.
	state BACKUP
	interface ens3
	virtual_router_id 51
	priority 150
	advert_int 1
	unicast_src_ip 10.20.0.11
	unicast_peer {
		10.20.0.12
	}
	# The VRRP password, readable by root only.
	include /etc/keepalived/mohd-vrrp-auth.conf
	virtual_ipaddress {
		10.20.0.200/24 dev ens3
	}
	track_script {
		mohd_haproxy
	}
}
`
	if string(conf) != want {
		t.Fatalf("keepalived.conf:\n%s\nwant:\n%s", conf, want)
	}
	if strings.Contains(string(conf), "pa55word") {
		t.Fatal("the password is in keepalived.conf")
	}
	if string(auth) != "# Managed by MOHD: the VRRP password of the front ends' virtual address (a secret).\nauthentication {\n\tauth_type PASS\n\tauth_pass pa55word\n}\n" {
		t.Fatalf("auth file:\n%s", auth)
	}
	if !strings.HasPrefix(string(check), "#!/bin/sh\n") || !strings.Contains(string(check), "unix-connect:"+AdminSocket) {
		t.Fatalf("check script:\n%s", check)
	}
	// No password, no peer: no include, multicast.
	v.Password = ""
	conf, auth, _ = vipFiles(v, vipNet{Interface: "ens3", Source: "10.20.0.11"})
	if auth != nil || strings.Contains(string(conf), "include") || strings.Contains(string(conf), "unicast") {
		t.Fatalf("no password, no peer:\n%s", conf)
	}
}

// fakeVIPHost answers keepalived's commands on a Fake like a front end at 172.30.55.10.
func fakeVIPHost(active string) *remote.Fake {
	f := remote.NewFake("root@lb1:22")
	f.Strict = true
	f.On(`ip -4 -o route get`, remote.Result{Stdout: []byte(sampleNet)})
	f.OnFunc(`mohd:active`, func(remote.Cmd) (remote.Result, error) {
		var b strings.Builder
		for _, p := range []string{KeepalivedConf, keepalivedAuth, keepalivedCheck} {
			if file, ok := f.File(p); ok {
				b.WriteString(sha256Hex(file.Content) + " 1700000000.5 " + p + "\n")
			}
		}
		applied := ""
		for _, c := range f.Commands() {
			if i := strings.Index(c, "> "+keepalivedApplied); i > 0 {
				applied = strings.Fields(c[strings.LastIndex(c[:i], "echo "):])[1]
			}
		}
		b.WriteString("\n==== mohd:active\n" + active + "\n==== mohd:enabled\nenabled\n==== mohd:applied\n" + applied +
			"\n==== mohd:clock\n1700000100.0 1000.00 10000 100\n==== mohd:addrs\n218: eth0    inet 172.30.55.10/24 brd 172.30.55.255 scope global eth0\n==== mohd:end\n")
		return remote.Result{Stdout: []byte(b.String())}, nil
	})
	f.On(`keepalived --config-test`, remote.Result{})
	f.On(`systemctl reload keepalived`, remote.Result{})
	return f
}

func TestConfigureVIPFake(t *testing.T) {
	ctx := context.Background()
	f := fakeVIPHost("active")
	v := VIP{Address: "172.30.55.200", PrefixLen: 24, Peers: []string{"172.30.55.10", "172.30.55.11"}, Priority: 150, RouterID: 9, Password: "s3cret"}
	changed, err := ConfigureVIP(ctx, f, v)
	if err != nil || !changed {
		t.Fatalf("first ConfigureVIP: %v %v", changed, err)
	}
	for p, mode := range map[string]uint32{KeepalivedConf: 0o644, keepalivedAuth: 0o600, keepalivedCheck: 0o755} {
		file, ok := f.File(p)
		if !ok || uint32(file.Mode) != mode || file.Owner != "root" {
			t.Errorf("%s: %+v", p, file)
		}
	}
	var configTested, reloaded bool
	for _, c := range f.Calls() {
		if strings.Contains(c.Command, "--config-test") {
			configTested = true
			if !strings.Contains(string(c.Stdin), "unicast_peer {\n\t\t172.30.55.11\n\t}") {
				t.Errorf("the checked configuration:\n%s", c.Stdin)
			}
		}
		if strings.Contains(c.Command, "reload keepalived") {
			reloaded = true
		}
		if strings.Contains(c.Command, "s3cret") {
			t.Errorf("the password is in a command: %s", c.Command)
		}
	}
	if !configTested || !reloaded {
		t.Fatalf("config test %v, reload %v: %q", configTested, reloaded, f.Commands())
	}
	st, err := InspectVIP(ctx, f, v)
	if err != nil || !st.InSync || st.Master || st.Interface != "eth0" || st.SourceAddress != "172.30.55.10" {
		t.Fatalf("InspectVIP: %+v %v", st, err)
	}
	n := len(f.Commands())
	if changed, err := ConfigureVIP(ctx, f, v); err != nil || changed {
		t.Fatalf("second ConfigureVIP: %v %v", changed, err)
	}
	for _, c := range f.Commands()[n:] {
		if strings.Contains(c, "systemctl reload") || strings.Contains(c, "systemctl start") || strings.Contains(c, "systemctl enable") {
			t.Errorf("the second ConfigureVIP ran %q", c)
		}
	}
	// A hand edit is drift, and ConfigureVIP puts it right.
	conf, _ := f.File(KeepalivedConf)
	f.SetFile(remote.File{Path: KeepalivedConf, Content: append(conf.Content, "# edited\n"...), Mode: 0o644, Owner: "root"})
	if st, err := InspectVIP(ctx, f, v); err != nil || st.InSync || st.FilesInSync {
		t.Fatalf("InspectVIP after a hand edit: %+v %v", st, err)
	}
	if changed, err := ConfigureVIP(ctx, f, v); err != nil || !changed {
		t.Fatalf("repair: %v %v", changed, err)
	}
	if st, err := InspectVIP(ctx, f, v); err != nil || !st.InSync {
		t.Fatalf("InspectVIP after the repair: %+v %v", st, err)
	}
}

func TestInspectVIPStopped(t *testing.T) {
	f := fakeVIPHost("inactive")
	st, err := InspectVIP(context.Background(), f, VIP{Address: "172.30.55.200", PrefixLen: 24, Priority: 1, RouterID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if st.InSync || st.Active || len(st.Diffs) == 0 {
		t.Fatalf("%+v", st)
	}
	for _, c := range f.Commands() {
		if strings.Contains(c, "systemctl reload") || strings.Contains(c, "systemctl start") || strings.Contains(c, "rm ") {
			t.Errorf("InspectVIP changed the host: %q", c)
		}
	}
	if len(f.Uploads()) != 0 {
		t.Errorf("InspectVIP uploaded %d files", len(f.Uploads()))
	}
}
