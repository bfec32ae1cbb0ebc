package roles

func init() {
	register(&Role{
		Name:        "redis",
		Summary:     "Redis for Moodle's sessions and application cache",
		Packages:    []string{"redis-server", "redis-tools", "prometheus-redis-exporter"},
		KeyPackages: []string{"redis-server", "prometheus-redis-exporter"},
		Ports: []Port{
			{Port: 6379, What: "Redis"},
			{Port: 9121, What: "Redis exporter"},
		},
		Files: func(p Params) ([]File, error) {
			return renderAll(p,
				// The image listens on loopback only; the provider adds the private address and the password
				// (a secret never baked into an image) in /etc/redis/conf.d/ when it wires the site.
				fileSpec{Path: "/etc/redis/redis.conf", Template: "redis/redis.conf", Mode: 0o640, Owner: "redis", Group: "redis",
					Restart: []string{"redis-server"}},
				fileSpec{Path: "/etc/redis/conf.d/00-placeholder.conf", Template: "redis/00-empty.conf", Mode: 0o640, Owner: "redis", Group: "redis"},
			)
		},
		Services: []string{"redis-server", "prometheus-redis-exporter"},
		InContainer: map[string]string{
			// Debian's unit combines PrivateUsers= with ProtectProc=invisible, which a container's /proc refuses.
			"redis-server.service": "[Service]\nProtectProc=default\n",
		},
		Checks: []Step{
			{Desc: "Redis answers on loopback", Script: redisAuth + `test "$(redis-cli -h 127.0.0.1 ping)" = PONG`},
			{Desc: "Redis runs in protected mode with sessions persisted", Script: redisAuth + `redis-cli -h 127.0.0.1 config get protected-mode | grep -qx yes
redis-cli -h 127.0.0.1 config get appendonly | grep -qx yes
redis-cli -h 127.0.0.1 config get maxmemory-policy | grep -qx noeviction`},
			{Desc: "the Redis exporter serves metrics", Script: `curl -fsS http://127.0.0.1:9121/metrics | grep -q '^redis_up 1'`},
		},
	})
}

// redisAuth gives the checks the site's password once the provider has set one (internal/redis writes it,
// quoted, in 50-mohd-site.conf): through REDISCLI_AUTH, never on a command line.
const redisAuth = `f=/etc/redis/conf.d/50-mohd-site.conf
if [ -r "$f" ]; then REDISCLI_AUTH=$(sed -n 's/^requirepass "\(.*\)"$/\1/p' "$f" | sed 's/\\\(.\)/\1/g'); export REDISCLI_AUTH; fi
`
