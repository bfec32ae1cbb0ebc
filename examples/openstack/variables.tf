variable "cloud" {
  description = "The clouds.yaml entry; null: the OS_* environment variables."
  type        = string
  default     = null
}

variable "name" {
  description = "Name of the site (prefix of every resource)."
  type        = string
  default     = "moodle"
}

variable "images" {
  description = "Glance image name per role (haproxy, web, db, nfs, redis), as MOHD's Packer template published them."
  type        = map(string)
}

variable "flavors" {
  description = "Flavor name per role (haproxy, web, db, nfs, redis)."
  type        = map(string)
}

variable "subnet_id" {
  description = "The private subnet of the servers."
  type        = string
}

variable "floating_ip_pool" {
  description = "External network for the site's floating IP; null: none."
  type        = string
  default     = null
}

variable "admin_cidrs" {
  description = "Where SSH is admitted from besides the subnet (the bastion, your VPN)."
  type        = list(string)
  default     = []
}

variable "frontends" {
  description = "The HAProxy servers: { name, ip_address }."
  type        = list(object({ name = string, ip_address = optional(string) }))
  default     = [{ name = "fe1" }, { name = "fe2" }]
}

variable "web_nodes" {
  description = "The web servers: { name, ip_address }."
  type        = list(object({ name = string, ip_address = optional(string) }))
  default     = [{ name = "web1" }, { name = "web2" }]
}

variable "db_nodes" {
  description = "The database servers: { name, ip_address }."
  type        = list(object({ name = string, ip_address = optional(string) }))
  default     = [{ name = "db1" }, { name = "db2" }]
}

variable "db_primary" {
  description = "Name of the database primary; change it to switch over."
  type        = string
  default     = "db1"
}

variable "db_volume_type" {
  description = "Cinder SSD volume type for the databases."
  type        = string
}

variable "db_volume_size" {
  description = "Size (GB) of each database volume."
  type        = number
  default     = 100
}

variable "ssh_user" {
  description = "Login user of the servers (created by cloud-init)."
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

variable "bastion" {
  description = "Jump host to the private subnet: { host, host_key, user }; null: Terraform runs on that network."
  type = object({
    host     = string
    host_key = string
    user     = optional(string)
  })
  default = null
}

variable "host_keys" {
  description = "SSH host key of each server, by name (see README: first apply with configure_moodle = false)."
  type        = map(string)
  default     = {}
}

variable "configure_moodle" {
  description = "false: create the servers only (step 1); true: also wire Moodle (step 2)."
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
