variable "vcenter_server" {
  description = "vCenter's host name."
  type        = string
}

variable "vcenter_user" {
  description = "vCenter user (TF_VAR_vcenter_user)."
  type        = string
}

variable "vcenter_password" {
  description = "vCenter password (TF_VAR_vcenter_password)."
  type        = string
  sensitive   = true
}

variable "vcenter_insecure" {
  description = "Accept vCenter's self-signed certificate (labs only)."
  type        = bool
  default     = false
}

variable "name" {
  description = "Name of the site (prefix of every VM, rule and group)."
  type        = string
  default     = "moodle"
}

variable "datacenter" {
  description = "The vSphere datacenter."
  type        = string
}

variable "compute_cluster" {
  description = "The vSphere cluster (with DRS)."
  type        = string
}

variable "datastore" {
  description = "Datastore of the system disks."
  type        = string
}

variable "db_datastore" {
  description = "SSD datastore of the databases' data disks; null: datastore."
  type        = string
  default     = null
}

variable "network" {
  description = "Port group of the cluster's private network."
  type        = string
}

variable "folder" {
  description = "VM folder; null: the datacenter's root VM folder."
  type        = string
  default     = null
}

variable "templates" {
  description = "VM template per role (haproxy, web, db, nfs, redis), as MOHD's Packer template named them."
  type        = map(string)
}

variable "sizes" {
  description = "Per role: { cpus, memory_mb, disk_gb }; roles left out keep the module's defaults."
  type = map(object({
    cpus      = number
    memory_mb = number
    disk_gb   = optional(number)
  }))
  default = {}
}

variable "db_disk_gb" {
  description = "Size (GB) of each database's data disk."
  type        = number
  default     = 100
}

variable "cluster_cidr" {
  description = "The private network of the VMs (CIDR)."
  type        = string
}

variable "gateway" {
  description = "Default gateway of the VMs; null: none."
  type        = string
  default     = null
}

variable "dns_servers" {
  description = "DNS servers of the VMs."
  type        = list(string)
  default     = []
}

variable "vip_address" {
  description = "The front ends' virtual address (two front ends)."
  type        = string
  default     = null
}

variable "frontends" {
  description = "The HAProxy VMs: { name, ip_address }."
  type        = list(object({ name = string, ip_address = optional(string) }))
}

variable "web_nodes" {
  description = "The web VMs: { name, ip_address }."
  type        = list(object({ name = string, ip_address = optional(string) }))
}

variable "db_nodes" {
  description = "The database VMs: { name, ip_address }."
  type        = list(object({ name = string, ip_address = optional(string) }))
}

variable "nfs_node" {
  description = "The NFS VM: { name, ip_address }."
  type        = object({ name = string, ip_address = optional(string) })
}

variable "redis_node" {
  description = "The Redis VM: { name, ip_address }."
  type        = object({ name = string, ip_address = optional(string) })
}

variable "db_primary" {
  description = "Name of the database primary; change it to switch over."
  type        = string
  default     = "db1"
}

variable "ssh_user" {
  description = "Login user of the VMs (created by cloud-init)."
  type        = string
  default     = "debian"
}

variable "ssh_authorized_keys" {
  description = "Public keys of the login user."
  type        = list(string)
}

variable "ssh_private_key_file" {
  description = "Private key MOHD logs in with (the pair of one of ssh_authorized_keys)."
  type        = string
  default     = "~/.ssh/id_ed25519"
}

variable "host_keys" {
  description = "SSH host key of each VM, by name (see README: first apply with configure_moodle = false)."
  type        = map(string)
  default     = {}
}

variable "configure_moodle" {
  description = "false: create the VMs only (step 1); true: also wire Moodle (step 2)."
  type        = bool
  default     = true
}

variable "wwwroot" {
  description = "The site's URL."
  type        = string
}

variable "tls_certificate_file" {
  description = "PEM certificate (with its chain) of wwwroot's name; null: plain HTTP (an http wwwroot)."
  type        = string
  default     = null
}

variable "tls_private_key" {
  description = "PEM private key of the certificate (TF_VAR_tls_private_key)."
  type        = string
  default     = null
  sensitive   = true
}

variable "code" {
  description = "Moodle's code: { git_url, ref } or { path }."
  type = object({
    git_url = optional(string)
    ref     = optional(string)
    path    = optional(string)
  })
}

variable "admin" {
  description = "The first administrator: { email, user, site_full_name, site_short_name }."
  type = object({
    email           = string
    user            = optional(string)
    site_full_name  = optional(string)
    site_short_name = optional(string)
  })
}

variable "admin_password" {
  description = "Administrator's password (TF_VAR_admin_password)."
  type        = string
  sensitive   = true
}

variable "db_password" {
  description = "Moodle's database password (TF_VAR_db_password)."
  type        = string
  sensitive   = true
}

variable "replication_password" {
  description = "Replication password (TF_VAR_replication_password)."
  type        = string
  sensitive   = true
}

variable "redis_password" {
  description = "Redis password (TF_VAR_redis_password)."
  type        = string
  sensitive   = true
}

variable "backends" {
  description = "Per web node: { weight, state } (state = \"drain\" before maintenance on the node)."
  type = map(object({
    weight = optional(number)
    state  = optional(string)
  }))
  default = {}
}
