# The module's wiring, against a mocked moodle provider (offline; the schema comes from the provider
# installed by `terraform init`): one backend per web host, replicas = db hosts minus the primary, and a
# switchover that is one variable change and repoints the replica resource instead of replacing it.

mock_provider "moodle" {
  mock_resource "moodle_db_replica" {
    defaults = {
      io_running             = "Yes"
      sql_running            = "Yes"
      seconds_behind_primary = 2
    }
  }
  mock_resource "moodle_backend" {
    defaults = {
      frontend_states = { fe1 = "UP", fe2 = "UP" }
    }
  }
}

variables {
  name         = "site"
  wwwroot      = "https://moodle.example.edu"
  cluster_cidr = "10.20.0.0/24"
  tls = {
    certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    private_key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
  }
  code  = { git_url = "https://git.example.edu/mirrors/moodle.git", ref = "v4.5.6" }
  admin = { email = "moodle-admins@example.edu" }

  admin_password       = "Admin-Password-42"
  db_password          = "Db-Password-4242"
  replication_password = "Repl-Password-42"
  redis_password       = "Redis-Password-42"

  frontends = [
    { name = "fe1", address = "10.20.0.11", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEUnHbYSimBO2fy6AEvwCietiZ5WLSoffsoz4yrfuLzd" },
    { name = "fe2", address = "10.20.0.12", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMDWJmO6Ud+uXzxsyu6Ke1RDVrdg75E3/hDXKsVxkNIK" },
  ]
  vip = "10.20.0.10/24"
  web_hosts = [
    { name = "web1", address = "10.20.0.21", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJvhJu64fdX59stI6WGGIM9RlGI1BzgJZi8IEDLMW94z" },
    { name = "web2", address = "10.20.0.22", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC+LEB1GXxLWymXvkZb+jk9PaTRyef2oFxKEjmR/ahHu" },
    { name = "web3", address = "10.20.0.23", port = 2222, host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAi3H5SgHFWVHD/VeyTFpcYUha3rxyeRnhRUeN3JfkPz" },
  ]
  db_hosts = [
    { name = "db1", address = "10.20.0.31", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKMKWuOGeUTjV6zgPmwjSNaxsjTm3I0u6qaffTE+2uR8" },
    { name = "db2", address = "10.20.0.32", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJCXp4ts9SFOYMHhS/VA4js9Oe0x4Wrt1Ef2WzBKEpXk" },
  ]
  nfs        = { host = { name = "nfs1", address = "10.20.0.41", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMfewG8Lhi7ASW5w7FM616lLAzBlyAYQBSmQB1GjFlCF" } }
  redis_host = { name = "redis1", address = "10.20.0.51", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPiHeGWkDzWeptcVtXpVi/iKnuUBfxin7B0paiJtmIGz" }
  backends = {
    web3 = { weight = 50, state = "drain" }
  }
}

run "wiring" {
  assert {
    condition     = toset(keys(moodle_backend.this)) == toset(["web1", "web2", "web3"])
    error_message = "one moodle_backend per web host, keyed by its name"
  }
  assert {
    condition     = moodle_backend.this["web3"].host.address == "10.20.0.23" && moodle_backend.this["web3"].host.port == 2222
    error_message = "a backend runs on its own host, with its SSH port"
  }
  assert {
    condition     = moodle_backend.this["web3"].weight == 50 && moodle_backend.this["web3"].state == "drain"
    error_message = "per-backend weight and state come from var.backends"
  }
  assert {
    condition     = moodle_backend.this["web1"].weight != 50 && moodle_backend.this["web1"].state != "drain"
    error_message = "backends not in var.backends do not get another node's settings (the provider's defaults apply)"
  }
  assert {
    condition     = alltrue([for b in values(moodle_backend.this) : b.cluster == moodle_cluster.this.spec])
    error_message = "every backend joins the cluster through its spec"
  }
  assert {
    condition     = moodle_cluster.this.database.primary.address == "10.20.0.31"
    error_message = "the primary defaults to the first db host"
  }
  assert {
    condition     = toset(keys(moodle_db_replica.this)) == toset(["db2"]) && moodle_db_replica.this["db2"].host.address == "10.20.0.32"
    error_message = "replicas are the db hosts minus the primary"
  }
  assert {
    condition     = moodle_db_replica.this["db2"].cluster == moodle_cluster.this.spec && moodle_db_replica.this["db2"].use_for_reads
    error_message = "the replica joins the cluster and serves reads"
  }
  assert {
    condition     = alltrue([for b in values(moodle_backend.this) : b.read_replicas == tolist(["10.20.0.32"])])
    error_message = "every backend reads from the replica"
  }
  assert {
    condition     = [for f in moodle_cluster.this.frontends : f.address] == ["10.20.0.11", "10.20.0.12"] && moodle_cluster.this.vip == "10.20.0.10/24"
    error_message = "both front ends and the virtual IP are the cluster's"
  }
  assert {
    condition     = moodle_cluster.this.nfs.host.address == "10.20.0.41" && moodle_cluster.this.redis.host.address == "10.20.0.51"
    error_message = "NFS and Redis hosts are wired"
  }
  assert {
    condition     = moodle_cluster.this.frontends[0].host_key == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEUnHbYSimBO2fy6AEvwCietiZ5WLSoffsoz4yrfuLzd"
    error_message = "host keys are passed to the provider"
  }
  assert {
    condition     = output.primary.name == "db1" && output.url == "https://moodle.example.edu"
    error_message = "outputs: primary and url"
  }
  assert {
    condition     = length(output.replica_lag) == 1 && output.replica_lag["db2"] == 2 && output.replicas["db2"].io_running == "Yes"
    error_message = "replica lag and state are reported by replica host name"
  }
  assert {
    condition     = output.backend_states["web1"] == tomap({ fe1 = "UP", fe2 = "UP" }) && output.backends["web3"].state == "drain"
    error_message = "backends' states are reported"
  }
}

run "switchover" {
  variables {
    db_primary = "db2"
  }

  assert {
    condition     = moodle_cluster.this.database.primary.address == "10.20.0.32"
    error_message = "db_primary moves the cluster's primary"
  }
  assert {
    condition     = toset(keys(moodle_db_replica.this)) == toset(["db2"])
    error_message = "the switchover keeps the replica resource (same key: updated in place, not replaced)"
  }
  assert {
    condition     = moodle_db_replica.this["db2"].host.address == "10.20.0.31" && moodle_db_replica.this["db2"].host.host_key == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKMKWuOGeUTjV6zgPmwjSNaxsjTm3I0u6qaffTE+2uR8"
    error_message = "the replica resource now points at the old primary's host"
  }
  assert {
    condition     = alltrue([for b in values(moodle_backend.this) : b.read_replicas == tolist(["10.20.0.31"])])
    error_message = "the web nodes read from the new replica"
  }
  assert {
    condition     = output.primary.name == "db2" && toset(keys(output.replica_lag)) == toset(["db1"])
    error_message = "outputs follow the switchover"
  }
}

run "switch_back" {
  assert {
    condition     = moodle_cluster.this.database.primary.address == "10.20.0.31" && moodle_db_replica.this["db2"].host.address == "10.20.0.32"
    error_message = "switching back restores the first layout"
  }
}

run "three_db_hosts" {
  variables {
    db_hosts = [
      { name = "db1", address = "10.20.0.31" },
      { name = "db2", address = "10.20.0.32" },
      { name = "db3", address = "10.20.0.33" },
    ]
    db_primary            = "db3"
    db_replicas_for_reads = false
  }

  # The db hosts have no host_key: the check warns (in a test, a failed check must be expected).
  expect_failures = [check.host_keys]

  assert {
    condition     = moodle_cluster.this.database.primary.address == "10.20.0.33"
    error_message = "db3 is the primary"
  }
  assert {
    condition     = toset(keys(moodle_db_replica.this)) == toset(["db2", "db3"])
    error_message = "one replica resource per db host but the first"
  }
  assert {
    condition     = moodle_db_replica.this["db2"].host.address == "10.20.0.32" && moodle_db_replica.this["db3"].host.address == "10.20.0.31"
    error_message = "db2 stays; the slot of db3 (now the primary) holds the old primary db1"
  }
  assert {
    condition     = alltrue([for b in values(moodle_backend.this) : length(b.read_replicas) == 0])
    error_message = "db_replicas_for_reads = false sends no reads to the replicas"
  }
  assert {
    condition     = moodle_db_replica.this["db2"].host.host_key == null
    error_message = "a host without host_key leaves it to the provider's known_hosts"
  }
}

run "single_front_end_plain_http" {
  variables {
    wwwroot   = "http://10.20.0.11"
    tls       = null
    frontends = [{ name = "fe1", address = "10.20.0.11" }]
    vip       = null
    db_hosts  = [{ name = "db1", address = "10.20.0.31" }]
    code      = { path = "/srv/moodle-4.5.6.tgz" }
    backends  = {}
  }

  expect_failures = [check.host_keys]

  assert {
    condition     = length(moodle_cluster.this.frontends) == 1 && moodle_cluster.this.vip == null && moodle_cluster.this.tls == null
    error_message = "one front end, no virtual IP, no TLS"
  }
  assert {
    condition     = length(moodle_db_replica.this) == 0 && alltrue([for b in values(moodle_backend.this) : length(b.read_replicas) == 0])
    error_message = "one db host: no replica, no read replica"
  }
  assert {
    condition     = moodle_cluster.this.code.path == "/srv/moodle-4.5.6.tgz" && moodle_cluster.this.code.git_url == null
    error_message = "code from a local archive"
  }
}
