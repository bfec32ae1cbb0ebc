# The OpenStack module's wiring, against mocked openstack and moodle providers (offline; their schemas come
# from the providers installed by `terraform init`): anti-affinity server groups, one security group per role
# holding that role's ports only, the VIP port and its allowed address pairs, the SSD volume of each database
# server and its mount by cloud-init, and the hosts handed to the moodle-cluster module.

mock_provider "openstack" {
  mock_data "openstack_networking_subnet_v2" {
    defaults = {
      cidr       = "10.20.0.0/24"
      network_id = "8a0e8b3c-net"
      ip_version = 4
    }
  }
  mock_resource "openstack_networking_port_v2" {
    defaults = {
      all_fixed_ips = ["10.20.0.99"]
    }
  }
  mock_resource "openstack_blockstorage_volume_v3" {
    defaults = {
      id = "5f1c7e3a-9b2d-4c8e-a1f0-123456789abc"
    }
  }
}

mock_provider "moodle" {}

override_resource {
  target = openstack_networking_port_v2.vip
  values = {
    all_fixed_ips = ["10.20.0.10"]
  }
}

variables {
  name    = "site"
  wwwroot = "https://moodle.example.edu"
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

  images = {
    haproxy = "mohd-role-haproxy-20250301-101500"
    web     = "mohd-role-web-20250301-101500"
    db      = "mohd-role-db-20250301-101500"
    nfs     = "mohd-role-nfs-20250301-101500"
    redis   = "mohd-role-redis-20250301-101500"
  }
  flavors = {
    haproxy = "m1.small"
    web     = "m1.large"
    db      = "m1.xlarge"
    nfs     = "m1.medium"
    redis   = "m1.small"
  }
  subnet_id      = "3b1f0d6e-subnet"
  db_volume_type = "ssd"
  db_volume_size = 200
  admin_cidrs    = ["192.0.2.0/24"]

  frontends  = [{ name = "fe1", ip_address = "10.20.0.11" }, { name = "fe2", ip_address = "10.20.0.12" }]
  web_nodes  = [{ name = "web1", ip_address = "10.20.0.21" }, { name = "web2", ip_address = "10.20.0.22" }]
  db_nodes   = [{ name = "db1", ip_address = "10.20.0.31" }, { name = "db2", ip_address = "10.20.0.32" }]
  nfs_node   = { name = "nfs1", ip_address = "10.20.0.41" }
  redis_node = { name = "redis1" } # Neutron chooses (the mocked port says 10.20.0.99)

  floating_ip_pool    = "public"
  ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKMKWuOGeUTjV6zgPmwjSNaxsjTm3I0u6qaffTE+2uR8 operator"]
  host_keys = {
    fe1    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEUnHbYSimBO2fy6AEvwCietiZ5WLSoffsoz4yrfuLzd"
    fe2    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMDWJmO6Ud+uXzxsyu6Ke1RDVrdg75E3/hDXKsVxkNIK"
    web1   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJvhJu64fdX59stI6WGGIM9RlGI1BzgJZi8IEDLMW94z"
    web2   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC+LEB1GXxLWymXvkZb+jk9PaTRyef2oFxKEjmR/ahHu"
    db1    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKMKWuOGeUTjV6zgPmwjSNaxsjTm3I0u6qaffTE+2uR8"
    db2    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJCXp4ts9SFOYMHhS/VA4js9Oe0x4Wrt1Ef2WzBKEpXk"
    nfs1   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMfewG8Lhi7ASW5w7FM616lLAzBlyAYQBSmQB1GjFlCF"
    redis1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPiHeGWkDzWeptcVtXpVi/iKnuUBfxin7B0paiJtmIGz"
  }
}

