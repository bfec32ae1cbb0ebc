locals {
  roles = ["haproxy", "web", "db", "nfs", "redis"]

  server_list = concat(
    [for s in var.frontends : { name = s.name, ip_address = s.ip_address, role = "haproxy" }],
    [for s in var.web_nodes : { name = s.name, ip_address = s.ip_address, role = "web" }],
    [for s in var.db_nodes : { name = s.name, ip_address = s.ip_address, role = "db" }],
    [{ name = var.nfs_node.name, ip_address = var.nfs_node.ip_address, role = "nfs" }],
    [{ name = var.redis_node.name, ip_address = var.redis_node.ip_address, role = "redis" }],
  )
  server_names = [for s in local.server_list : s.name]
  # Grouped, then the first taken: a duplicate name is reported by the precondition on the subnet.
  servers = { for name, group in { for s in local.server_list : s.name => s... } : name => group[0] }

  # The roles whose servers must not share a hypervisor: two front ends, the web nodes, the databases.
  spread_roles = ["haproxy", "web", "db"]

  two_frontends = length(var.frontends) == 2
  subnet_cidr   = data.openstack_networking_subnet_v2.this.cidr
  cluster_cidr  = var.cluster_cidr != null ? var.cluster_cidr : local.subnet_cidr
  vip_ip        = local.two_frontends ? openstack_networking_port_v2.vip[0].all_fixed_ips[0] : null

  # The ports each role image's firewall opens (internal/roles: commonPorts and the role's Ports), mirrored
  # here so that the cloud admits no more: "public" ports from public_cidrs, "admin" (SSH) from the
  # cluster's network and admin_cidrs, "cluster" ports from the cluster's network only.
  common_ports = [
    { protocol = "tcp", port = 22, from = "admin", what = "SSH" },
    { protocol = "tcp", port = 9100, from = "cluster", what = "node exporter" },
  ]
  role_ports = {
    haproxy = [
      { protocol = "tcp", port = 80, from = "public", what = "HTTP (Moodle)" },
      { protocol = "tcp", port = 443, from = "public", what = "HTTPS (Moodle)" },
      { protocol = "tcp", port = 8405, from = "cluster", what = "HAProxy metrics and statistics" },
    ]
    web = [
      { protocol = "tcp", port = 80, from = "cluster", what = "Moodle over HTTP (from the front ends)" },
      { protocol = "tcp", port = 9117, from = "cluster", what = "Apache exporter" },
    ]
    db = [
      { protocol = "tcp", port = 3306, from = "cluster", what = "MariaDB (web nodes, replicas)" },
      { protocol = "tcp", port = 9104, from = "cluster", what = "MariaDB exporter" },
    ]
    nfs = [
      { protocol = "tcp", port = 2049, from = "cluster", what = "NFS" },
      { protocol = "tcp", port = 111, from = "cluster", what = "rpcbind (NFSv3)" },
      { protocol = "udp", port = 111, from = "cluster", what = "rpcbind (NFSv3)" },
      { protocol = "tcp", port = 20048, from = "cluster", what = "NFSv3 MOUNT" },
      { protocol = "tcp", port = 32803, from = "cluster", what = "NFSv3 locks (NLM)" },
      { protocol = "tcp", port = 32765, from = "cluster", what = "rpc.statd (NFSv3 lock recovery)" },
      { protocol = "udp", port = 32765, from = "cluster", what = "rpc.statd (NFSv3 lock recovery)" },
    ]
    redis = [
      { protocol = "tcp", port = 6379, from = "cluster", what = "Redis" },
      { protocol = "tcp", port = 9121, from = "cluster", what = "Redis exporter" },
    ]
  }
  sources = {
    public  = var.public_cidrs
    admin   = distinct(concat([local.cluster_cidr], var.admin_cidrs))
    cluster = [local.cluster_cidr]
  }
  ingress_rules = merge([
    for role in local.roles : merge([
      for p in concat(local.common_ports, local.role_ports[role]) : {
        for cidr in local.sources[p.from] : "${role}/${p.protocol}/${p.port}/${cidr}" => merge(p, { role = role, cidr = cidr })
      }
    ]...)
  ]...)

  host = {
    for name, s in local.servers : name => {
      name     = name
      address  = s.ip_address != null ? s.ip_address : openstack_networking_port_v2.this[name].all_fixed_ips[0]
      host_key = lookup(var.host_keys, name, null) == null ? null : trimspace(var.host_keys[name])
    }
  }

  data_disk_script = file("${path.module}/templates/mohd-data-disk.sh")
  user_data = {
    for name, s in local.servers : name => templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
      hostname            = name
      ssh_user            = var.ssh_user
      ssh_authorized_keys = var.ssh_authorized_keys
      # A virtio disk's id is the volume id's first 20 characters (virtio-blk), or the whole id (virtio-scsi).
      data_disk_pattern = s.role == "db" ? "/dev/disk/by-id/*${substr(openstack_blockstorage_volume_v3.db[name].id, 0, 20)}*" : ""
      data_disk_script  = local.data_disk_script
    })
  }
}

