################################################################################
# vSphere placement
################################################################################

variable "name" {
  description = "Name of the site: the `moodle_cluster`'s name and the prefix of every VM, rule and group (`<name>-web1`). 1-32 letters, digits, `-`, `_`."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,32}$", var.name))
    error_message = "name must be 1-32 letters, digits, '-' or '_'."
  }
}

variable "datacenter" {
  description = "The vSphere datacenter."
  type        = string
}

variable "compute_cluster" {
  description = "The vSphere cluster the VMs run in (DRS enforces the anti-affinity rules)."
  type        = string
}

variable "resource_pool_id" {
  description = "Resource pool of the VMs; null: the cluster's root resource pool."
  type        = string
  default     = null
}

variable "datastore" {
  description = "Datastore of the VMs' system disks."
  type        = string
}

variable "db_datastore" {
  description = "Datastore (SSD) of the databases' data disks; null: `datastore`."
  type        = string
  default     = null
}

variable "network" {
  description = "Port group of the VMs' network adapter (the cluster's private network)."
  type        = string
}

variable "folder" {
  description = "VM folder path (relative to the datacenter's vm folder) of the VMs; null: the root folder."
  type        = string
  default     = null
}

variable "templates" {
  description = "VM template per role, as MOHD's Packer template names them (`mohd-role-web-20250301-101500`): keys `haproxy`, `web`, `db`, `nfs`, `redis`. A VM is never re-cloned because the name changes (see README)."
  type        = map(string)

  validation {
    condition     = length(setsubtract(["haproxy", "web", "db", "nfs", "redis"], keys(var.templates))) == 0
    error_message = "templates needs a template name for each role: haproxy, web, db, nfs and redis."
  }
}

variable "sizes" {
  description = "VM size per role: `{ cpus, memory_mb, disk_gb }` (`disk_gb`: the system disk, at least the template's; null keeps the template's). Roles left out keep the defaults: haproxy 2 CPUs/2 GiB, web 4/8 GiB, db 4/16 GiB, nfs 2/4 GiB, redis 2/4 GiB."
  type = map(object({
    cpus      = number
    memory_mb = number
    disk_gb   = optional(number)
  }))
  default = {}

  validation {
    condition     = length(setsubtract(keys(var.sizes), ["haproxy", "web", "db", "nfs", "redis"])) == 0
    error_message = "sizes keys must be roles: haproxy, web, db, nfs, redis."
  }
  validation {
    condition     = alltrue([for s in values(var.sizes) : s.cpus >= 1 && s.memory_mb >= 1024 && s.memory_mb % 4 == 0])
    error_message = "sizes: at least 1 CPU and 1024 MB of memory (a multiple of 4 MB)."
  }
}

variable "db_disk_gb" {
  description = "Size in GB of each database VM's second disk (SSD datastore), mounted at /var/lib/mysql."
  type        = number
  default     = 100

  validation {
    condition     = var.db_disk_gb >= 10 && floor(var.db_disk_gb) == var.db_disk_gb
    error_message = "db_disk_gb must be a whole number of GB, at least 10."
  }
}

variable "db_disk_thin_provisioned" {
  description = "Thin-provision the database disks (false: thick, eager-zeroed, as databases prefer)."
  type        = bool
  default     = false
}

variable "firmware" {
  description = "VM firmware (`bios` or `efi`): must be the template's. null: read from the template (provider v2; v1.24 does not report it and falls back to `bios`)."
  type        = string
  default     = null

  validation {
    condition     = var.firmware == null || contains(["bios", "efi"], coalesce(var.firmware, "bios"))
    error_message = "firmware must be bios or efi."
  }
}

variable "drs_vm_groups" {
  description = "Also create a DRS VM group per role (`<name>-<role>`), for VM-host rules you manage elsewhere."
  type        = bool
  default     = false
}

variable "wait_for_guest_net_timeout" {
  description = "Minutes to wait for VMware Tools to report the VM's address after it is cloned (0: do not wait; needed for DHCP addresses)."
  type        = number
  default     = 5
}

################################################################################
# Hosts and network
################################################################################

