package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/mohd-dev/mohd/internal/lab/labtest"
)

// The checks use only what real Moodle and the fixture share (the login form, the dashboard, Apache's access
// log, Moodle's tables), so they hold for both.

var logintokenRE = regexp.MustCompile(`name="logintoken" value="([^"]*)"`)

// login signs the admin in through the front end and returns the client holding the session cookie.
func login(front string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(front + "/login/index.php")
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := logintokenRE.FindSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		return nil, fmt.Errorf("GET /login/index.php: %s without a logintoken: %.300s", resp.Status, body)
	}
	resp, err = c.PostForm(front+"/login/index.php", url.Values{"username": {"admin"}, "password": {adminPassword}, "logintoken": {string(m[1])}})
	if err != nil {
		return nil, err
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Request.URL.Path, "/my") {
		return nil, fmt.Errorf("login ended at %s with %s: %.300s", resp.Request.URL, resp.Status, body)
	}
	return c, nil
}

// checkSite logs in through the front end, then asks for the dashboard until every named backend has served
// it (read from each node's Apache access log): the session, kept in Redis, holds on every node.
func (sl *siteLab) checkSite(t *testing.T, front string, backends []string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		c, err := login(front)
		if err != nil {
			return err
		}
		marker := fmt.Sprintf("mohdcheck%d", time.Now().UnixNano())
		noRedirect := *c
		noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		for i := 0; i < 20*len(backends); i++ {
			resp, err := noRedirect.Get(fmt.Sprintf("%s/my/index.php?%s=%d", front, marker, i))
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("request %d for the dashboard answered %s (to %s): the session did not hold", i, resp.Status, resp.Header.Get("Location"))
			}
		}
		for _, b := range backends {
			n := strings.TrimSpace(labtest.Exec(t, sl.hosts[b], "grep -c "+marker+" /var/log/apache2/moodle-access.log || true"))
			if n == "0" || n == "" {
				return fmt.Errorf("backend %s served none of the logged-in requests", b)
			}
		}
		return nil
	}
}

// checkNotServed proves a removed backend gets no more requests.
func (sl *siteLab) checkNotServed(t *testing.T, front, backend string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		marker := fmt.Sprintf("mohdgone%d", time.Now().UnixNano())
		for i := 0; i < 30; i++ {
			resp, err := http.Get(fmt.Sprintf("%s/login/index.php?%s=%d", front, marker, i))
			if err != nil {
				return err
			}
			resp.Body.Close()
		}
		if n := strings.TrimSpace(labtest.Exec(t, sl.hosts[backend], "grep -c "+marker+" /var/log/apache2/moodle-access.log || true")); n != "0" {
			return fmt.Errorf("removed backend %s still served %s requests", backend, n)
		}
		return nil
	}
}

// checkSharedFiles writes a file into moodledata as the web server on one node and reads it on the other.
func (sl *siteLab) checkSharedFiles(t *testing.T, a, b string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		want := fmt.Sprintf("written on %s at %d", a, time.Now().UnixNano())
		labtest.Exec(t, sl.hosts[a], fmt.Sprintf("echo %q | sudo -u www-data tee /var/www/moodledata/mohd-check.txt >/dev/null", want))
		if got := strings.TrimSpace(labtest.Exec(t, sl.hosts[b], "sudo -u www-data cat /var/www/moodledata/mohd-check.txt")); got != want {
			return fmt.Errorf("%s read %q from moodledata, %s wrote %q", b, got, a, want)
		}
		return nil
	}
}

// checkReplicaReads writes a row on the primary and waits for it on the replica.
func (sl *siteLab) checkReplicaReads(t *testing.T, primary, replica string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		v := strconv.FormatInt(time.Now().UnixNano(), 10)
		labtest.Exec(t, sl.hosts[primary], `mariadb -e "CREATE DATABASE IF NOT EXISTS mohd_check; CREATE TABLE IF NOT EXISTS mohd_check.t (v BIGINT PRIMARY KEY); INSERT INTO mohd_check.t VALUES (`+v+`)"`)
		for i := 0; i < 50; i++ {
			if strings.TrimSpace(labtest.Exec(t, sl.hosts[replica], `mariadb -N -e "SELECT COUNT(*) FROM mohd_check.t WHERE v = `+v+`" 2>/dev/null || echo 0`)) == "1" {
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("a row written on %s did not reach %s in 10 s", primary, replica)
	}
}

// checkCronOnce waits until cron has run scheduled tasks, then proves no task ran twice in the same minute
// although every backend runs cron (Moodle's task locks).
func (sl *siteLab) checkCronOnce(t *testing.T, primary string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		q := func(sql string) string {
			return strings.TrimSpace(labtest.Exec(t, sl.hosts[primary], `mariadb -N moodle -e "`+sql+`"`))
		}
		deadline := time.Now().Add(3 * time.Minute)
		for q("SELECT COUNT(*) FROM mdl_task_log WHERE type = 0") == "0" {
			if time.Now().After(deadline) {
				return errors.New("no scheduled task ran within 3 minutes of the site's creation: is cron running on the backends?")
			}
			time.Sleep(5 * time.Second)
		}
		if dup := q("SELECT classname, FLOOR(timestart / 60), COUNT(*) FROM mdl_task_log WHERE type = 0 GROUP BY classname, FLOOR(timestart / 60) HAVING COUNT(*) > 1"); dup != "" {
			return fmt.Errorf("scheduled tasks ran more than once in the same minute:\n%s", dup)
		}
		return nil
	}
}