run "servers_and_anti_affinity" {
  assert {
    condition     = toset(keys(openstack_compute_instance_v2.this)) == toset(["fe1", "fe2", "web1", "web2", "db1", "db2", "nfs1", "redis1"])
    error_message = "one server per host"
  }
  assert {
    condition     = toset(keys(openstack_compute_servergroup_v2.role)) == toset(["haproxy", "web", "db"])
    error_message = "server groups for the front ends, the web nodes and the databases"
  }
  assert {
    condition     = alltrue([for g in values(openstack_compute_servergroup_v2.role) : g.policies == tolist(["anti-affinity"])])
    error_message = "the server groups are anti-affinity"
  }
  assert {
    condition = alltrue([for name, role in { fe1 = "haproxy", fe2 = "haproxy", web1 = "web", web2 = "web", db1 = "db", db2 = "db" } :
      one(openstack_compute_instance_v2.this[name].scheduler_hints).group == openstack_compute_servergroup_v2.role[role].id
    ])
    error_message = "front ends, web nodes and databases are scheduled in their role's server group"
  }
  assert {
    condition     = length(openstack_compute_instance_v2.this["nfs1"].scheduler_hints) == 0 && length(openstack_compute_instance_v2.this["redis1"].scheduler_hints) == 0
    error_message = "the single NFS and Redis servers are in no server group"
  }
  assert {
    condition     = openstack_compute_instance_v2.this["db1"].image_id == data.openstack_images_image_v2.role["db"].id && data.openstack_images_image_v2.role["db"].name == "mohd-role-db-20250301-101500"
    error_message = "servers boot from their role's Glance image, found by name"
  }
  assert {
    condition     = openstack_compute_instance_v2.this["web2"].flavor_name == "m1.large" && openstack_compute_instance_v2.this["db1"].flavor_name == "m1.xlarge"
    error_message = "servers get their role's flavor"
  }
  assert {
    condition     = openstack_compute_instance_v2.this["web1"].metadata["mohd_role"] == "web" && openstack_compute_instance_v2.this["web1"].metadata["mohd_site"] == "site"
    error_message = "servers carry their site and role in their metadata"
  }
  assert {
    condition     = one(openstack_compute_instance_v2.this["db2"].network).port == openstack_networking_port_v2.this["db2"].id
    error_message = "each server is attached through its own port"
  }
}

run "security_groups" {
  assert {
    condition     = toset(keys(openstack_networking_secgroup_v2.role)) == toset(["haproxy", "web", "db", "nfs", "redis"])
    error_message = "one security group per role"
  }
  assert {
    condition = alltrue([for name, role in { fe1 = "haproxy", web1 = "web", db2 = "db", nfs1 = "nfs", redis1 = "redis" } :
      openstack_networking_port_v2.this[name].security_group_ids == toset([openstack_networking_secgroup_v2.role[role].id])
    ])
    error_message = "each port is in its role's security group only"
  }
  assert {
    condition = {
      for role in ["haproxy", "web", "db", "nfs", "redis"] : role => toset([
        for k, r in openstack_networking_secgroup_rule_v2.ingress : "${r.protocol}/${r.port_range_min}"
        if split("/", k)[0] == role && r.port_range_min == r.port_range_max
      ])
      } == {
      haproxy = toset(["tcp/22", "tcp/9100", "tcp/80", "tcp/443", "tcp/8405"])
      web     = toset(["tcp/22", "tcp/9100", "tcp/80", "tcp/9117"])
      db      = toset(["tcp/22", "tcp/9100", "tcp/3306", "tcp/9104"])
      nfs     = toset(["tcp/22", "tcp/9100", "tcp/2049", "tcp/111", "udp/111", "tcp/20048", "tcp/32803", "tcp/32765", "udp/32765"])
      redis   = toset(["tcp/22", "tcp/9100", "tcp/6379", "tcp/9121"])
    }
    error_message = "each role's security group admits exactly the ports its image's firewall opens"
  }
  assert {
    condition     = alltrue([for k, r in openstack_networking_secgroup_rule_v2.ingress : r.security_group_id == openstack_networking_secgroup_v2.role[split("/", k)[0]].id && r.direction == "ingress"])
    error_message = "each rule belongs to its role's security group"
  }
  assert {
    condition = toset([for k, r in openstack_networking_secgroup_rule_v2.ingress : r.remote_ip_prefix
    if split("/", k)[0] == "db" && r.port_range_min == 3306]) == toset(["10.20.0.0/24"])
    error_message = "MariaDB is open to the cluster's network (the subnet's CIDR) only"
  }
  assert {
    condition = toset([for k, r in openstack_networking_secgroup_rule_v2.ingress : r.remote_ip_prefix
    if split("/", k)[0] == "haproxy" && r.port_range_min == 443]) == toset(["0.0.0.0/0"])
    error_message = "HTTPS is open to public_cidrs"
  }
  assert {
    condition = toset([for k, r in openstack_networking_secgroup_rule_v2.ingress : r.remote_ip_prefix
    if split("/", k)[0] == "web" && r.port_range_min == 22]) == toset(["10.20.0.0/24", "192.0.2.0/24"])
    error_message = "SSH is open to the cluster's network and admin_cidrs"
  }
  assert {
    condition     = length(openstack_networking_secgroup_rule_v2.vrrp) == 1 && openstack_networking_secgroup_rule_v2.vrrp[0].protocol == "112" && openstack_networking_secgroup_rule_v2.vrrp[0].remote_group_id == openstack_networking_secgroup_v2.role["haproxy"].id
    error_message = "VRRP (protocol 112) is admitted between the front ends"
  }
}

