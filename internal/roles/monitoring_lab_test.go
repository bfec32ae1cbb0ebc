package roles_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/lab/labtest"
	"github.com/mohd-dev/mohd/internal/remote"
	"github.com/mohd-dev/mohd/internal/roles"
)

// fakeMattermost stands in for Mattermost's incoming webhook: it answers 200 to every request and appends
// the request line and body of each to a file. python3-minimal (in every Debian image) has socket but no
// http.server.
const fakeMattermost = `import socket, sys
port, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(5)
while True:
    c, _ = s.accept()
    c.settimeout(5)
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        while len(body) < n:
            chunk = c.recv(65536)
            if not chunk:
                break
            body += chunk
        with open(out, "ab") as f:
            f.write(head.split(b"\r\n")[0] + b"\n" + body + b"\n")
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    except Exception:
        pass
    c.close()
`

func TestApplyMonitoring(t *testing.T) {
	l, h := applyOnLabHost(t, "monitoring")
	ctx := context.Background()
	peer := labtest.Start(t, l, lab.HostSpec{Name: "peer"})[0]

	// From another host of the cluster network: Prometheus and Alertmanager answer; a port the role does
	// not list does not, although something listens on it; the gossip port is closed.
	get := func(port int, path string) string {
		t.Helper()
		out, err := peer.Exec(ctx, fmt.Sprintf(`timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%d; printf "GET %s HTTP/1.0\r\n\r\n" >&3; cat <&3'`, h.Addr, port, path))
		if err != nil {
			t.Fatalf("GET http://%s:%d%s from %s: %v", h.Addr, port, path, peer.Name, err)
		}
		return out
	}
	if out := get(9090, "/-/ready"); !strings.Contains(out, " 200 ") || !strings.Contains(out, "Prometheus Server is Ready.") {
		t.Errorf("Prometheus /-/ready from the peer: %q", out)
	}
	if out := get(9093, "/-/ready"); !strings.Contains(out, " 200 ") {
		t.Errorf("Alertmanager /-/ready from the peer: %q", out)
	}
	labtest.Exec(t, h, `systemd-run --unit=mohd-test-listener python3 -c 'import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 8081)); s.listen(5)
while True: s.accept()[0].close()'
for i in $(seq 50); do ss -Hltn 'sport = :8081' | grep -q . && break; sleep 0.1; done
timeout 3 bash -c 'echo > /dev/tcp/127.0.0.1/8081'`)
	for _, port := range []int{8081, 9094} {
		if _, err := peer.Exec(ctx, fmt.Sprintf("timeout 3 bash -c 'echo > /dev/tcp/%s/%d'", h.Addr, port)); err == nil {
			t.Errorf("port %d of the monitoring host is reachable from the cluster network", port)
		}
	}
	labtest.Exec(t, h, "systemctl stop mohd-test-listener")

	// Alertmanager has no webhook URL in the image: its configuration loads anyway (the checks ran amtool
	// and read the running configuration).
	if out, err := h.Exec(ctx, "test -e /etc/prometheus/alertmanager-mattermost-url"); err == nil {
		t.Fatalf("the image has a Mattermost URL file: %s", out)
	}

	// The provider's part, done by hand: a Mattermost webhook URL (here a fake Mattermost on the peer).
	// The check on the secret file refuses a world-readable one.
	labtest.Exec(t, peer, "cat > /root/mattermost.py <<'EOF'\n"+fakeMattermost+"EOF\n"+
		"systemd-run --unit=fake-mattermost python3 /root/mattermost.py 8065 /root/mattermost.out\n"+
		"for i in $(seq 50); do ss -Hltn 'sport = :8065' | grep -q . && break; sleep 0.1; done")
	rh := labtest.Remote(t, h)
	r, err := roles.Get("monitoring")
	if err != nil {
		t.Fatal(err)
	}
	labtest.Exec(t, h, fmt.Sprintf("printf 'http://%s:8065/hooks/mohdtest\\n' > /etc/prometheus/alertmanager-mattermost-url\n"+
		"chown root:prometheus /etc/prometheus/alertmanager-mattermost-url; chmod 0644 /etc/prometheus/alertmanager-mattermost-url", peer.Addr))
	if err := roles.Check(ctx, rh, r); err == nil || !strings.Contains(err.Error(), "accessible to others") {
		t.Errorf("the checks accept a world-readable Mattermost URL file: %v", err)
	}
	labtest.Exec(t, h, "chmod 0640 /etc/prometheus/alertmanager-mattermost-url")

	// A rule fires and reaches Mattermost: the monitoring host's own node exporter stops.
	labtest.Exec(t, h, "systemctl stop prometheus-node-exporter")
	t.Cleanup(func() { _, _ = h.Exec(context.Background(), "systemctl start prometheus-node-exporter") })
	stopped := time.Now()
	alertState := func() string {
		out, _ := h.Exec(ctx, `curl -fsS http://127.0.0.1:9090/api/v1/alerts | jq -r '.data.alerts[] | select(.labels.alertname == "InstanceDown" and .labels.job == "node" and .labels.instance == "localhost:9100") | .state'`)
		return strings.TrimSpace(out)
	}
	var pending, firing time.Duration
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline) && firing == 0; time.Sleep(2 * time.Second) {
		switch alertState() {
		case "pending":
			if pending == 0 {
				pending = time.Since(stopped)
			}
		case "firing":
			firing = time.Since(stopped)
		}
	}
	t.Logf("InstanceDown for the stopped node exporter: pending after %s, firing after %s", pending.Round(time.Second), firing.Round(time.Second))
	if firing == 0 {
		t.Fatalf("InstanceDown did not fire within 3 minutes of stopping the node exporter (state %q)", alertState())
	}
	var msg string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		msg, _ = peer.Exec(ctx, "cat /root/mattermost.out 2>/dev/null")
		if strings.Contains(msg, "InstanceDown") {
			break
		}
	}
	t.Logf("Mattermost got, %s after the stop:\n%s", time.Since(stopped).Round(time.Second), msg)
	for _, want := range []string{"POST /hooks/mohdtest HTTP/1.1", `"attachments":[`, `[FIRING:1] InstanceDown`, "node target localhost:9100 is down"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the Mattermost webhook did not get %q", want)
		}
	}
	labtest.Exec(t, h, "systemctl start prometheus-node-exporter")
	if err := roles.Check(ctx, rh, r); err != nil {
		t.Errorf("checks with the site's Mattermost URL file: %v", err)
	}

	// The node dashboard against the image's own node exporter: every query returns data.
	dash := labtest.Exec(t, h, `jq -r '.panels[].targets[]?.expr' /usr/share/mohd/grafana/dashboards/mohd-node.json`)
	vars := regexp.MustCompile(`"\$\w+"`)
	exprs := strings.Split(strings.TrimSpace(dash), "\n")
	if len(exprs) < 5 {
		t.Fatalf("the node dashboard has %d queries", len(exprs))
	}
	for _, expr := range exprs {
		q := vars.ReplaceAllString(strings.ReplaceAll(expr, "$__rate_interval", "1m"), `".*"`)
		var n string
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(3 * time.Second) {
			n, err = h.Exec(ctx, fmt.Sprintf(`curl -fsS --data-urlencode query=%s http://127.0.0.1:9090/api/v1/query | jq -r '.data.result | length'`, remote.Quote(q)))
			if err == nil && strings.TrimSpace(n) != "0" {
				break
			}
		}
		if err != nil || strings.TrimSpace(n) == "0" {
			t.Errorf("node dashboard query returns nothing on the monitoring host: %s (%v)", q, err)
		}
	}
	t.Logf("the node dashboard's %d queries return data from the monitoring host's Prometheus", len(exprs))
}
