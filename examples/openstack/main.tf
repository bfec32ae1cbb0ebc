# A highly-available Moodle on OpenStack: two HAProxy front ends sharing a VIP (with a floating IP), two web
# nodes, a MariaDB primary and replica on SSD volumes, NFS and Redis, from MOHD's role images.

# Credentials: clouds.yaml (`cloud`) or the OS_* environment variables (source your openrc).
provider "openstack" {
  cloud = var.cloud
}

# MOHD reaches the servers' private addresses over SSH, as the user cloud-init creates, through a
# bastion when Terraform does not run on the servers' network.
provider "moodle" {
  ssh {
    user        = var.ssh_user
    private_key = file(pathexpand(var.ssh_private_key_file))

    dynamic "bastion" {
      for_each = var.bastion == null ? [] : [var.bastion]
      content {
        host     = bastion.value.host
        host_key = bastion.value.host_key
        user     = bastion.value.user
      }
    }
  }
}

module "moodle" {
  source = "../../modules/openstack"

  name    = var.name
  images  = var.images
  flavors = var.flavors

  subnet_id        = var.subnet_id
  floating_ip_pool = var.floating_ip_pool
  admin_cidrs      = var.admin_cidrs

  frontends  = var.frontends
  web_nodes  = var.web_nodes
  db_nodes   = var.db_nodes
  db_primary = var.db_primary

  db_volume_type = var.db_volume_type
  db_volume_size = var.db_volume_size

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
