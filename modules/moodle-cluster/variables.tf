################################################################################
# Site
################################################################################

variable "name" {
  description = "Short name of the site (1-32 letters, digits, `-`, `_`). Changing it replaces the cluster resource."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,32}$", var.name))
    error_message = "name must be 1-32 letters, digits, '-' or '_'."
  }
}

variable "wwwroot" {
  description = "Moodle's `$CFG->wwwroot`: the URL users type (`https://moodle.example.edu`), without a trailing slash, query or fragment."
  type        = string

  validation {
    condition     = can(regex("^https?://[^/?#[:space:]]+(/[^?#[:space:]]*)?$", var.wwwroot)) && !endswith(var.wwwroot, "/")
    error_message = "wwwroot must be an absolute http:// or https:// URL without a trailing slash, query or fragment (Moodle compares it literally)."
  }
}

variable "cluster_cidr" {
  description = "The private network of the cluster's hosts (`10.20.0.0/24`): the database accounts and the NFS export are limited to it."
  type        = string

  validation {
    condition     = can(cidrhost(var.cluster_cidr, 0))
    error_message = "cluster_cidr must be a network in CIDR notation, such as 10.20.0.0/24."
  }
}

variable "tls" {
  description = "TLS at the front ends: the PEM certificate followed by its chain, and its PEM private key. Required when `wwwroot` is https; null serves plain HTTP (labs only)."
  type = object({
    certificate = string
    private_key = string
  })
  default   = null
  sensitive = true

  validation {
    condition = var.tls == null ? true : (
      can(regex("-----BEGIN CERTIFICATE-----", var.tls.certificate)) &&
      can(regex("-----BEGIN [A-Z ]*PRIVATE KEY-----", var.tls.private_key))
    )
    error_message = "tls.certificate must hold a PEM certificate and tls.private_key a PEM private key."
  }
}

variable "code" {
  description = "Moodle's code: `git_url` and `ref` (your institution's mirror, a pinned tag or commit), or `path`, a directory or `.tar.gz` on the machine running Terraform (air-gapped sites). Changing it deploys and upgrades every web node."
  type = object({
    git_url = optional(string)
    ref     = optional(string)
    path    = optional(string)
  })

  validation {
    condition     = (var.code.git_url == null) != (var.code.path == null)
    error_message = "code needs either git_url (with ref) or path, not both."
  }
  validation {
    condition     = var.code.git_url == null || var.code.ref != null
    error_message = "code.git_url needs a ref: a tag, a branch or a commit id (pin a tag or commit in production)."
  }
  validation {
    condition     = var.code.path == null || var.code.ref == null
    error_message = "code.ref goes with git_url, not with path."
  }
}

variable "admin" {
  description = "The site's first administrator, set at installation: `email` (required), `user` (default `admin`), `site_full_name` and `site_short_name`."
  type = object({
    email           = string
    user            = optional(string)
    site_full_name  = optional(string)
    site_short_name = optional(string)
  })

  validation {
    condition     = can(regex("^[^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:]]+$", var.admin.email))
    error_message = "admin.email must be an e-mail address."
  }
}

variable "log_lifetime_days" {
  description = "Days Moodle's standard log is kept (0 keeps it forever); null keeps the provider's default (365)."
  type        = number
  default     = null

  validation {
    condition     = var.log_lifetime_days == null ? true : (var.log_lifetime_days >= 0 && floor(var.log_lifetime_days) == var.log_lifetime_days)
    error_message = "log_lifetime_days must be a whole number of days, 0 or more."
  }
}

variable "settings" {
  description = "More `$CFG` settings for config.php (session handler options and the like). The provider refuses unknown keys and the keys MOHD sets itself."
  type        = map(string)
  default     = {}
}

################################################################################
# Secrets
################################################################################

variable "admin_password" {
  description = "The administrator's password (used once, at installation). At least 12 characters."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.admin_password) >= 12 && !contains(["changeme", "password"], lower(var.admin_password))
    error_message = "admin_password must have at least 12 characters."
  }
}

variable "db_password" {
  description = "Moodle's database password. At least 12 characters, no double quote or newline."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.db_password) >= 12 && !can(regex("[\"\n]", var.db_password))
    error_message = "db_password must have at least 12 characters and no double quote or newline."
  }
}

variable "replication_password" {
  description = "The replication account's password. At least 12 characters."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.replication_password) >= 12
    error_message = "replication_password must have at least 12 characters."
  }
}

