################################################################################
# Servers
################################################################################

variable "name" {
  description = "Name of the site: the `moodle_cluster`'s name and the prefix of every OpenStack resource (`<name>-web1`, `<name>-db`...). 1-32 letters, digits, `-`, `_`."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,32}$", var.name))
    error_message = "name must be 1-32 letters, digits, '-' or '_'."
  }
}

variable "images" {
  description = "Glance image name per role, as MOHD's Packer template names them (`mohd-role-web-20250301-101500`): keys `haproxy`, `web`, `db`, `nfs`, `redis`. Pin exact names: a server never moves to another image by itself (see README)."
  type        = map(string)

  validation {
    condition     = length(setsubtract(["haproxy", "web", "db", "nfs", "redis"], keys(var.images))) == 0
    error_message = "images needs an image name for each role: haproxy, web, db, nfs and redis."
  }
}

variable "flavors" {
  description = "Nova flavor name per role: keys `haproxy`, `web`, `db`, `nfs`, `redis`."
  type        = map(string)

  validation {
    condition     = length(setsubtract(["haproxy", "web", "db", "nfs", "redis"], keys(var.flavors))) == 0
    error_message = "flavors needs a flavor name for each role: haproxy, web, db, nfs and redis."
  }
}

variable "frontends" {
  description = "The HAProxy servers (one or two): `{ name, ip_address }`; `ip_address` pins the port's fixed IP, null lets Neutron choose."
  type = list(object({
    name       = string
    ip_address = optional(string)
  }))
  default = [{ name = "fe1" }, { name = "fe2" }]

  validation {
    condition     = length(var.frontends) >= 1 && length(var.frontends) <= 2
    error_message = "frontends takes one or two servers."
  }
}

variable "web_nodes" {
  description = "The web (Apache, PHP-FPM) servers: `{ name, ip_address }`."
  type = list(object({
    name       = string
    ip_address = optional(string)
  }))
  default = [{ name = "web1" }, { name = "web2" }]

  validation {
    condition     = length(var.web_nodes) >= 1
    error_message = "web_nodes needs at least one server."
  }
}

variable "db_nodes" {
  description = "The MariaDB servers: `{ name, ip_address }`. Each gets its own SSD volume. Append, never reorder (see the moodle-cluster module's db_hosts)."
  type = list(object({
    name       = string
    ip_address = optional(string)
  }))
  default = [{ name = "db1" }, { name = "db2" }]

  validation {
    condition     = length(var.db_nodes) >= 1
    error_message = "db_nodes needs at least one server."
  }
}

variable "nfs_node" {
  description = "The NFS server for moodledata: `{ name, ip_address }`."
  type = object({
    name       = string
    ip_address = optional(string)
  })
  default = { name = "nfs1" }
}

variable "redis_node" {
  description = "The Redis server for sessions: `{ name, ip_address }`."
  type = object({
    name       = string
    ip_address = optional(string)
  })
  default = { name = "redis1" }
}

variable "availability_zone" {
  description = "Availability zone of the servers and the database volumes; null: the cloud's default."
  type        = string
  default     = null
}

variable "server_group_policy" {
  description = "Policy of the server groups of the front ends, the web nodes and the databases: `anti-affinity` (fails to schedule when the cloud has too few hypervisors) or `soft-anti-affinity` (best effort)."
  type        = string
  default     = "anti-affinity"

  validation {
    condition     = contains(["anti-affinity", "soft-anti-affinity"], var.server_group_policy)
    error_message = "server_group_policy must be anti-affinity or soft-anti-affinity."
  }
}

variable "db_volume_size" {
  description = "Size in GB of each database server's Cinder volume, mounted at /var/lib/mysql."
  type        = number
  default     = 100

  validation {
    condition     = var.db_volume_size >= 10 && floor(var.db_volume_size) == var.db_volume_size
    error_message = "db_volume_size must be a whole number of GB, at least 10."
  }
}

variable "db_volume_type" {
  description = "Cinder volume type of the database volumes: your cloud's SSD type (`openstack volume type list`)."
  type        = string

  validation {
    condition     = length(var.db_volume_type) > 0
    error_message = "db_volume_type must name a volume type."
  }
}

variable "config_drive" {
  description = "Give cloud-init its data on a config drive rather than through the metadata service (clouds without one)."
  type        = bool
  default     = null
}

variable "metadata" {
  description = "More Nova metadata on every server (the module sets `mohd_site` and `mohd_role`)."
  type        = map(string)
  default     = {}
}

################################################################################
# Network
################################################################################

variable "subnet_id" {
  description = "ID of the subnet the servers' ports are on (its network and CIDR are read from it). Its CIDR is the cluster's network unless cluster_cidr is set."
  type        = string
}

variable "cluster_cidr" {
  description = "The cluster's private network, to which the role ports are open; null: the subnet's CIDR."
  type        = string
  default     = null

  validation {
    condition     = var.cluster_cidr == null || can(cidrhost(coalesce(var.cluster_cidr, "0.0.0.0/0"), 0))
    error_message = "cluster_cidr must be a network in CIDR notation."
  }
}

variable "vip_address" {
  description = "With two front ends: the fixed IP of the virtual address port (keepalived's VIP, in the front ends' allowed_address_pairs); null lets Neutron choose."
  type        = string
  default     = null
}