run "vip_and_floating_ip" {
  assert {
    condition     = length(openstack_networking_port_v2.vip) == 1 && one(openstack_networking_port_v2.vip[0].fixed_ip).subnet_id == "3b1f0d6e-subnet"
    error_message = "two front ends get a VIP port on the subnet"
  }
  assert {
    condition = alltrue([for fe in ["fe1", "fe2"] :
      [for p in openstack_networking_port_v2.this[fe].allowed_address_pairs : p.ip_address] == ["10.20.0.10"]
    ])
    error_message = "the front ends' ports may carry the VIP (allowed_address_pairs)"
  }
  assert {
    condition     = length(openstack_networking_port_v2.this["web1"].allowed_address_pairs) == 0
    error_message = "other ports carry no extra address"
  }
  assert {
    condition     = openstack_networking_floatingip_associate_v2.this[0].port_id == openstack_networking_port_v2.vip[0].id && openstack_networking_floatingip_v2.this[0].pool == "public"
    error_message = "the floating IP goes to the VIP port"
  }
  assert {
    condition     = module.cluster[0].frontends.vip == "10.20.0.10/24" && module.cluster[0].frontends.addresses == ["10.20.0.11", "10.20.0.12"]
    error_message = "the cluster's VIP is the VIP port's address with the subnet's prefix length"
  }
}

run "database_volumes" {
  assert {
    condition     = toset(keys(openstack_blockstorage_volume_v3.db)) == toset(["db1", "db2"])
    error_message = "one volume per database server"
  }
  assert {
    condition     = alltrue([for v in values(openstack_blockstorage_volume_v3.db) : v.volume_type == "ssd" && v.size == 200])
    error_message = "the volumes are of the SSD volume type, of db_volume_size GB"
  }
  assert {
    condition = alltrue([for name in ["db1", "db2"] :
      openstack_compute_volume_attach_v2.db[name].instance_id == openstack_compute_instance_v2.this[name].id &&
      openstack_compute_volume_attach_v2.db[name].volume_id == openstack_blockstorage_volume_v3.db[name].id
    ])
    error_message = "each database server gets its own volume attached"
  }
  assert {
    condition     = strcontains(openstack_compute_instance_v2.this["db1"].user_data, "bootcmd") && strcontains(openstack_compute_instance_v2.this["db1"].user_data, "/dev/disk/by-id/*5f1c7e3a-9b2d-4c8e-a*")
    error_message = "a database server's cloud-init mounts its volume, found by the volume id"
  }
  assert {
    condition     = strcontains(yamldecode(openstack_compute_instance_v2.this["db1"].user_data).bootcmd[0][2], "mnt=/var/lib/mysql")
    error_message = "the volume is mounted at /var/lib/mysql"
  }
  assert {
    condition     = !strcontains(openstack_compute_instance_v2.this["web1"].user_data, "bootcmd")
    error_message = "other servers mount nothing"
  }
  assert {
    condition = yamldecode(openstack_compute_instance_v2.this["web1"].user_data).users == [{
      name                = "debian"
      shell               = "/bin/bash"
      lock_passwd         = true
      sudo                = "ALL=(ALL) NOPASSWD:ALL"
      ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKMKWuOGeUTjV6zgPmwjSNaxsjTm3I0u6qaffTE+2uR8 operator"]
    }]
    error_message = "cloud-init creates the login user with the key and passwordless sudo"
  }
  assert {
    condition     = startswith(openstack_compute_instance_v2.this["web1"].user_data, "#cloud-config\n")
    error_message = "the user data is a cloud-config"
  }
}

