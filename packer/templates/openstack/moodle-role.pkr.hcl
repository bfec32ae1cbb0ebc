# Bakes a MOHD role image on OpenStack: a server booted from a Debian 12 cloud image, provisioned by
# moodle-role and saved as a Glance image. Credentials come from the usual OS_* variables or clouds.yaml
# (`cloud`).
#
#   packer init packer/templates/openstack
#   packer build -var-file=site.pkrvars.hcl -var role=web packer/templates/openstack

packer {
  required_plugins {
    openstack = {
      source  = "github.com/hashicorp/openstack"
      version = ">= 1.1.2"
    }
    moodle = {
      source  = "github.com/mohd-dev/moodle"
      version = ">= 0.1.0"
    }
  }
}

variable "role" {
  type        = string
  description = "The role to bake: haproxy, web, db, nfs, redis or monitoring (the moodle-role provisioner checks it)."
}

variable "cluster_cidr" {
  type        = string
  description = "The cluster's network (CIDR) that the role's firewall admits to its ports."
}

variable "cloud" {
  type        = string
  description = "The clouds.yaml entry to use; empty: the OS_* environment variables."
  default     = ""
}

variable "source_image_name" {
  type        = string
  description = "The Glance image to boot from: a Debian 12 cloud image."
  default     = "debian-12-genericcloud-amd64"
}

variable "flavor" {
  type    = string
  default = "m1.small"
}

variable "networks" {
  type        = list(string)
  description = "The IDs of the networks the build server is attached to."
}

variable "security_groups" {
  type        = list(string)
  description = "Security groups of the build server: they must admit SSH from where Packer runs."
  default     = ["default"]
}

variable "floating_ip_network" {
  type        = string
  description = "The external network to take a floating IP from, when Packer cannot reach the server's own address; empty: none."
  default     = ""
}

variable "ssh_username" {
  type    = string
  default = "debian"
}

locals {
  stamp = formatdate("YYYYMMDD-hhmmss", timestamp())
}

source "openstack" "role" {
  cloud = var.cloud

  source_image_name   = var.source_image_name
  flavor              = var.flavor
  networks            = var.networks
  security_groups     = var.security_groups
  floating_ip_network = var.floating_ip_network

  image_name       = "mohd-role-${var.role}-${local.stamp}"
  image_visibility = "private"
  image_tags       = ["mohd", "mohd-role-${var.role}"]
  metadata = {
    mohd_role = var.role
  }

  communicator = "ssh"
  ssh_username = var.ssh_username
  ssh_timeout  = "15m"
}

build {
  sources = ["source.openstack.role"]

  provisioner "moodle-role" {
    role         = var.role
    cluster_cidr = var.cluster_cidr
  }
}
