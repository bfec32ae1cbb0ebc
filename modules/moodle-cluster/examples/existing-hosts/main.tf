# The moodle-cluster module on hosts that already run (cloned from MOHD's role images on any platform, or
# installed by hand from them): two front ends sharing a VIP, two web nodes, a primary and a replica, NFS
# and Redis. The platform modules (../../../openstack, ../../../vsphere) create the hosts and call it.

terraform {
  required_version = ">= 1.5.7"

  required_providers {
    moodle = {
      source  = "mohd-dev/moodle"
      version = "~> 0.1"
    }
  }
}

provider "moodle" {
  ssh {
    user        = "debian"
    private_key = file(pathexpand(var.ssh_private_key_file))
  }
}

module "moodle" {
  source = "../.."

  name         = "moodle"
  wwwroot      = "https://moodle.example.edu"
  cluster_cidr = "10.20.0.0/24"
  tls = {
    certificate = file(var.tls_certificate_file)
    private_key = var.tls_private_key
  }
  code  = { git_url = "https://git.example.edu/mirrors/moodle.git", ref = "v4.5.6" }
  admin = { email = "moodle-admins@example.edu" }

  admin_password       = var.admin_password
  db_password          = var.db_password
  replication_password = var.replication_password
  redis_password       = var.redis_password

  frontends = [
    { name = "fe1", address = "10.20.0.11", host_key = var.host_keys["fe1"] },
    { name = "fe2", address = "10.20.0.12", host_key = var.host_keys["fe2"] },
  ]
  vip = "10.20.0.10/24"
  web_hosts = [
    { name = "web1", address = "10.20.0.21", host_key = var.host_keys["web1"] },
    { name = "web2", address = "10.20.0.22", host_key = var.host_keys["web2"] },
  ]
  db_hosts = [
    { name = "db1", address = "10.20.0.31", host_key = var.host_keys["db1"] },
    { name = "db2", address = "10.20.0.32", host_key = var.host_keys["db2"] },
  ]
  # The switchover: "db2", apply; back: "db1", apply.
  db_primary = "db1"

  nfs        = { host = { name = "nfs1", address = "10.20.0.41", host_key = var.host_keys["nfs1"] }, version = "4.2" }
  redis_host = { name = "redis1", address = "10.20.0.51", host_key = var.host_keys["redis1"] }

  # Drain web2 before maintenance on its VM; "active" brings it back.
  backends = {
    web2 = { state = "active", weight = 100 }
  }
}

variable "ssh_private_key_file" {
  description = "Private key MOHD logs in with."
  type        = string
  default     = "~/.ssh/id_ed25519"
}

variable "host_keys" {
  description = "Each host's SSH public key (authorized_keys format), by name: fe1, fe2, web1, web2, db1, db2, nfs1, redis1."
  type        = map(string)
}

variable "tls_certificate_file" {
  description = "PEM certificate of moodle.example.edu followed by its chain."
  type        = string
  default     = "moodle.example.edu.fullchain.pem"
}

variable "tls_private_key" {
  description = "PEM private key of the site's certificate."
  type        = string
  sensitive   = true
}

variable "admin_password" {
  description = "The administrator's password."
  type        = string
  sensitive   = true
}

variable "db_password" {
  description = "Moodle's database password."
  type        = string
  sensitive   = true
}

variable "replication_password" {
  description = "The replication account's password."
  type        = string
  sensitive   = true
}

variable "redis_password" {
  description = "Redis' password."
  type        = string
  sensitive   = true
}

output "url" {
  description = "The site's URL."
  value       = module.moodle.url
}

output "primary" {
  description = "The database primary."
  value       = module.moodle.primary
}

output "replica_lag" {
  description = "Replication lag (seconds) per replica."
  value       = module.moodle.replica_lag
}

output "backend_states" {
  description = "HAProxy's view of each web node."
  value       = module.moodle.backend_states
}

output "drift" {
  description = "What differs on the hosts from the configuration."
  value       = module.moodle.drift
}
