# Web nodes of the site; each registers with every front end once its health check answers.
resource "moodle_backend" "web" {
  for_each = {
    web1 = "10.20.0.21"
    web2 = "10.20.0.22"
  }

  cluster = moodle_cluster.site.spec
  name    = each.key
  host    = { address = each.value, host_key = var.host_keys[each.key] }
  weight  = 100
  state   = "active" # "drain" before maintenance on the node, "maintenance" to take it out

  # Moodle's read-only queries go to the replicas that accept them.
  read_replicas = [for r in moodle_db_replica.db : r.host.address if r.use_for_reads]
}
