# Bakes a MOHD role image for the lab: a container of the lab's base image (Debian 12 with systemd as PID 1),
# provisioned by moodle-role, committed and tagged mohd/role-<role>.
#
#   packer init packer/templates/docker
#   packer build -var role=web -var cluster_cidr=10.20.0.0/24 packer/templates/docker

packer {
  required_plugins {
    docker = {
      source  = "github.com/hashicorp/docker"
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
  default     = "10.20.0.0/24"
}

variable "base_image" {
  type        = string
  description = "The image to start from: the lab's base image (internal/lab) unless told otherwise."
  default     = "mohd/base:bookworm"
}

source "docker" "role" {
  image  = var.base_image
  pull   = false
  commit = true
  # systemd as PID 1 without --privileged, as the lab runs its hosts: tmpfs for /run and the host's cgroup
  # tree read-only.
  run_command = [
    "-d", "-i", "-t",
    "--tmpfs", "/run:exec,mode=755",
    "--tmpfs", "/run/lock",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
    "--stop-signal", "SIGRTMIN+3",
    "{{.Image}}", "/sbin/init",
  ]
  changes = [
    "CMD [\"/sbin/init\"]",
    "ENV container=docker",
    "LABEL org.mohd.image=role-${var.role}",
  ]
}

build {
  sources = ["source.docker.role"]

  provisioner "moodle-role" {
    role         = var.role
    cluster_cidr = var.cluster_cidr
  }

  post-processor "docker-tag" {
    repository = "mohd/role-${var.role}"
    tags       = ["latest"]
  }
}