// checkScraped waits until Prometheus on the monitoring host scrapes the named hosts' node exporters "up".
func (sl *siteLab) checkScraped(t *testing.T, hosts ...string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		var missing []string
		for i := 0; i < 40; i++ {
			var resp struct {
				Data struct {
					ActiveTargets []struct {
						Labels map[string]string `json:"labels"`
						Health string            `json:"health"`
					} `json:"activeTargets"`
				} `json:"data"`
			}
			body := labtest.Exec(t, sl.hosts["mon1"], `curl -fsS 'http://127.0.0.1:9090/api/v1/targets?state=active'`)
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				return fmt.Errorf("Prometheus' targets: %v: %.200s", err, body)
			}
			up := map[string]bool{}
			for _, at := range resp.Data.ActiveTargets {
				if at.Labels["job"] == "node" && at.Health == "up" {
					up[at.Labels["instance"]] = true
				}
			}
			missing = missing[:0]
			for _, h := range hosts {
				if !up[sl.hosts[h].Addr+":9100"] {
					missing = append(missing, h)
				}
			}
			if len(missing) == 0 {
				return nil
			}
			time.Sleep(3 * time.Second)
		}
		return fmt.Errorf("Prometheus does not scrape the node exporters of %v (up) after 2 minutes", missing)
	}
}

// checkBackendsGone: after destroy no front end has a server left.
func (sl *siteLab) checkBackendsGone(t *testing.T) resource.TestCheckFunc {
	return func(*terraform.State) error {
		out := labtest.Exec(t, sl.hosts["fe1"], `echo 'show servers state moodle' | socat stdio /run/haproxy/admin.sock | awk 'NR > 2 && NF > 3 {print $4}'`)
		if strings.TrimSpace(out) != "" {
			return fmt.Errorf("servers left in HAProxy after destroy: %s", out)
		}
		return nil
	}
}

// loadGen sends requests through the front end from a few clients, new connections and keep-alive ones,
// counting failures, until stopped.
type loadGen struct {
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	ok, failed    atomic.Int64
	mu            sync.Mutex
	firstFailures []string
}

func startLoad(t *testing.T, front string) *loadGen {
	ctx, cancel := context.WithCancel(context.Background())
	g := &loadGen{cancel: cancel}
	for i := 0; i < 4; i++ {
		tr := &http.Transport{DisableKeepAlives: i%2 == 0}
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for ctx.Err() == nil {
				resp, err := c.Get(front + "/login/index.php")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						g.ok.Add(1)
						continue
					}
					err = fmt.Errorf("HTTP %s", resp.Status)
				}
				if ctx.Err() != nil {
					return
				}
				g.failed.Add(1)
				g.mu.Lock()
				if len(g.firstFailures) < 5 {
					g.firstFailures = append(g.firstFailures, time.Now().Format("15:04:05.000")+" "+err.Error())
				}
				g.mu.Unlock()
			}
		}()
	}
	t.Logf("load started through %s", front)
	return g
}

func (g *loadGen) stopAndCheck(t *testing.T) error {
	g.cancel()
	g.wg.Wait()
	t.Logf("load: %d requests answered, %d failed", g.ok.Load(), g.failed.Load())
	if g.failed.Load() > 0 {
		return fmt.Errorf("%d of %d requests failed during the change: %v", g.failed.Load(), g.failed.Load()+g.ok.Load(), g.firstFailures)
	}
	if g.ok.Load() < 50 {
		return fmt.Errorf("only %d requests were made during the change: the load did not run", g.ok.Load())
	}
	return nil
}
