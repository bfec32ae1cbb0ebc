locals {
  roles = ["haproxy", "web", "db", "nfs", "redis"]

  default_sizes = {
    haproxy = { cpus = 2, memory_mb = 2048, disk_gb = null }
    web     = { cpus = 4, memory_mb = 8192, disk_gb = null }
    db      = { cpus = 4, memory_mb = 16384, disk_gb = null }
    nfs     = { cpus = 2, memory_mb = 4096, disk_gb = null }
    redis   = { cpus = 2, memory_mb = 4096, disk_gb = null }
  }
  sizes = merge(local.default_sizes, var.sizes)

  server_list = concat(
    [for s in var.frontends : { name = s.name, ip_address = s.ip_address, role = "haproxy" }],
    [for s in var.web_nodes : { name = s.name, ip_address = s.ip_address, role = "web" }],
    [for s in var.db_nodes : { name = s.name, ip_address = s.ip_address, role = "db" }],
    [{ name = var.nfs_node.name, ip_address = var.nfs_node.ip_address, role = "nfs" }],
    [{ name = var.redis_node.name, ip_address = var.redis_node.ip_address, role = "redis" }],
  )
  server_names = [for s in local.server_list : s.name]
  # Grouped, then the first taken: a duplicate name is reported by the precondition on the datacenter.
  servers = { for name, group in { for s in local.server_list : s.name => s... } : name => group[0] }

  # The roles whose VMs must not share an ESXi host: two front ends, the web nodes, the databases.
  spread_roles = ["haproxy", "web", "db"]
  role_vms     = { for role in local.roles : role => [for name, s in local.servers : name if s.role == role] }

  two_frontends = length(var.frontends) == 2
  prefix_length = split("/", var.cluster_cidr)[1]

  host = {
    for name, s in local.servers : name => {
      name     = name
      address  = s.ip_address != null ? s.ip_address : vsphere_virtual_machine.this[name].default_ip_address
      host_key = lookup(var.host_keys, name, null) == null ? null : trimspace(var.host_keys[name])
    }
  }

  data_disk_script = file("${path.module}/templates/mohd-data-disk.sh")
  metadata = {
    for name, s in local.servers : name => templatefile("${path.module}/templates/metadata.json.tftpl", {
      instance_id        = "${var.name}-${name}"
      hostname           = name
      ip_address         = s.ip_address
      prefix_length      = local.prefix_length
      interface          = var.guest_interface
      gateway            = var.gateway
      dns_servers        = var.dns_servers
      dns_search_domains = var.dns_search_domains
    })
  }
  user_data = {
    for name, s in local.servers : name => templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
      hostname            = name
      ssh_user            = var.ssh_user
      ssh_authorized_keys = var.ssh_authorized_keys
      # The data disk is the second disk of SCSI controller 0 (unit 1), whatever the guest calls it.
      data_disk_pattern = s.role == "db" ? "/dev/disk/by-path/*-scsi-0:0:1:0" : ""
      data_disk_script  = local.data_disk_script
    })
  }
}

data "vsphere_datacenter" "this" {
  name = var.datacenter

  lifecycle {
    postcondition {
      condition     = length(distinct(local.server_names)) == length(local.server_names)
      error_message = "VM names must be unique across frontends, web_nodes, db_nodes, nfs_node and redis_node."
    }
    postcondition {
      condition     = alltrue([for s in local.server_list : s.ip_address == null ? true : cidrsubnet("${s.ip_address}/${local.prefix_length}", 0, 0) == cidrsubnet(var.cluster_cidr, 0, 0)])
      error_message = "Every static ip_address must be in cluster_cidr (${var.cluster_cidr})."
    }
    postcondition {
      condition     = local.two_frontends == (var.vip_address != null)
      error_message = "Two front ends need vip_address (the address keepalived moves between them); one front end takes none."
    }
  }
}

data "vsphere_compute_cluster" "this" {
  name          = var.compute_cluster
  datacenter_id = data.vsphere_datacenter.this.id
}

data "vsphere_datastore" "this" {
  name          = var.datastore
  datacenter_id = data.vsphere_datacenter.this.id
}

data "vsphere_datastore" "db" {
  count = var.db_datastore != null ? 1 : 0

  name          = var.db_datastore
  datacenter_id = data.vsphere_datacenter.this.id
}

data "vsphere_network" "this" {
  name          = var.network
  datacenter_id = data.vsphere_datacenter.this.id
}

data "vsphere_virtual_machine" "template" {
  for_each = toset(local.roles)

  name          = var.templates[each.key]
  datacenter_id = data.vsphere_datacenter.this.id
}