variable "floating_ip_pool" {
  description = "External network to take a floating IP from, associated with the VIP port (two front ends) or the front end's port (one); null: none (users reach the private address)."
  type        = string
  default     = null
}

variable "public_cidrs" {
  description = "Where users reach the front ends' HTTP and HTTPS ports from."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for c in var.public_cidrs : can(cidrhost(c, 0))])
    error_message = "public_cidrs must be networks in CIDR notation."
  }
}

variable "admin_cidrs" {
  description = "Besides the cluster's network, where SSH (port 22) is admitted from: the machine running Terraform, a bastion, a VPN. MOHD configures every host over SSH."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "admin_cidrs must be networks in CIDR notation."
  }
}

################################################################################
# Access
################################################################################

variable "ssh_user" {
  description = "The login user cloud-init creates (or updates) with `ssh_authorized_keys` and passwordless sudo: the moodle provider's `ssh.user`."
  type        = string
  default     = "debian"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "ssh_user must be a valid Linux user name."
  }
}

variable "ssh_authorized_keys" {
  description = "Public keys (authorized_keys lines) of the login user."
  type        = list(string)

  validation {
    condition     = length(var.ssh_authorized_keys) > 0 && alltrue([for k in var.ssh_authorized_keys : can(regex("^(ssh-|ecdsa-|sk-)", k))])
    error_message = "ssh_authorized_keys needs at least one OpenSSH public key."
  }
}

variable "key_pair" {
  description = "Nova key pair to inject as well (optional; cloud-init's user already gets ssh_authorized_keys)."
  type        = string
  default     = null
}

variable "host_keys" {
  description = "SSH host public key (`ssh-ed25519 AAAA...`) of each server, by server name. OpenStack does not expose a server's host keys: copy them from the server's console log (cloud-init prints them between `BEGIN SSH HOST KEY KEYS` lines; see README) after a first apply with `configure_moodle = false`. Servers left out are verified against the moodle provider's `ssh.known_hosts`."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in values(var.host_keys) : can(regex("^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/=]+( .*)?$", trimspace(k)))])
    error_message = "host_keys values must be public keys in authorized_keys format (\"ssh-ed25519 AAAA...\")."
  }
}

variable "configure_moodle" {
  description = "Wire the servers into the Moodle cluster (the moodle-cluster module). false creates only the OpenStack resources: the first step when the host keys are not known yet."
  type        = bool
  default     = true
}

################################################################################
# The site (passed to the moodle-cluster module; see its README)
################################################################################

variable "wwwroot" {
  description = "Moodle's wwwroot: the URL users type (its DNS name points at the floating IP or the VIP)."
  type        = string
}

variable "tls" {
  description = "TLS certificate (PEM, with its chain) and private key for the front ends; required with an https wwwroot."
  type = object({
    certificate = string
    private_key = string
  })
  default   = null
  sensitive = true
}

variable "code" {
  description = "Moodle's code: `{ git_url, ref }` or `{ path }`."
  type = object({
    git_url = optional(string)
    ref     = optional(string)
    path    = optional(string)
  })
}

variable "admin" {
  description = "The first administrator: `{ email, user, site_full_name, site_short_name }`."
  type = object({
    email           = string
    user            = optional(string)
    site_full_name  = optional(string)
    site_short_name = optional(string)
  })
}

variable "admin_password" {
  description = "The administrator's password (at least 12 characters)."
  type        = string
  sensitive   = true
}

variable "db_password" {
  description = "Moodle's database password (at least 12 characters)."
  type        = string
  sensitive   = true
}

variable "replication_password" {
  description = "The replication account's password (at least 12 characters)."
  type        = string
  sensitive   = true
}

variable "redis_password" {
  description = "Redis' password (at least 12 characters)."
  type        = string
  sensitive   = true
}

variable "db_primary" {
  description = "Name of the db server that is the MariaDB primary (null: the first of db_nodes). Changing it is a switchover."
  type        = string
  default     = null
}

variable "db_replicas_for_reads" {
  description = "Whether Moodle sends read-only queries to the replicas."
  type        = bool
  default     = true
}

variable "nfs_version" {
  description = "NFS version the web nodes mount: `3` or `4.2`; null: the provider's default (`3`)."
  type        = string
  default     = null
}

variable "log_lifetime_days" {
  description = "Days Moodle's standard log is kept (0: forever); null: the provider's default."
  type        = number
  default     = null
}

variable "settings" {
  description = "More `$CFG` settings for config.php."
  type        = map(string)
  default     = {}
}

variable "backends" {
  description = "Per web node, by name: `{ weight, state, fpm_max_children, fpm_child_memory_mb, drain_timeout }` (see the moodle-cluster module)."
  type = map(object({
    weight              = optional(number)
    state               = optional(string)
    fpm_max_children    = optional(number)
    fpm_child_memory_mb = optional(number)
    drain_timeout       = optional(string)
  }))
  default = {}
}

variable "timeouts" {
  description = "Timeouts of the moodle resources: `{ create, update, delete }`."
  type = object({
    create = optional(string)
    update = optional(string)
    delete = optional(string)
  })
  default = null
}
