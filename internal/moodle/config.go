package moodle

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/mohd-dev/mohd/internal/remote"
)

// shimPHP is every release's config.php: no secret, the same for every site. It loads SiteConfig, then the
// release's own lib/setup.php. It must be a file in the release, not a symbolic link to SiteConfig: PHP
// resolves __DIR__ through symbolic links, so Moodle would look for lib/setup.php in /etc/moodle.
var shimPHP = []byte(`<?php
// Managed by MOHD: this release's config.php. The site's configuration, with its secrets, is
// ` + SiteConfig + ` (0640 root:www-data), shared by every release: this file loads it, then
// this release's Moodle. Edit neither: MOHD rewrites both.
require_once(` + phpString(SiteConfig) + `);
require_once(__DIR__ . '/lib/setup.php');
`)

var phpIntRe = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,14})$`)

// phpValue types a setting's value: booleans and plain integers as PHP booleans and integers (Moodle
// compares many settings loosely, but some with ===), anything else as a string.
func phpValue(v string) string {
	switch {
	case v == "true" || v == "false":
		return v
	case phpIntRe.MatchString(v):
		return v
	}
	return phpString(v)
}

// RenderConfig returns the release shim and SiteConfig for s. The output depends on s only (settings in
// name order), so an unchanged site renders byte for byte the same file.
func RenderConfig(s Site) (shim, site []byte, err error) {
	if err := s.Validate(); err != nil {
		return nil, nil, fmt.Errorf("moodle site configuration: %w", err)
	}
	s = s.WithDefaults()
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }

	p(`<?php`)
	p(`// Managed by MOHD (moodle_backend): this site's Moodle configuration, loaded by every release's`)
	p(`// config.php. Do not edit: the next apply rewrites it, and a hand edit shows as drift.`)
	p(`unset($CFG);`)
	p(`global $CFG;`)
	p(`$CFG = new stdClass();`)
	p(``)
	p(`// The database: writes, locks and sessions on the primary; read-only queries on the replicas when`)
	p(`// there are any (Moodle falls back to the primary when none answers within connecttimeout).`)
	p(`$CFG->dbtype = 'mariadb';`)
	p(`$CFG->dblibrary = 'native';`)
	p(`$CFG->dbhost = %s;`, phpString(s.DB.Host))
	p(`$CFG->dbname = %s;`, phpString(s.DB.Name))
	p(`$CFG->dbuser = %s;`, phpString(s.DB.User))
	p(`$CFG->dbpass = %s;`, phpString(s.DB.Password))
	p(`$CFG->prefix = %s;`, phpString(s.DB.Prefix))
	p(`$CFG->dboptions = [`)
	p(`    'dbpersist' => false,`)
	p(`    'dbport' => %d,`, s.DB.Port)
	p(`    'dbcollation' => 'utf8mb4_unicode_ci',`)
	if len(s.DB.ReadReplicas) > 0 {
		p(`    'readonly' => [`)
		p(`        'instance' => [`)
		for _, r := range s.DB.ReadReplicas {
			host, port, _ := splitHostPort(r) // validated above
			if port == 0 {
				p(`            %s,`, phpString(host))
			} else {
				p(`            ['dbhost' => %s, 'dbport' => %d],`, phpString(host), port)
			}
		}
		p(`        ],`)
		p(`        'connecttimeout' => 2,`)
		p(`        'latency' => 1,`)
		p(`    ],`)
	}
	p(`];`)
	p(``)
	p(`// The site's address, the same on every web node.`)
	p(`$CFG->wwwroot = %s;`, phpString(s.WWWRoot))
	if s.SSLProxy {
		p(`// TLS ends at the front ends, which talk HTTP to this node.`)
		p(`$CFG->sslproxy = true;`)
	}
	p(`// Apache's mod_remoteip (role web) already put the client's address in REMOTE_ADDR, trusting`)
	p(`// X-Forwarded-For from the cluster network only. Moodle uses REMOTE_ADDR and never reads the headers`)
	p(`// again (what X-Forwarded-For still holds then comes from the client). 3 = skip HTTP_CLIENT_IP and`)
	p(`// HTTP_X_FORWARDED_FOR.`)
	p(`$CFG->getremoteaddrconf = 3;`)
	if len(s.TrustedProxies) > 0 {
		p(`$CFG->reverseproxyignore = %s;`, phpString(strings.Join(s.TrustedProxies, ",")))
	}
	p(``)
	p(`// Files: moodledata on the shared NFS mount, the local cache on this node's own disk (never on NFS).`)
	p(`$CFG->dataroot = %s;`, phpString(DataRoot))
	p(`$CFG->localcachedir = %s;`, phpString(LocalCacheDir))
	p(`// Directories Moodle creates in moodledata: for the web server's user and group only.`)
	p(`$CFG->directorypermissions = 02770;`)
	p(``)
	p(`// Sessions in Redis, with Moodle's session locking.`)
	p(`$CFG->session_handler_class = '\\core\\session\\redis';`)
	p(`$CFG->session_redis_host = %s;`, phpString(s.Redis.Host))
	p(`$CFG->session_redis_port = %d;`, s.Redis.Port)
	if s.Redis.Password != "" {
		p(`$CFG->session_redis_auth = %s;`, phpString(s.Redis.Password))
	}
	p(`$CFG->session_redis_database = %d;`, s.Redis.Database)
	if s.Redis.Prefix != "" {
		p(`$CFG->session_redis_prefix = %s;`, phpString(s.Redis.Prefix))
	}
	p(`$CFG->session_redis_acquire_lock_timeout = %d;`, s.Redis.LockTimeout)
	if s.Redis.LockRetry > 0 {
		p(`$CFG->session_redis_acquire_lock_retry = %d;`, s.Redis.LockRetry)
	}
	p(`$CFG->session_redis_lock_expire = %d;`, s.Redis.LockExpire)
	p(``)
	p(`// Locks (cron's task locks among them) in the database: one lock service for every node. File locks`)
	p(`// in moodledata would depend on NFS locking.`)
	p(`$CFG->lock_factory = '\\core\\lock\\mysql_lock_factory';`)
	p(``)
	p(`// The code is deployed by MOHD and read-only for the web server: no plugin installation or update from`)
	p(`// the web interface, no executable path set from it.`)
	p(`$CFG->disableupdateautodeploy = true;`)
	p(`$CFG->preventexecpath = true;`)

	core, plugins := splitSettings(s)
	if len(core) > 0 {
		p(``)
		p(`// The site's own settings, forced here (the admin pages show them as set in config.php).`)
		for _, k := range sortedKeys(core) {
			p(`$CFG->%s = %s;`, k, phpValue(core[k]))
		}
	}
	p(``)
	p(`// Plugin settings forced here. logstore_standard's loglifetime (days; 0 keeps the log forever) is how`)
	p(`// long the standard log keeps events: its cleanup task deletes older ones.`)
	p(`$CFG->forced_plugin_settings = [`)
	comps := make([]string, 0, len(plugins))
	for c := range plugins {
		comps = append(comps, c)
	}
	sort.Strings(comps)
	for _, c := range comps {
		p(`    %s => [`, phpString(c))
		for _, k := range sortedKeys(plugins[c]) {
			p(`        %s => %s,`, phpString(k), phpValue(plugins[c][k]))
		}
		p(`    ],`)
	}
	p(`];`)
	return append([]byte(nil), shimPHP...), []byte(b.String()), nil
}

