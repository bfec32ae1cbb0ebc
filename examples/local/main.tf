# The local demo's site through the platform-neutral wiring module: two HAProxy front ends sharing a
# keepalived VIP, the web nodes, a MariaDB primary and its replica, NFS, Redis and monitoring, on the lab's
# hosts.

locals {
  host = { for name, h in var.hosts : name => { name = name, address = h.address, host_key = h.host_key } }
}

module "moodle" {
  source = "../../modules/moodle-cluster"

  name         = "demo"
  wwwroot      = "http://${split("/", var.vip)[0]}" # plain HTTP: a lab has no certificate
  cluster_cidr = var.cluster_cidr

  frontends = [for n in var.frontends : local.host[n]]
  vip       = length(var.frontends) == 2 ? var.vip : null
  web_hosts = [for n in var.backends : local.host[n]]
  # db_primary is the primary, the others its replicas.
  db_hosts   = [for n in var.db_hosts : local.host[n]]
  db_primary = var.db_primary
  # The lab's kernel has no NFS client: the web nodes share moodledata through a Docker volume, and MOHD
  # checks that storage instead of mounting the export. On VMs, leave existing_storage out.
  nfs = {
    host             = local.host[var.nfs]
    existing_storage = true
  }
  redis_host = local.host[var.redis]
  # Prometheus on the monitoring host scrapes every member's exporters; alerts go to Mattermost when a
  # webhook is given.
  monitoring_host        = var.monitoring == "" ? null : local.host[var.monitoring]
  mattermost_webhook_url = var.mattermost_webhook_url
  # A node removed from web_hosts is drained for at most this long before it leaves the front ends.
  backends = { for n in var.backends : n => { drain_timeout = "30s" } }

  code = { path = var.code_path }
  admin = {
    email = var.admin_email
  }
  log_lifetime_days = 30

  admin_password       = var.admin_password
  db_password          = var.db_password
  replication_password = var.replication_password
  redis_password       = var.redis_password
}
