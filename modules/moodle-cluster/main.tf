locals {
  db_names     = [for h in var.db_hosts : h.name]
  primary_name = var.db_primary != null ? var.db_primary : local.db_names[0]
  # An unknown name is reported by the precondition on moodle_cluster.this; 0 keeps the plan evaluable.
  primary_index = try(index(local.db_names, local.primary_name), 0)
  primary       = var.db_hosts[local.primary_index]

  # One replica resource per db host but the first, keyed by that host's name. It runs on its own host,
  # except while that host is the primary: then it runs on the first db host, which a switchover from
  # the first host (or back to it) has just made a replica. A switchover therefore changes one
  # variable, repoints one or two replica resources at hosts that already replicate (nothing is copied
  # again: the provider only re-points replication) and never destroys a replica resource.
  replicas = {
    for i, h in var.db_hosts : h.name => (i == local.primary_index ? var.db_hosts[0] : h) if i > 0
  }

  web_names = [for h in var.web_hosts : h.name]
  all_names = concat(
    [for h in var.frontends : h.name], local.web_names, local.db_names, [var.nfs.host.name, var.redis_host.name]
  )
  all_addresses = concat(
    [for h in var.frontends : h.address], [for h in var.web_hosts : h.address], [for h in var.db_hosts : h.address],
    [var.nfs.host.address, var.redis_host.address]
  )

  # The provider's host object: what it connects to (the name is only the module's key). Grouped by name so
  # that a name given twice reaches the precondition on moodle_cluster.this, not a duplicate-key error.
  host = { for h in concat(var.frontends, var.web_hosts, var.db_hosts, [var.nfs.host, var.redis_host]) :
    h.name => { address = h.address, port = h.port, host_key = h.host_key }...
  }
}

resource "moodle_cluster" "this" {
  name         = var.name
  wwwroot      = var.wwwroot
  cluster_cidr = var.cluster_cidr

  frontends = [for h in var.frontends : local.host[h.name][0]]
  vip       = var.vip
  tls       = var.tls

  database = {
    primary              = local.host[local.primary.name][0]
    name                 = var.database.name
    user                 = var.database.user
    password             = var.db_password
    replication_user     = var.database.replication_user
    replication_password = var.replication_password
  }
  nfs = {
    host             = local.host[var.nfs.host.name][0]
    export           = var.nfs.export
    version          = var.nfs.version
    existing_storage = var.nfs.existing_storage
  }
  redis = {
    host     = local.host[var.redis_host.name][0]
    password = var.redis_password
  }
  monitoring = var.monitoring_host == null ? null : {
    host                   = { address = var.monitoring_host.address, port = var.monitoring_host.port, host_key = var.monitoring_host.host_key }
    mattermost_webhook_url = var.mattermost_webhook_url
  }

  code = var.code
  admin = {
    email           = var.admin.email
    user            = var.admin.user
    password        = var.admin_password
    site_full_name  = var.admin.site_full_name
    site_short_name = var.admin.site_short_name
  }
  log_lifetime_days = var.log_lifetime_days
  settings          = length(var.settings) > 0 ? var.settings : null
  timeouts          = var.timeouts

  lifecycle {
    # Checks across variables (a variable's validation may only refer to itself before Terraform 1.9).
    precondition {
      condition     = contains(local.db_names, local.primary_name)
      error_message = "db_primary \"${local.primary_name}\" is not one of db_hosts (${join(", ", local.db_names)})."
    }
    precondition {
      condition     = (length(var.frontends) == 2) == (var.vip != null)
      error_message = "Two front ends need a virtual IP (vip) that keepalived moves between them; one front end takes none."
    }
    precondition {
      condition     = !startswith(var.wwwroot, "https://") || var.tls != null
      error_message = "wwwroot is https but tls (certificate and private key) is not set."
    }
    precondition {
      condition     = length(distinct(local.all_names)) == length(local.all_names)
      error_message = "Host names must be unique across frontends, web_hosts, db_hosts, nfs.host and redis_host."
    }
    precondition {
      condition     = length(distinct(local.all_addresses)) == length(local.all_addresses)
      error_message = "Every host needs an address of its own: a host has one role (frontends, web_hosts, db_hosts, nfs and redis must not share an address)."
    }
    precondition {
      condition     = length(setsubtract(keys(var.backends), local.web_names)) == 0
      error_message = "backends names a web node that is not in web_hosts: ${join(", ", setsubtract(keys(var.backends), local.web_names))}."
    }
  }
}

resource "moodle_db_replica" "this" {
  for_each = local.replicas

  cluster       = moodle_cluster.this.spec
  name          = each.key
  host          = local.host[each.value.name][0]
  use_for_reads = var.db_replicas_for_reads
  timeouts      = var.timeouts
}

resource "moodle_backend" "this" {
  for_each = { for h in var.web_hosts : h.name => h }

  cluster             = moodle_cluster.this.spec
  name                = each.key
  host                = local.host[each.key][0]
  weight              = try(var.backends[each.key].weight, null)
  state               = try(var.backends[each.key].state, null)
  fpm_max_children    = try(var.backends[each.key].fpm_max_children, null)
  fpm_child_memory_mb = try(var.backends[each.key].fpm_child_memory_mb, null)
  drain_timeout       = try(var.backends[each.key].drain_timeout, null)
  timeouts            = var.timeouts

  # Moodle's read-only queries go to the replicas that accept them (after a switchover: the old primary).
  read_replicas = [for r in values(moodle_db_replica.this) : r.host.address if r.use_for_reads]
}

# Hosts without a host_key are verified against the provider's ssh.known_hosts: say so, without failing.
check "host_keys" {
  assert {
    condition     = alltrue([for h in concat(var.frontends, var.web_hosts, var.db_hosts, [var.nfs.host, var.redis_host]) : h.host_key != null])
    error_message = "Some hosts have no host_key (${join(", ", [for h in concat(var.frontends, var.web_hosts, var.db_hosts, [var.nfs.host, var.redis_host]) : h.name if h.host_key == null])}): the provider's ssh.known_hosts must know them, or connections are refused."
  }
}
