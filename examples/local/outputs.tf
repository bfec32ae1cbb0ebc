output "url" {
  description = "Where users reach Moodle: the VIP, through whichever front end holds it."
  value       = "${module.moodle.url}/"
}

output "primary" {
  description = "The database primary: its name and address."
  value       = module.moodle.primary
}

output "replica_lag" {
  description = "Each replica's replication lag in seconds (null while a replication thread is stopped)."
  value       = module.moodle.replica_lag
}

output "backends" {
  description = "Each web node: address, PHP-FPM pool size, HAProxy's view of it on every front end."
  value       = module.moodle.backends
}

output "drift" {
  description = "What the last refresh found changed by hand on the hosts (empty after an apply)."
  value       = module.moodle.drift
}
