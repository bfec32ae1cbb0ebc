package haproxy

import (
	"slices"
	"strings"
	"testing"
)

// Answers of HAProxy 2.6.12 (Debian 12) on a lab front end: web1 active and up, web2 "drain" (weight 0 in
// the configuration), web3 "maintenance" (disabled), web4 drained at run time (set server ... state drain).
const sampleServersState = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
2 moodle 1 web1 172.30.55.21 2 0 100 100 7 15 3 4 6 0 0 0 - 9100 - 0 0 - - 0
2 moodle 2 web2 172.30.55.22 0 0 0 0 1 17 2 0 6 0 0 0 - 80 - 0 0 - - 0
2 moodle 3 web3 172.30.55.23 0 5 100 100 6 1 0 0 14 0 0 0 - 80 - 0 0 - - 0
2 moodle 4 web4 172.30.55.24 0 8 10 10 4 17 2 0 6 0 0 0 - 8405 - 0 0 - - 0

`

const sampleStat = `# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,
moodle,web1,0,0,3,5,,0,0,0,,0,,0,0,0,0,UP,100,1,0,0,0,7,0,,1,2,1,,0,,2,0,,0,L7OK,200,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check passed,,2,3,4,,,,172.30.55.21:9100,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
moodle,web2,1,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,0,1,0,3,1,1,1,,1,2,2,,0,,2,0,,0,L7STS,503,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Service Unavailable,,0,0,0,0,,,,Layer7 wrong status,,2,3,0,,,,172.30.55.22:80,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,0,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
moodle,web3,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,100,1,0,0,0,6,6,,1,2,3,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,172.30.55.23:80,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
moodle,BACKEND,0,0,3,5,,0,0,0,,0,,0,0,0,0,UP,100,1,0,,0,7,0,,1,2,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,leastconn,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,1,100,0,0,0,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,

`

func TestParseServersState(t *testing.T) {
	got, err := parseServersState(sampleServersState)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]runtimeServer{
		"web1": {Name: "web1", Addr: "172.30.55.21", Port: 9100, OpState: opRunning, Admin: 0, UWeight: 100, IWeight: 100},
		"web2": {Name: "web2", Addr: "172.30.55.22", Port: 80, OpState: opStopped, Admin: 0, UWeight: 0, IWeight: 0},
		"web3": {Name: "web3", Addr: "172.30.55.23", Port: 80, OpState: opStopped, Admin: admCMaint | admFMaint, UWeight: 100, IWeight: 100},
		"web4": {Name: "web4", Addr: "172.30.55.24", Port: 8405, OpState: opStopped, Admin: admFDrain, UWeight: 10, IWeight: 10},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d servers: %+v", len(got), got)
	}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %+v, want %+v", n, got[n], w)
		}
	}
	for n, adm := range map[string]string{"web1": "ready", "web2": "ready", "web3": "maintenance", "web4": "drain"} {
		if got[n].adminState() != adm {
			t.Errorf("%s: admin %q, want %q", n, got[n].adminState(), adm)
		}
	}
	if got["web1"].opState() != "up" || got["web2"].opState() != "down" {
		t.Error("operational states")
	}

	if empty, err := parseServersState("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n\n"); err != nil || len(empty) != 0 {
		t.Fatalf("backend without server: %v %v", empty, err)
	}
	if _, err := parseServersState("Can't find backend.\n"); err != errNoBackend {
		t.Fatalf("unknown backend: %v", err)
	}
	for _, bad := range []string{"", "2\n# be_id\n", "1\n2 moodle 1 web1\n", "1\n# be_id be_name srv_name\n"} {
		if _, err := parseServersState(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

func TestParseStat(t *testing.T) {
	got, err := parseStat(sampleStat)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("rows: %+v", got)
	}
	w1, w2, w3 := got["web1"], got["web2"], got["web3"]
	if w1.Status != "UP" || w1.CheckStatus != "L7OK" || w1.CheckCode != "200" || w1.CheckDesc != "Layer7 check passed" || w1.Sessions != 3 || w1.Weight != 100 {
		t.Errorf("web1: %+v", w1)
	}
	if w2.Status != "DOWN" || w2.CheckStatus != "L7STS" || w2.CheckCode != "503" || w2.Queued != 1 || w2.Weight != 0 {
		t.Errorf("web2: %+v", w2)
	}
	if w3.Status != "MAINT" || w3.CheckStatus != "" {
		t.Errorf("web3: %+v", w3)
	}
	if _, err := parseStat("Unknown command.\n"); err == nil {
		t.Error("an error answer was accepted")
	}
}

func TestParseWorkers(t *testing.T) {
	out := `#<PID>          <type>          <reloads>       <uptime>        <version>      