run "moodle_wiring" {
  assert {
    condition     = module.cluster[0].url == "https://moodle.example.edu" && module.cluster[0].cluster_name == "site"
    error_message = "the site is configured"
  }
  assert {
    condition     = module.cluster[0].primary.name == "db1" && module.cluster[0].replicas["db2"].address == "10.20.0.32"
    error_message = "db1 is the primary, db2 its replica"
  }
  assert {
    condition     = module.cluster[0].backends["web2"].address == "10.20.0.22"
    error_message = "web nodes are wired at their ports' addresses"
  }
  assert {
    condition     = output.addresses.redis == { redis1 = "10.20.0.99" } && output.servers["redis1"].address == "10.20.0.99"
    error_message = "a server without ip_address is wired at the address Neutron gave its port"
  }
  assert {
    condition     = output.floating_ip == openstack_networking_floatingip_v2.this[0].address && output.vip_address == "10.20.0.10"
    error_message = "outputs: floating IP and VIP"
  }
}

run "switchover" {
  variables {
    db_primary = "db2"
  }
  assert {
    condition     = output.primary.name == "db2" && output.replicas["db1"].address == "10.20.0.31"
    error_message = "db_primary moves the primary; the old primary is the replica"
  }
  assert {
    condition     = toset(keys(openstack_compute_instance_v2.this)) == toset(["fe1", "fe2", "web1", "web2", "db1", "db2", "nfs1", "redis1"])
    error_message = "a switchover changes no server"
  }
}

run "infrastructure_only_one_front_end" {
  variables {
    configure_moodle    = false
    frontends           = [{ name = "fe1", ip_address = "10.20.0.11" }]
    server_group_policy = "soft-anti-affinity"
  }

  assert {
    condition     = length(module.cluster) == 0 && output.url == null && output.drift == null
    error_message = "configure_moodle = false creates the servers only"
  }
  assert {
    condition     = length(openstack_networking_port_v2.vip) == 0 && length(openstack_networking_secgroup_rule_v2.vrrp) == 0 && length(openstack_networking_port_v2.this["fe1"].allowed_address_pairs) == 0
    error_message = "one front end: no VIP port, no VRRP rule, no allowed address pair"
  }
  assert {
    condition     = openstack_networking_floatingip_associate_v2.this[0].port_id == openstack_networking_port_v2.this["fe1"].id
    error_message = "one front end: the floating IP goes to its port"
  }
  assert {
    condition     = alltrue([for g in values(openstack_compute_servergroup_v2.role) : g.policies == tolist(["soft-anti-affinity"])])
    error_message = "server_group_policy sets the server groups' policy"
  }
  assert {
    condition     = strcontains(output.host_key_commands["fe1"], "openstack console log show ")
    error_message = "the host key commands are given"
  }
}

run "missing_image" {
  command = plan
  variables {
    images = { haproxy = "a", web = "b", db = "c", nfs = "d" }
  }
  expect_failures = [var.images]
}

run "duplicate_server_name" {
  command = plan
  variables {
    nfs_node = { name = "web1" }
  }
  expect_failures = [data.openstack_networking_subnet_v2.this]
}

run "bad_server_group_policy" {
  command = plan
  variables {
    server_group_policy = "affinity"
  }
  expect_failures = [var.server_group_policy]
}
