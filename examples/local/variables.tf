variable "hosts" {
  description = "Every host of the site by name (lb1, web1, db1...): its address on the lab network and its SSH host key."
  type = map(object({
    address  = string
    host_key = string
  }))
}

variable "ssh_user" {
  description = "The cloud image's user (passwordless sudo)."
  type        = string
  default     = "debian"
}

variable "ssh_private_key_file" {
  description = "Path of the private key the hosts accept."
  type        = string
}

variable "cluster_cidr" {
  description = "The hosts' private network: database accounts, the NFS export and the cluster ports are limited to it."
  type        = string
}

variable "vip" {
  description = "The virtual address (with its prefix length) keepalived moves between the two front ends; users reach Moodle there."
  type        = string
}

variable "frontends" {
  description = "Names (keys of hosts) of the HAProxy front ends: one, or two sharing the VIP."
  type        = list(string)
  default     = ["lb1", "lb2"]
}

variable "backends" {
  description = "Names of the web nodes. Add a name (and its host) to scale out, remove one to drain it and take it out."
  type        = list(string)
  default     = ["web1", "web2"]
}

variable "db_hosts" {
  description = "Names of the MariaDB hosts: the primary and its replicas. Keep the order; db_primary chooses the primary."
  type        = list(string)
  default     = ["db1", "db2"]
}

variable "db_primary" {
  description = "Name of the MariaDB primary. Set it to the replica's name to switch over (see the switchover guide)."
  type        = string
  default     = "db1"
}

variable "nfs" {
  description = "Name of the NFS host."
  type        = string
  default     = "nfs1"
}

variable "redis" {
  description = "Name of the Redis host."
  type        = string
  default     = "redis1"
}

variable "monitoring" {
  description = "Name of the monitoring host (Prometheus, Alertmanager) every member registers its exporters with; empty for none."
  type        = string
  default     = "mon1"
}

variable "mattermost_webhook_url" {
  description = "Mattermost incoming webhook Alertmanager posts alerts to; null keeps alerts in Alertmanager's UI."
  type        = string
  default     = null
  sensitive   = true
}

variable "code_path" {
  description = "Moodle's code on this machine: a Moodle tree (MOODLE_SOURCE) or MOHD's Moodle-shaped test fixture."
  type        = string
}

variable "admin_email" {
  description = "The site administrator's e-mail."
  type        = string
  default     = "admin@example.edu"
}

variable "admin_password" {
  description = "The site administrator's password (user admin), set at installation."
  type        = string
  sensitive   = true
}

variable "db_password" {
  description = "Moodle's database password."
  type        = string
  sensitive   = true
}

variable "replication_password" {
  description = "The replicas' database password."
  type        = string
  sensitive   = true
}

variable "redis_password" {
  description = "Redis' password."
  type        = string
  sensitive   = true
}
