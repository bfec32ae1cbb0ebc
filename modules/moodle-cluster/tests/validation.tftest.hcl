# Input validation: each run breaks one thing in an otherwise valid site and expects the variable's
# validation, or the precondition on moodle_cluster (checks across variables), to refuse the plan.

mock_provider "moodle" {}

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

run "bad_name" {
  command = plan
  variables {
    name = "my site"
  }
  expect_failures = [var.name]
}

run "wwwroot_trailing_slash" {
  command = plan
  variables {
    wwwroot = "https://moodle.example.edu/"
  }
  expect_failures = [var.wwwroot]
}

run "wwwroot_not_a_url" {
  command = plan
  variables {
    wwwroot = "moodle.example.edu"
  }
  expect_failures = [var.wwwroot]
}

run "cluster_cidr_not_a_network" {
  command = plan
  variables {
    cluster_cidr = "10.20.0.0"
  }
  expect_failures = [var.cluster_cidr]
}

run "three_front_ends" {
  command = plan
  variables {
    frontends = [
      { name = "fe1", address = "10.20.0.11" },
      { name = "fe2", address = "10.20.0.12" },
      { name = "fe3", address = "10.20.0.13" },
    ]
  }
  expect_failures = [var.frontends]
}

run "duplicate_web_names" {
  command = plan
  variables {
    web_hosts = [
      { name = "web1", address = "10.20.0.21" },
      { name = "web1", address = "10.20.0.22" },
    ]
  }
  expect_failures = [var.web_hosts]
}

run "no_db_host" {
  command = plan
  variables {
    db_hosts = []
  }
  expect_failures = [var.db_hosts]
}

run "bad_ssh_port" {
  command = plan
  variables {
    db_hosts = [{ name = "db1", address = "10.20.0.31", port = 70000 }]
  }
  expect_failures = [var.db_hosts]
}

run "vip_without_prefix" {
  command = plan
  variables {
    vip = "10.20.0.10"
  }
  expect_failures = [var.vip]
}

run "code_git_and_path" {
  command = plan
  variables {
    code = { git_url = "https://git.example.edu/moodle.git", ref = "v4.5.6", path = "/srv/moodle" }
  }
  expect_failures = [var.code]
}

run "code_git_without_ref" {
  command = plan
  variables {
    code = { git_url = "https://git.example.edu/moodle.git" }
  }
  expect_failures = [var.code]
}

run "short_db_password" {
  command = plan
  variables {
    db_password = "short"
  }
  expect_failures = [var.db_password]
}

run "db_password_with_quote" {
  command = plan
  variables {
    db_password = "Db-Password-\"42"
  }
  expect_failures = [var.db_password]
}

run "bad_admin_email" {
  command = plan
  variables {
    admin = { email = "admins" }
  }
  expect_failures = [var.admin]
}

run "bad_backend_state" {
  command = plan
  variables {
    backends = { web1 = { state = "off" } }
  }
  expect_failures = [var.backends]
}

run "bad_backend_weight" {
  command = plan
  variables {
    backends = { web1 = { weight = 300 } }
  }
  expect_failures = [var.backends]
}

run "bad_nfs_version" {
  command = plan
  variables {
    nfs = { host = { name = "nfs1", address = "10.20.0.41" }, version = "4" }
  }
  expect_failures = [var.nfs]
}

run "primary_not_a_db_host" {
  command = plan
  variables {
    db_primary = "db9"
  }
  expect_failures = [moodle_cluster.this]
}

run "two_front_ends_without_vip" {
  command = plan
  variables {
    vip = null
  }
  expect_failures = [moodle_cluster.this]
}

run "vip_with_one_front_end" {
  command = plan
  variables {
    frontends = [{ name = "fe1", address = "10.20.0.11", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEUnHbYSimBO2fy6AEvwCietiZ5WLSoffsoz4yrfuLzd" }]
  }
  expect_failures = [moodle_cluster.this]
}

run "https_without_tls" {
  command = plan
  variables {
    tls = null
  }
  expect_failures = [moodle_cluster.this]
}

run "backend_not_a_web_host" {
  command = plan
  variables {
    backends = { web9 = { weight = 10 } }
  }
  expect_failures = [moodle_cluster.this]
}

run "host_in_two_roles" {
  command = plan
  variables {
    redis_host = { name = "redis1", address = "10.20.0.41", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPiHeGWkDzWeptcVtXpVi/iKnuUBfxin7B0paiJtmIGz" }
  }
  expect_failures = [moodle_cluster.this]
}

run "name_in_two_roles" {
  command = plan
  variables {
    redis_host = { name = "web1", address = "10.20.0.51", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPiHeGWkDzWeptcVtXpVi/iKnuUBfxin7B0paiJtmIGz" }
  }
  expect_failures = [moodle_cluster.this]
}