################################################################################
# VMs
################################################################################

resource "vsphere_virtual_machine" "this" {
  for_each = local.servers

  name             = "${var.name}-${each.key}"
  annotation       = "MOHD ${var.name}: ${each.value.role} (cloned from ${var.templates[each.value.role]})"
  resource_pool_id = var.resource_pool_id != null ? var.resource_pool_id : data.vsphere_compute_cluster.this.resource_pool_id
  datastore_id     = data.vsphere_datastore.this.id
  folder           = var.folder

  num_cpus         = local.sizes[each.value.role].cpus
  memory           = local.sizes[each.value.role].memory_mb
  guest_id         = data.vsphere_virtual_machine.template[each.value.role].guest_id
  scsi_type        = data.vsphere_virtual_machine.template[each.value.role].scsi_type
  firmware         = var.firmware != null ? var.firmware : data.vsphere_virtual_machine.template[each.value.role].firmware
  enable_disk_uuid = true

  network_interface {
    network_id   = data.vsphere_network.this.id
    adapter_type = data.vsphere_virtual_machine.template[each.value.role].network_interface_types[0]
  }

  disk {
    label            = "disk0"
    unit_number      = 0
    size             = max(data.vsphere_virtual_machine.template[each.value.role].disks[0].size, coalesce(local.sizes[each.value.role].disk_gb, 0))
    thin_provisioned = data.vsphere_virtual_machine.template[each.value.role].disks[0].thin_provisioned
    eagerly_scrub    = data.vsphere_virtual_machine.template[each.value.role].disks[0].eagerly_scrub
  }

  # The database's own disk, on the SSD datastore: cloud-init mounts it at /var/lib/mysql.
  dynamic "disk" {
    for_each = each.value.role == "db" ? [var.db_disk_gb] : []
    content {
      label            = "mysql"
      unit_number      = 1
      size             = disk.value
      datastore_id     = var.db_datastore != null ? data.vsphere_datastore.db[0].id : data.vsphere_datastore.this.id
      thin_provisioned = var.db_disk_thin_provisioned
      eagerly_scrub    = !var.db_disk_thin_provisioned
    }
  }

  clone {
    template_uuid = data.vsphere_virtual_machine.template[each.value.role].id
  }

  # cloud-init's VMware datasource reads these at the first boot.
  extra_config = {
    "guestinfo.metadata"          = base64encode(local.metadata[each.key])
    "guestinfo.metadata.encoding" = "base64"
    "guestinfo.userdata"          = base64encode(local.user_data[each.key])
    "guestinfo.userdata.encoding" = "base64"
  }

  wait_for_guest_net_timeout = var.wait_for_guest_net_timeout

  lifecycle {
    # cloud-init reads guestinfo at the first boot only (changing it would only reboot the VM), and a
    # database VM is not re-cloned because a template was published: replace a VM deliberately
    # (terraform apply -replace=...).
    ignore_changes = [clone[0].template_uuid, extra_config]
  }
}

################################################################################
# DRS: anti-affinity rules and VM groups
################################################################################

resource "vsphere_compute_cluster_vm_anti_affinity_rule" "role" {
  for_each = { for role in local.spread_roles : role => local.role_vms[role] if length(local.role_vms[role]) >= 2 }

  name                = "${var.name}-${each.key}-anti-affinity"
  compute_cluster_id  = data.vsphere_compute_cluster.this.id
  virtual_machine_ids = [for name in each.value : vsphere_virtual_machine.this[name].id]
}

resource "vsphere_compute_cluster_vm_group" "role" {
  for_each = var.drs_vm_groups ? local.role_vms : {}

  name                = "${var.name}-${each.key}"
  compute_cluster_id  = data.vsphere_compute_cluster.this.id
  virtual_machine_ids = [for name in each.value : vsphere_virtual_machine.this[name].id]
}

################################################################################
# Moodle
################################################################################

module "cluster" {
  source = "../moodle-cluster"
  count  = var.configure_moodle ? 1 : 0

  name         = var.name
  wwwroot      = var.wwwroot
  cluster_cidr = var.cluster_cidr
  tls          = var.tls
  code         = var.code
  admin        = var.admin

  admin_password       = var.admin_password
  db_password          = var.db_password
  replication_password = var.replication_password
  redis_password       = var.redis_password

  frontends = [for s in var.frontends : local.host[s.name]]
  vip       = local.two_frontends ? "${var.vip_address}/${local.prefix_length}" : null
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

  # The VMs must run before MOHD connects to them.
  depends_on = [vsphere_virtual_machine.this]
}
