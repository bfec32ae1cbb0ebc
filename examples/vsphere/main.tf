# A highly-available Moodle on vSphere: two HAProxy front ends sharing a VIP, two web nodes, a MariaDB
# primary and replica with their data on an SSD datastore, NFS and Redis, cloned from MOHD's role templates.

provider "vsphere" {
  vsphere_server       = var.vcenter_server
  user                 = var.vcenter_user
  password             = var.vcenter_password
  allow_unverified_ssl = var.vcenter_insecure
}

# MOHD reaches the VMs' addresses over SSH, as the user cloud-init creates.
provider "moodle" {
  ssh {
    user        = var.ssh_user
    private_key = file(pathexpand(var.ssh_private_key_file))
  }
}

module "moodle" {
  source = "../../modules/vsphere"

  name            = var.name
  datacenter      = var.datacenter
  compute_cluster = var.compute_cluster
  datastore       = var.datastore
  db_datastore    = var.db_datastore
  network         = var.network
  folder          = var.folder
  templates       = var.templates
  sizes           = var.sizes
  db_disk_gb      = var.db_disk_gb

  cluster_cidr = var.cluster_cidr
  gateway      = var.gateway
  dns_servers  = var.dns_servers
  vip_address  = var.vip_address
  frontends    = var.frontends
  web_nodes    = var.web_nodes
  db_nodes     = var.db_nodes
  nfs_node     = var.nfs_node
  redis_node   = var.redis_node
  db_primary   = var.db_primary

  ssh_user            = var.ssh_user
  ssh_authorized_keys = var.ssh_authorized_keys
  host_keys           = var.host_keys
  configure_moodle    = var.configure_moodle

  wwwroot = var.wwwroot
  tls = var.tls_certificate_file == null ? null : {
    certificate = file(var.tls_certificate_file)
    private_key = var.tls_private_key
  }
  code  = var.code
  admin = var.admin

  admin_password       = var.admin_password
  db_password          = var.db_password
  replication_password = var.replication_password
  redis_password       = var.redis_password

  backends = var.backends
}
