# Bakes a MOHD role image for the lab: a container of the lab's base image (Debian 12) running systemd as
# PID 1 exactly as the lab runs its hosts (internal/lab), provisioned by moodle-role as root, committed and
# tagged mohd/role-<role>:<image_tag>.
#
#   packer build -var role=redis -var cluster_cidr=172.30.0.0/16 packer/templates/docker
#
# `make images` (go run ./internal/lab/cmd/mohd-lab role-images) runs this template for every role with
# image_tag set to a hash of the image's recipe, and skips the roles whose image is current.

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
  description = "The role to bake: one of the role library's roles (the moodle-role provisioner checks it)."
}

variable "cluster_cidr" {
  type        = string
  description = "The cluster's network (CIDR) that the role's firewall admits to its ports; the lab's networks are in 172.30.0.0/16."
  default     = "172.30.0.0/16"
}

variable "base_image" {
  type        = string
  description = "The image to start from: the lab's base image (internal/lab) unless told otherwise."
  default     = "mohd/base:bookworm"
}

variable "image_tag" {
  type        = string
  description = "The tag of the image (mohd/role-<role>:<image_tag>), also recorded in its org.mohd.recipe label: mohd-lab role-images sets it to the hash of the image's recipe."
  default     = "latest"
}

variable "cap_add" {
  type        = list(string)
  description = "Kernel capabilities the role's services need in a container beyond those of every lab host (nfs: DAC_READ_SEARCH); mohd-lab role-images sets them per role."
  default     = []
}

source "docker" "role" {
  image  = var.base_image
  pull   = false
  commit = true
  # The role's own capabilities; the run_command below has those of every lab host.
  cap_add = var.cap_add
  # systemd as PID 1 without --privileged, as the lab runs its hosts (internal/lab/lab.go): tmpfs for /run,
  # /run/lock and /tmp, the host's cgroup tree read-only; CAP_SYS_ADMIN and no AppArmor profile of the
  # engine's own so that systemd can set up the units' sandboxes, CAP_NET_ADMIN for the role's firewall.
  # The communicator runs as root (the container's user): no sudo.
  run_command = [
    "-d",
    "--label", "org.mohd.build=moodle-role",
    "--cap-add", "SYS_ADMIN",
    "--cap-add", "NET_ADMIN",
    "--security-opt", "apparmor=unconfined",
    "--tmpfs", "/run:exec,mode=755",
    "--tmpfs", "/run/lock",
    "--tmpfs", "/tmp:exec,mode=1777",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
    "--stop-signal", "SIGRTMIN+3",
    # A small build machine, as on a hypervisor: what is sized from RAM at bake time (MariaDB's redo log)
    # stays small in the image; every clone sizes itself again at boot from its own RAM.
    "--memory", "1g",
    "{{.Image}}", "/sbin/init",
  ]
  changes = [
    "CMD [\"/sbin/init\"]",
    "ENV container=docker",
    "LABEL org.mohd.image=role-${var.role} org.mohd.role=${var.role} org.mohd.recipe=${var.image_tag}",
  ]
}

build {
  sources = ["source.docker.role"]

  # moodle-role waits for systemd to finish booting the container (the first boot creates its SSH host keys)
  # before it applies the role, and generalizes it last.
  provisioner "moodle-role" {
    role         = var.role
    cluster_cidr = var.cluster_cidr
  }

  post-processor "docker-tag" {
    repository = "mohd/role-${var.role}"
    tags       = [var.image_tag]
  }
}
