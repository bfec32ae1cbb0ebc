package monitoring

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// The Mattermost URL file needs no reload: Alertmanager's receiver (slack_configs' api_url_file) reads it at each
// notification, so a new URL is used from the next notification on, and a missing file only fails the
// notifications (alerts stay in Prometheus and Alertmanager's UI). A reload would only add a way to fail (a
// configuration edited by hand since would be loaded, or refused, at that moment).

// checkWebhookURL validates a webhook URL without ever quoting it: it is a secret.
func checkWebhookURL(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	switch {
	case err != nil || strings.ContainsAny(u, " \t\r\n"):
		return errors.New("monitoring: the Mattermost webhook URL is not a valid URL")
	case p.Scheme != "https" && p.Scheme != "http":
		return errors.New("monitoring: the Mattermost webhook URL must start with https:// (or http://)")
	case p.Host == "":
		return errors.New("monitoring: the Mattermost webhook URL has no host")
	}
	return nil
}

// urlFile is the URL file as ConfigureAlerting writes it: the URL alone (no newline: older Alertmanagers use the
// file's content as it is), readable by Alertmanager's group only.
func urlFile(webhookURL string) remote.File {
	return remote.File{Path: MattermostURLFile, Content: []byte(webhookURL), Mode: 0o640, Owner: "root", Group: prometheusGroup}
}

const alertingScript = `sec() { printf '\n==== mohd:%s\n' "$1"; }
sec url
if [ -e ` + MattermostURLFile + ` ]; then stat -c '%a %U %G' ` + MattermostURLFile + ` && sha256sum < ` + MattermostURLFile + ` | cut -d' ' -f1; fi
sec active:` + alertmanagerUnit + `
systemctl is-active ` + alertmanagerUnit + ` 2>&1
sec enabled:` + alertmanagerUnit + `
systemctl is-enabled ` + alertmanagerUnit + ` 2>&1
sec end
`

// readAlerting reads the URL file's checksum (never the URL) and Alertmanager's state.
func readAlerting(ctx context.Context, h remote.Host, webhookURL string) (fileState, *hostState, error) {
	c := remote.Cmd{Command: alertingScript, Desc: "read Alertmanager's webhook URL file (its checksum) and state"}
	if webhookURL != "" {
		c.Secrets = []string{webhookURL}
	}
	res, err := h.Run(ctx, c)
	if err != nil {
		return fileState{}, nil, fmt.Errorf("monitoring: %w", err)
	}
	secs := splitSections(string(res.Stdout))
	if _, ok := secs["end"]; !ok {
		return fileState{}, nil, fmt.Errorf("monitoring: %s: the state script's output is incomplete: %q", h.Name(), remote.Tail(string(res.Stdout)))
	}
	hs := &hostState{active: map[string]string{alertmanagerUnit: strings.TrimSpace(secs["active:"+alertmanagerUnit])},
		enabled: map[string]string{alertmanagerUnit: strings.TrimSpace(secs["enabled:"+alertmanagerUnit])}}
	return parseFile(secs["url"]), hs, nil
}

// ConfigureAlerting sets the Mattermost incoming-webhook URL Alertmanager notifies on the monitoring host h. An
// empty URL removes the file: alerts then stay in Prometheus and in Alertmanager's UI (port 9093), and each
// notification fails with a line in Alertmanager's journal. It also starts Alertmanager if it is down. changed
// reports whether anything on the host changed.
func ConfigureAlerting(ctx context.Context, h remote.Host, webhookURL string) (changed bool, err error) {
	if err := checkWebhookURL(webhookURL); err != nil {
		return false, err
	}
	unlock, err := h.Lock(ctx, alertingLock)
	if err != nil {
		return false, fmt.Errorf("monitoring: taking the lock of Alertmanager's webhook URL on %s: %w", h.Name(), err)
	}
	defer func() { _ = unlock() }()
	fs, hs, err := readAlerting(ctx, h, webhookURL)
	if err != nil {
		return false, err
	}
	switch f := urlFile(webhookURL); {
	case webhookURL == "" && fs.exists:
		if _, err := h.Run(ctx, remote.Cmd{Desc: "remove Alertmanager's webhook URL file", Command: "rm -f -- " + MattermostURLFile}); err != nil {
			return false, fmt.Errorf("monitoring: %w", err)
		}
		changed = true
	case webhookURL != "" && !fs.matches(f):
		// Upload sends the content on stdin and writes it atomically: Alertmanager never reads half a URL.
		if changed, err = h.Upload(ctx, f); err != nil {
			return false, fmt.Errorf("monitoring: writing %s: %w", MattermostURLFile, err)
		}
	}
	started, err := ensureRunning(ctx, h, hs, alertmanagerUnit)
	return changed || started, err
}

// InspectAlerting says how the monitoring host h differs from webhookURL (as ConfigureAlerting takes it), one
// line each (empty: in sync): the URL file (compared by checksum: the URL is never read back), its mode and owner,
// Alertmanager running. It changes nothing.
func InspectAlerting(ctx context.Context, h remote.Host, webhookURL string) ([]string, error) {
	if err := checkWebhookURL(webhookURL); err != nil {
		return nil, err
	}
	fs, hs, err := readAlerting(ctx, h, webhookURL)
	if err != nil {
		return nil, err
	}
	var d []string
	f := urlFile(webhookURL)
	switch {
	case webhookURL == "" && fs.exists:
		d = append(d, MattermostURLFile+" exists, want none (alerts are not sent to Mattermost)")
	case webhookURL == "":
	case !fs.exists:
		d = append(d, MattermostURLFile+" is missing: Alertmanager's notifications fail")
	case fs.sha256 != sha256Hex(f.Content):
		d = append(d, MattermostURLFile+" holds another webhook URL")
	default:
		if s := fs.describe(f, ""); s != "" {
			d = append(d, s)
		}
	}
	if s := hs.serviceDiff(alertmanagerUnit); s != "" {
		d = append(d, s)
	}
	return d, nil
}