data "openstack_networking_subnet_v2" "this" {
  subnet_id = var.subnet_id

  lifecycle {
    postcondition {
      condition     = length(distinct(local.server_names)) == length(local.server_names)
      error_message = "Server names must be unique across frontends, web_nodes, db_nodes, nfs_node and redis_node."
    }
    postcondition {
      condition     = self.ip_version == 4
      error_message = "The subnet must be IPv4: keepalived's VRRP v2 and MOHD's cluster network are IPv4."
    }
  }
}

data "openstack_images_image_v2" "role" {
  for_each = toset(local.roles)

  name        = var.images[each.key]
  most_recent = true
}

################################################################################
# Security groups: one per role, its ports only
################################################################################

resource "openstack_networking_secgroup_v2" "role" {
  for_each = toset(local.roles)

  name        = "${var.name}-${each.key}"
  description = "MOHD ${var.name}: the ${each.key} role's ports"
}

resource "openstack_networking_secgroup_rule_v2" "ingress" {
  for_each = local.ingress_rules

  security_group_id = openstack_networking_secgroup_v2.role[each.value.role].id
  direction         = "ingress"
  ethertype         = length(regexall(":", each.value.cidr)) > 0 ? "IPv6" : "IPv4"
  protocol          = each.value.protocol
  port_range_min    = each.value.port
  port_range_max    = each.value.port
  remote_ip_prefix  = each.value.cidr
  description       = each.value.what
}

# keepalived's VRRP adverts between the two front ends (IP protocol 112; unicast to the peer).
resource "openstack_networking_secgroup_rule_v2" "vrrp" {
  count = local.two_frontends ? 1 : 0

  security_group_id = openstack_networking_secgroup_v2.role["haproxy"].id
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "112"
  remote_group_id   = openstack_networking_secgroup_v2.role["haproxy"].id
  description       = "keepalived VRRP between the front ends"
}

################################################################################
# Ports, VIP and floating IP
################################################################################

resource "openstack_networking_port_v2" "vip" {
  count = local.two_frontends ? 1 : 0

  name               = "${var.name}-vip"
  description        = "MOHD ${var.name}: the front ends' virtual address (keepalived)"
  network_id         = data.openstack_networking_subnet_v2.this.network_id
  admin_state_up     = true
  security_group_ids = [openstack_networking_secgroup_v2.role["haproxy"].id]

  fixed_ip {
    subnet_id  = var.subnet_id
    ip_address = var.vip_address
  }
}

resource "openstack_networking_port_v2" "this" {
  for_each = local.servers

  name               = "${var.name}-${each.key}"
  network_id         = data.openstack_networking_subnet_v2.this.network_id
  admin_state_up     = true
  security_group_ids = [openstack_networking_secgroup_v2.role[each.value.role].id]

  fixed_ip {
    subnet_id  = var.subnet_id
    ip_address = each.value.ip_address
  }

  # Port security drops traffic to addresses a port does not own: the front ends may hold the VIP.
  dynamic "allowed_address_pairs" {
    for_each = each.value.role == "haproxy" && local.two_frontends ? [local.vip_ip] : []
    content {
      ip_address = allowed_address_pairs.value
    }
  }
}