variable "frontends" {
  description = "The HAProxy VMs (one or two): `{ name, ip_address }`; `ip_address` is a static IPv4 address in cluster_cidr, null uses DHCP."
  type = list(object({
    name       = string
    ip_address = optional(string)
  }))
  default = [{ name = "fe1" }, { name = "fe2" }]

  validation {
    condition     = length(var.frontends) >= 1 && length(var.frontends) <= 2
    error_message = "frontends takes one or two VMs."
  }
}

variable "web_nodes" {
  description = "The web (Apache, PHP-FPM) VMs: `{ name, ip_address }`."
  type = list(object({
    name       = string
    ip_address = optional(string)
  }))
  default = [{ name = "web1" }, { name = "web2" }]

  validation {
    condition     = length(var.web_nodes) >= 1
    error_message = "web_nodes needs at least one VM."
  }
}

variable "db_nodes" {
  description = "The MariaDB VMs: `{ name, ip_address }`. Each gets a second disk for its data. Append, never reorder (see the moodle-cluster module's db_hosts)."
  type = list(object({
    name       = string
    ip_address = optional(string)
  }))
  default = [{ name = "db1" }, { name = "db2" }]

  validation {
    condition     = length(var.db_nodes) >= 1
    error_message = "db_nodes needs at least one VM."
  }
}

variable "nfs_node" {
  description = "The NFS VM for moodledata: `{ name, ip_address }`."
  type = object({
    name       = string
    ip_address = optional(string)
  })
  default = { name = "nfs1" }
}

variable "redis_node" {
  description = "The Redis VM for sessions: `{ name, ip_address }`."
  type = object({
    name       = string
    ip_address = optional(string)
  })
  default = { name = "redis1" }
}

variable "cluster_cidr" {
  description = "The cluster's private network (`10.20.0.0/24`): the prefix length of the static addresses, and the network the role ports are open to."
  type        = string

  validation {
    condition     = can(regex("^[0-9.]+/[0-9]+$", var.cluster_cidr)) && can(cidrhost(var.cluster_cidr, 0))
    error_message = "cluster_cidr must be an IPv4 network in CIDR notation, such as 10.20.0.0/24."
  }
}

variable "gateway" {
  description = "Default gateway of the VMs with a static address; null: none (a private network reached through a bastion)."
  type        = string
  default     = null
}

variable "dns_servers" {
  description = "DNS servers of the VMs with a static address."
  type        = list(string)
  default     = []
}

variable "dns_search_domains" {
  description = "DNS search domains of the VMs with a static address."
  type        = list(string)
  default     = []
}

variable "guest_interface" {
  description = "Name of the network interface in the guest, as the template's Debian names it (`ens192` for the first vmxnet3 adapter): cloud-init's network configuration is keyed by it."
  type        = string
  default     = "ens192"
}

variable "vip_address" {
  description = "With two front ends: the virtual IPv4 address users reach (in cluster_cidr, unused), held by keepalived."
  type        = string
  default     = null
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

variable "host_keys" {
  description = "SSH host public key (`ssh-ed25519 AAAA...`) of each VM, by VM name. cloud-init publishes each VM's key to vCenter (guestinfo `mohd.ssh_host_ed25519_key`, read with the `host_key_commands` output) after a first apply with `configure_moodle = false`. VMs left out are verified against the moodle provider's `ssh.known_hosts`."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in values(var.host_keys) : can(regex("^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/=]+( .*)?$", trimspace(k)))])
    error_message = "host_keys values must be public keys in authorized_keys format (\"ssh-ed25519 AAAA...\")."
  }
}

variable "configure_moodle" {
  description = "Wire the VMs into the Moodle cluster (the moodle-cluster module). false creates only the VMs: the first step when the host keys are not known yet."
  type        = bool
  default     = true
}

################################################################################
# The site (passed to the moodle-cluster module; see its README)
################################################################################

variable "wwwroot" {
  description = "Moodle's wwwroot: the URL users type (its DNS name points at the VIP)."
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
  description = "Name of the db VM that is the MariaDB primary (null: the first of db_nodes). Changing it is a switchover."
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
