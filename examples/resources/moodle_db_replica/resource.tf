# A replica of the site's primary, seeded over SSH and kept in sync with semi-synchronous GTID replication.
resource "moodle_db_replica" "db" {
  for_each = { db2 = "10.20.0.32" }

  cluster       = moodle_cluster.site.spec
  name          = each.key
  host          = { address = each.value, host_key = var.host_keys[each.key] }
  use_for_reads = true
}