variable "redis_password" {
  description = "Redis' password (`requirepass`). At least 12 characters."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.redis_password) >= 12
    error_message = "redis_password must have at least 12 characters."
  }
}

################################################################################
# Hosts
################################################################################

variable "frontends" {
  description = "One or two HAProxy hosts (role `haproxy`). Each host is `{ name, address, port (default 22), host_key }`: `address` is the private address MOHD reaches over SSH and the cluster uses; `host_key` the host's SSH public key (authorized_keys format), or null when the provider's `ssh.known_hosts` knows the host."
  type = list(object({
    name     = string
    address  = string
    port     = optional(number)
    host_key = optional(string)
  }))

  validation {
    condition     = length(var.frontends) >= 1 && length(var.frontends) <= 2
    error_message = "frontends takes one or two hosts (two share the virtual IP vip)."
  }
  validation {
    condition     = length(distinct([for h in var.frontends : h.name])) == length(var.frontends) && alltrue([for h in var.frontends : can(regex("^[A-Za-z0-9_-]{1,32}$", h.name))])
    error_message = "frontends: names must be unique, 1-32 letters, digits, '-' or '_'."
  }
  validation {
    condition     = alltrue([for h in var.frontends : h.address != "" && (h.port == null ? true : h.port >= 1 && h.port <= 65535)])
    error_message = "frontends: every host needs an address, and a port in 1-65535 when one is given."
  }
}

variable "vip" {
  description = "With two front ends: the virtual address users reach, with its prefix length (`10.20.0.10/24`), held by keepalived. Null with one front end."
  type        = string
  default     = null

  validation {
    condition     = var.vip == null ? true : can(regex("^[0-9.]+/[0-9]+$", var.vip)) && can(cidrhost(var.vip, 0))
    error_message = "vip must be an IPv4 address with its prefix length, such as 10.20.0.10/24."
  }
}

variable "web_hosts" {
  description = "The web nodes (role `web`), `{ name, address, port, host_key }` as for frontends. Each becomes one `moodle_backend` named after it (its name in HAProxy)."
  type = list(object({
    name     = string
    address  = string
    port     = optional(number)
    host_key = optional(string)
  }))

  validation {
    condition     = length(var.web_hosts) >= 1
    error_message = "web_hosts needs at least one web node (two or more for high availability)."
  }
  validation {
    condition     = length(distinct([for h in var.web_hosts : h.name])) == length(var.web_hosts) && alltrue([for h in var.web_hosts : can(regex("^[A-Za-z0-9_-]{1,32}$", h.name))])
    error_message = "web_hosts: names must be unique, 1-32 letters, digits, '-' or '_'."
  }
  validation {
    condition     = alltrue([for h in var.web_hosts : h.address != "" && (h.port == null ? true : h.port >= 1 && h.port <= 65535)])
    error_message = "web_hosts: every host needs an address, and a port in 1-65535 when one is given."
  }
}

variable "db_hosts" {
  description = "The database hosts (role `db`), `{ name, address, port, host_key }` as for frontends. `db_primary` names the primary; every other host is a replica. Append new hosts at the end and never reorder the list: each replica resource is keyed by a host's name, and the first host is the one a replica resource moves to while its own host is the primary."
  type = list(object({
    name     = string
    address  = string
    port     = optional(number)
    host_key = optional(string)
  }))

  validation {
    condition     = length(var.db_hosts) >= 1
    error_message = "db_hosts needs at least one database host (two for a replica to switch over to)."
  }
  validation {
    condition     = length(distinct([for h in var.db_hosts : h.name])) == length(var.db_hosts) && alltrue([for h in var.db_hosts : can(regex("^[A-Za-z0-9_-]{1,32}$", h.name))])
    error_message = "db_hosts: names must be unique, 1-32 letters, digits, '-' or '_'."
  }
  validation {
    condition     = alltrue([for h in var.db_hosts : h.address != "" && (h.port == null ? true : h.port >= 1 && h.port <= 65535)])
    error_message = "db_hosts: every host needs an address, and a port in 1-65535 when one is given."
  }
}

variable "db_primary" {
  description = "Name of the db host that is the MariaDB primary (null: the first of `db_hosts`). Changing it to a replica's name is a switchover (a failover when the old primary is down): see the provider's switchover-failover guide."
  type        = string
  default     = null
}

variable "db_replicas_for_reads" {
  description = "Whether Moodle sends read-only queries to the replicas (`$CFG->dboptions['readonly']` on every web node)."
  type        = bool
  default     = true
}