// splitSettings sorts the site's settings into core ones and plugin ones (by component), with the log
// lifetime added.
func splitSettings(s Site) (core map[string]string, plugins map[string]map[string]string) {
	core = map[string]string{}
	plugins = map[string]map[string]string{"logstore_standard": {"loglifetime": strconv.Itoa(s.LogLifetimeDays)}}
	for k, v := range s.Settings {
		if comp, name, ok := strings.Cut(k, "/"); ok {
			if plugins[comp] == nil {
				plugins[comp] = map[string]string{}
			}
			plugins[comp][name] = v
			continue
		}
		core[k] = v
	}
	return core, plugins
}

// siteConfigFile is SiteConfig as uploaded: secrets inside, readable by PHP (group www-data) only.
func siteConfigFile(content []byte) remote.File {
	return remote.File{Path: SiteConfig, Content: content, Mode: 0o640, Owner: "root", Group: WebUser, MkdirParents: true}
}

// WriteConfig writes SiteConfig for s and, when it changed, reloads PHP-FPM so that every worker reads the
// new file at once (OPcache would otherwise serve the old one for up to opcache.revalidate_freq).
func WriteConfig(ctx context.Context, h remote.Host, s Site) (changed bool, err error) {
	_, site, err := RenderConfig(s)
	if err != nil {
		return false, err
	}
	// /etc/moodle: root's, entered by PHP (www-data) only.
	res, err := h.Run(ctx, remote.Cmd{
		Command: fmt.Sprintf(`d=%s
if [ ! -d "$d" ]; then mkdir -p "$d"; chown root:%[2]s "$d"; chmod 0750 "$d"; echo changed
elif [ "$(stat -c '%%U:%%G %%a' "$d")" != "root:%[2]s 750" ]; then chown root:%[2]s "$d"; chmod 0750 "$d"; echo changed
fi`, SiteConfigDir, WebUser),
		Desc: "directory " + SiteConfigDir,
	})
	if err != nil {
		return false, err
	}
	changed = strings.TrimSpace(string(res.Stdout)) == "changed"
	up, err := h.Upload(ctx, siteConfigFile(site))
	if err != nil {
		return changed, err
	}
	if up {
		if err := reloadFPM(ctx, h); err != nil {
			return true, err
		}
	}
	return changed || up, nil
}
