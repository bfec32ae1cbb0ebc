# One HA Moodle site: two HAProxy front ends sharing a virtual IP, the MariaDB primary, NFS and Redis.
# Web nodes and replicas join it with moodle_backend and moodle_db_replica.
resource "moodle_cluster" "site" {
  name         = "moodle"
  wwwroot      = "https://moodle.example.edu"
  cluster_cidr = "10.20.0.0/24"

  frontends = [
    { address = "10.20.0.11", host_key = var.host_keys["fe1"] },
    { address = "10.20.0.12", host_key = var.host_keys["fe2"] },
  ]
  vip = "10.20.0.10/24"
  tls = {
    certificate = file("moodle.example.edu.fullchain.pem")
    private_key = var.tls_private_key
  }

  database = {
    primary              = { address = "10.20.0.31", host_key = var.host_keys["db1"] }
    password             = var.db_password
    replication_password = var.replication_password
  }
  nfs = {
    host    = { address = "10.20.0.41", host_key = var.host_keys["nfs"] }
    version = "3"
  }
  redis = {
    host     = { address = "10.20.0.51", host_key = var.host_keys["redis"] }
    password = var.redis_password
  }

  # Production pins a tag of the institution's own Moodle mirror.
  code = {
    git_url = "https://git.example.edu/mirrors/moodle.git"
    ref     = "v4.5.6"
  }
  admin = {
    password = var.admin_password
    email    = "moodle-admins@example.edu"
  }

  log_lifetime_days = 365
  # More config.php settings; MOHD refuses unknown keys and those it sets itself (session_redis_*, db*...).
  settings = {
    enable_read_only_sessions   = "true"
    extramemorylimit            = "1024M"
    preventscheduledtaskchanges = "true"
  }
}
