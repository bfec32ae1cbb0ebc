# Bakes a MOHD role image on vSphere: a clone of a Debian 12 VM template (cloud-init and open-vm-tools
# installed, a cloud user with passwordless sudo), provisioned by moodle-role and converted to a VM template.
#
#   packer init packer/templates/vsphere
#   packer build -var-file=site.pkrvars.hcl -var role=db packer/templates/vsphere

packer {
  required_plugins {
    vsphere = {
      source  = "github.com/hashicorp/vsphere"
      version = ">= 1.4.2"
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

variable "vcenter_server" {
  type        = string
  description = "The vCenter server's host name or address."
}

variable "vcenter_username" {
  type = string
}

variable "vcenter_password" {
  type      = string
  sensitive = true
}

variable "vcenter_insecure" {
  type        = bool
  description = "Skip the verification of vCenter's TLS certificate (labs with self-signed certificates only)."
  default     = false
}

variable "datacenter" {
  type = string
}

variable "cluster" {
  type        = string
  description = "The vSphere cluster the build VM runs in."
}

variable "datastore" {
  type = string
}

variable "folder" {
  type        = string
  description = "The VM folder of the build VM and of the template it becomes."
  default     = "mohd"
}

variable "network" {
  type        = string
  description = "The port group of the build VM's network adapter; Packer reaches the VM over SSH on it."
}

variable "base_template" {
  type        = string
  description = "The VM template to clone: Debian 12 with cloud-init and open-vm-tools."
}

variable "ssh_username" {
  type    = string
  default = "debian"
}

variable "ssh_private_key_file" {
  type        = string
  description = "The private key of the base template's cloud user."
}

variable "cpus" {
  type    = number
  default = 2
}

variable "memory_mb" {
  type    = number
  default = 2048
}

locals {
  stamp = formatdate("YYYYMMDD-hhmmss", timestamp())
}

source "vsphere-clone" "role" {
  vcenter_server      = var.vcenter_server
  username            = var.vcenter_username
  password            = var.vcenter_password
  insecure_connection = var.vcenter_insecure

  datacenter = var.datacenter
  cluster    = var.cluster
  datastore  = var.datastore
  folder     = var.folder

  template            = var.base_template
  vm_name             = "mohd-role-${var.role}-${local.stamp}"
  CPUs                = var.cpus
  RAM                 = var.memory_mb
  network             = var.network
  notes               = "MOHD role image: ${var.role} (moodle-role, built ${local.stamp})"
  convert_to_template = true

  communicator         = "ssh"
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = "15m"
}

build {
  sources = ["source.vsphere-clone.role"]

  provisioner "moodle-role" {
    role         = var.role
    cluster_cidr = var.cluster_cidr
  }
}