52              master          4 [failed: 0]   0d00h00m10s     2.6.12-1+deb12u4
# workers
543             worker          0               0d00h00m05s     2.6.12-1+deb12u4
# old workers
382             worker          2               0d00h00m07s     2.6.12-1+deb12u4
# programs
`
	if got := parseWorkers(out); !slices.Equal(got, []string{"543", "382"}) {
		t.Fatalf("workers: %v", got)
	}
}

func TestRuntimeDriftAndFixes(t *testing.T) {
	active := Server{Name: "web1", Address: "10.0.0.1", Port: 80, Weight: 100, State: StateActive}
	drain := active
	drain.State = StateDrain
	maint := active
	maint.State = StateMaintenance
	up := runtimeServer{Name: "web1", Addr: "10.0.0.1", Port: 80, OpState: opRunning, UWeight: 100, IWeight: 100}
	with := func(f func(*runtimeServer)) runtimeServer { r := up; f(&r); return r }
	cases := []struct {
		name  string
		want  Server
		rt    runtimeServer
		drift string // a part of the drift; "" for none
		fixes []string
	}{
		{"active in sync", active, up, "", nil},
		{"active, disabled by hand", active, with(func(r *runtimeServer) { r.Admin = admFMaint }), "maintenance", []string{"set server moodle/web1 state ready"}},
		{"active, drained by hand", active, with(func(r *runtimeServer) { r.Admin = admFDrain }), "drained", []string{"set server moodle/web1 state ready"}},
		{"active, weight by hand", active, with(func(r *runtimeServer) { r.UWeight = 7 }), "weight 7", []string{"set weight moodle/web1 100"}},
		{"active, enabled by hand after config disabled", active, with(func(r *runtimeServer) { r.Admin = admCMaint }), "", nil},
		{"drain as configured", drain, with(func(r *runtimeServer) { r.UWeight, r.IWeight = 0, 0 }), "", nil},
		{"drain by the runtime API", drain, with(func(r *runtimeServer) { r.Admin = admFDrain }), "", nil},
		{"drain, weight set by hand", drain, with(func(r *runtimeServer) { r.UWeight, r.IWeight = 5, 0 }), "weight 5", []string{"set weight moodle/web1 0"}},
		{"drain, disabled by hand", drain, with(func(r *runtimeServer) { r.UWeight, r.Admin = 0, admFMaint }), "maintenance", []string{"set server moodle/web1 state drain"}},
		{"maintenance as configured", maint, with(func(r *runtimeServer) { r.Admin, r.OpState = admCMaint|admFMaint, opStopped }), "", nil},
		{"maintenance, enabled by hand", maint, with(func(r *runtimeServer) { r.Admin = admCMaint }), "not in maintenance", []string{"set server moodle/web1 state maint"}},
		{"another address", active, with(func(r *runtimeServer) { r.Addr = "10.0.0.9" }), "address 10.0.0.9:80", nil},
		{"another port", active, with(func(r *runtimeServer) { r.Port = 8080 }), "address 10.0.0.1:8080", nil},
	}
	for _, c := range cases {
		d := strings.Join(runtimeDrift(c.want, c.rt), "; ")
		if (c.drift == "") != (d == "") || !strings.Contains(d, c.drift) {
			t.Errorf("%s: drift %q, want %q", c.name, d, c.drift)
		}
		if f := runtimeFixes(c.want, c.rt); !slices.Equal(f, c.fixes) {
			t.Errorf("%s: fixes %q, want %q", c.name, f, c.fixes)
		}
	}
	// A host name is resolved by HAProxy: only its port is compared.
	byName := active
	byName.Address = "web1.example.org"
	if d := runtimeDrift(byName, up); len(d) != 0 {
		t.Errorf("host name: %q", d)
	}
	v6 := active
	v6.Address = "fd00::0:1"
	if d := runtimeDrift(v6, with(func(r *runtimeServer) { r.Addr = "fd00::1" })); len(d) != 0 {
		t.Errorf("IPv6 spelt differently: %q", d)
	}
}
