// Package monitoring wires a site into the monitoring host cloned from the monitoring role image
// (internal/roles, files/monitoring): Prometheus' scrape targets and Alertmanager's Mattermost webhook URL.
//
// Scrape targets: the role's prometheus.yml has one job per exporter kind (Jobs) that reads its targets from a
// file_sd file, /etc/prometheus/targets/<job>.yml, and re-reads it by itself when it changes (no reload). Several
// callers register targets independently and at the same time (the cluster, each web backend, each database
// replica: one Terraform resource each), each under a stable member name ("cluster/site", "backend/web1"), like
// web servers register with HAProxy (package haproxy): the desired state is one registry file on the monitoring
// host (RegistryFile), read, changed and written under the host lock LockName, and every job's file is always
// rendered from it, whole. A member's targets carry the label mohd_member, so that each resource finds its own
// targets in Prometheus' view. Register returns once Prometheus has read the files it wrote: Prometheus' file
// discovery starts watching the directory only after its first read, so a file written while Prometheus starts
// (the provider registers right after the monitoring host boots) would wait for the periodic re-read (5
// minutes); Register sees that in prometheus_sd_file_mtime_seconds and makes Prometheus read it again.
//
// Alerting: Alertmanager's receiver reads the Mattermost incoming-webhook URL from MattermostURLFile at each
// notification (api_url_file), so setting it needs no reload.
//
// Inspect and InspectAlerting only read: they tell whether the host holds what was asked, so that the provider can
// show drift; Register and ConfigureAlerting repair it. Prometheus' own view of a target (up or down) is reported
// beside, never as drift: an exporter that is down is an alert, not a configuration change.
package monitoring