resource "openstack_networking_floatingip_v2" "this" {
  count = var.floating_ip_pool != null ? 1 : 0

  pool        = var.floating_ip_pool
  description = "MOHD ${var.name}: Moodle's public address"
}

resource "openstack_networking_floatingip_associate_v2" "this" {
  count = var.floating_ip_pool != null ? 1 : 0

  floating_ip = openstack_networking_floatingip_v2.this[0].address
  port_id     = local.two_frontends ? openstack_networking_port_v2.vip[0].id : openstack_networking_port_v2.this[var.frontends[0].name].id
}

################################################################################
# Servers
################################################################################

resource "openstack_compute_servergroup_v2" "role" {
  for_each = toset(local.spread_roles)

  name     = "${var.name}-${each.key}"
  policies = [var.server_group_policy]
}

resource "openstack_blockstorage_volume_v3" "db" {
  for_each = { for s in var.db_nodes : s.name => s }

  name              = "${var.name}-${each.key}-mysql"
  description       = "MOHD ${var.name}: MariaDB data directory of ${each.key} (/var/lib/mysql)"
  size              = var.db_volume_size
  volume_type       = var.db_volume_type
  availability_zone = var.availability_zone
  metadata = {
    mohd_site = var.name
    mohd_role = "db-data"
  }
}

resource "openstack_compute_instance_v2" "this" {
  for_each = local.servers

  name              = "${var.name}-${each.key}"
  image_id          = data.openstack_images_image_v2.role[each.value.role].id
  flavor_name       = var.flavors[each.value.role]
  key_pair          = var.key_pair
  config_drive      = var.config_drive
  availability_zone = var.availability_zone
  user_data         = local.user_data[each.key]
  metadata = merge(var.metadata, {
    mohd_site = var.name
    mohd_role = each.value.role
  })

  network {
    port = openstack_networking_port_v2.this[each.key].id
  }

  dynamic "scheduler_hints" {
    for_each = contains(local.spread_roles, each.value.role) ? [openstack_compute_servergroup_v2.role[each.value.role].id] : []
    content {
      group = scheduler_hints.value
    }
  }

  lifecycle {
    # cloud-init reads user_data at the first boot only, and a database server is not rebuilt because an
    # image was published: replace a server deliberately (terraform apply -replace=...).
    ignore_changes = [user_data, image_id]
  }
}

resource "openstack_compute_volume_attach_v2" "db" {
  for_each = openstack_blockstorage_volume_v3.db

  instance_id = openstack_compute_instance_v2.this[each.key].id
  volume_id   = each.value.id
}

################################################################################
# Moodle
################################################################################

module "cluster" {
  source = "../moodle-cluster"
  count  = var.configure_moodle ? 1 : 0

  name         = var.name
  wwwroot      = var.wwwroot
  cluster_cidr = local.cluster_cidr
  tls          = var.tls
  code         = var.code
  admin        = var.admin

  admin_password       = var.admin_password
  db_password          = var.db_password
  replication_password = var.replication_password
  redis_password       = var.redis_password

  frontends = [for s in var.frontends : local.host[s.name]]
  vip       = local.two_frontends ? "${local.vip_ip}/${split("/", local.subnet_cidr)[1]}" : null
  web_hosts = [for s in var.web_nodes : local.host[s.name]]
  db_hosts  = [for s in var.db_nodes : local.host[s.name]]
  nfs = {
    host    = local.host[var.nfs_node.name]
    version = var.nfs_version
  }
  redis_host = local.host[var.redis_node.name]

  db_primary            = var.db_primary
  db_replicas_for_reads = var.db_replicas_for_reads
  log_lifetime_days     = var.log_lifetime_days
  settings              = var.settings
  backends              = var.backends
  timeouts              = var.timeouts

  # The hosts must run (and the databases have their disk) before MOHD connects to them.
  depends_on = [openstack_compute_instance_v2.this, openstack_compute_volume_attach_v2.db]
}