variable "database" {
  description = "Names of the database and its accounts: `name` (default `moodle`), `user` (default `moodle`), `replication_user` (default `mohd_repl`)."
  type = object({
    name             = optional(string)
    user             = optional(string)
    replication_user = optional(string)
  })
  default = {}

  validation {
    condition     = alltrue([for v in [var.database.name, var.database.user, var.database.replication_user] : v == null ? true : can(regex("^[A-Za-z0-9_]{1,32}$", v))])
    error_message = "database: name, user and replication_user must be plain identifiers (1-32 letters, digits, '_')."
  }
}

variable "nfs" {
  description = "The moodledata share: `host` (role `nfs`, `{ name, address, port, host_key }`), `export` (default `/moodledata`), `version` (`3` or `4.2`; default `3`), `existing_storage` (the web nodes already share a volume at moodledata: MOHD checks it instead of mounting NFS)."
  type = object({
    host = object({
      name     = string
      address  = string
      port     = optional(number)
      host_key = optional(string)
    })
    export           = optional(string)
    version          = optional(string)
    existing_storage = optional(bool)
  })

  validation {
    condition     = var.nfs.version == null || contains(["3", "4.2"], coalesce(var.nfs.version, "3"))
    error_message = "nfs.version must be \"3\" or \"4.2\"."
  }
  validation {
    condition     = var.nfs.export == null || startswith(coalesce(var.nfs.export, "/"), "/")
    error_message = "nfs.export must be an absolute path."
  }
  validation {
    condition     = var.nfs.host.address != ""
    error_message = "nfs.host needs an address."
  }
}

variable "redis_host" {
  description = "The Redis host for PHP sessions (role `redis`), `{ name, address, port, host_key }`."
  type = object({
    name     = string
    address  = string
    port     = optional(number)
    host_key = optional(string)
  })

  validation {
    condition     = var.redis_host.address != ""
    error_message = "redis_host needs an address."
  }
}

variable "monitoring_host" {
  description = "The monitoring host (role `monitoring`: Prometheus, Alertmanager), `{ name, address, port, host_key }`; every member registers its exporters there. `null`: no monitoring."
  type = object({
    name     = string
    address  = string
    port     = optional(number)
    host_key = optional(string)
  })
  default = null
}

variable "mattermost_webhook_url" {
  description = "Mattermost incoming webhook Alertmanager posts alerts to (with `monitoring_host`); `null` keeps alerts in Alertmanager's UI."
  type        = string
  default     = null
  sensitive   = true
}

################################################################################
# Web nodes
################################################################################

variable "backends" {
  description = "Per web node, by name: `weight` (0-256, default 100), `state` (`active`, `drain`: no new requests, current ones finish, `maintenance`: out of the front ends), `fpm_max_children` (4-1000; default: sized from the node's RAM), `fpm_child_memory_mb` (32-2048), `drain_timeout` (a Go duration). Nodes not listed use the provider's defaults."
  type = map(object({
    weight              = optional(number)
    state               = optional(string)
    fpm_max_children    = optional(number)
    fpm_child_memory_mb = optional(number)
    drain_timeout       = optional(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for b in values(var.backends) : b.weight == null ? true : b.weight >= 0 && b.weight <= 256])
    error_message = "backends: weight must be between 0 and 256."
  }
  validation {
    condition     = alltrue([for b in values(var.backends) : b.state == null || contains(["active", "drain", "maintenance"], coalesce(b.state, "active"))])
    error_message = "backends: state must be active, drain or maintenance."
  }
  validation {
    condition = alltrue([for b in values(var.backends) :
      (b.fpm_max_children == null ? true : b.fpm_max_children >= 4 && b.fpm_max_children <= 1000) &&
      (b.fpm_child_memory_mb == null ? true : b.fpm_child_memory_mb >= 32 && b.fpm_child_memory_mb <= 2048)
    ])
    error_message = "backends: fpm_max_children must be in 4-1000 and fpm_child_memory_mb in 32-2048."
  }
  validation {
    condition     = alltrue([for b in values(var.backends) : b.drain_timeout == null || can(regex("^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$", coalesce(b.drain_timeout, "0s")))])
    error_message = "backends: drain_timeout must be a Go duration such as 90s or 5m."
  }
}

variable "timeouts" {
  description = "Timeouts (Go durations) of the cluster, backend and replica resources: `create`, `update`, `delete`. Null keeps the provider's."
  type = object({
    create = optional(string)
    update = optional(string)
    delete = optional(string)
  })
  default = null
}
