output "url" {
  description = "The site's URL (`wwwroot`)."
  value       = moodle_cluster.this.wwwroot
}

output "cluster_name" {
  description = "The site's name (the `moodle_cluster` id; import ids of its backends and replicas start with it)."
  value       = moodle_cluster.this.name
}

output "frontends" {
  description = "The front ends' addresses and the virtual address (null with one front end)."
  value = {
    addresses = [for f in moodle_cluster.this.frontends : f.address]
    vip       = moodle_cluster.this.vip
  }
}

output "primary" {
  description = "The database primary: its name in `db_hosts` and its address."
  value = {
    name    = local.primary_name
    address = moodle_cluster.this.primary
  }
}

output "replicas" {
  description = "Each replica by the name of the db host it runs on: its address, the replica resource's key, its replication threads (`Yes`, `No`, `Connecting`), lag and last error. (The GTID position, which moves with every write, stays on the `moodle_db_replica` resources: an output of it would make every plan show a change.)"
  value = {
    for k, r in moodle_db_replica.this : local.replicas[k].name => {
      address                = r.host.address
      resource_key           = k
      use_for_reads          = r.use_for_reads
      io_running             = r.io_running
      sql_running            = r.sql_running
      seconds_behind_primary = r.seconds_behind_primary
      last_error             = r.last_error
    }
  }
}

output "replica_lag" {
  description = "Replication lag in seconds (`seconds_behind_primary`) by replica host name; null while a replication thread is stopped."
  value       = { for k, r in moodle_db_replica.this : local.replicas[k].name => r.seconds_behind_primary }
}

output "read_replicas" {
  description = "Addresses the web nodes send Moodle's read-only queries to."
  value       = [for r in values(moodle_db_replica.this) : r.host.address if r.use_for_reads]
}

output "backends" {
  description = "Each web node by name: its address, state and weight as configured, HAProxy's view of it per front end (`frontend_states`), the deployed release and Moodle code version."
  value = {
    for k, b in moodle_backend.this : k => {
      address         = b.host.address
      state           = b.state
      weight          = b.weight
      frontend_states = b.frontend_states
      release         = b.release
      code_version    = b.code_version
      fpm_pool_size   = b.fpm_pool_size
    }
  }
}

output "backend_states" {
  description = "HAProxy's view of each web node per front end, by node name."
  value       = { for k, b in moodle_backend.this : k => b.frontend_states }
}

output "drift" {
  description = "What the last refresh found different on the cluster's hosts from the configuration (a file edited by hand, a stopped service...). Non-empty means the next apply repairs it."
  value       = moodle_cluster.this.drift
}

output "member_drift" {
  description = "The same for each web node (`backends`) and each replica (`replicas`, by resource key), listing only those that drifted."
  value = {
    backends = { for k, b in moodle_backend.this : k => b.drift if try(length(b.drift), 0) > 0 }
    replicas = { for k, r in moodle_db_replica.this : k => r.drift if try(length(r.drift), 0) > 0 }
  }
}

output "last_event" {
  description = "What the last apply did beyond converging (a switchover, a failover)."
  value       = moodle_cluster.this.last_event
}

output "moodle_version" {
  description = "Moodle's version and release read from the site's database (empty until installed)."
  value = {
    version = moodle_cluster.this.moodle_version
    release = moodle_cluster.this.moodle_release
  }
}

output "spec" {
  description = "The cluster's `spec`, for more `moodle_backend` or `moodle_db_replica` resources outside this module."
  value       = moodle_cluster.this.spec
  sensitive   = true
}
