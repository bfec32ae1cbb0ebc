output "url" {
  description = "The site's URL."
  value       = module.moodle.url
}

output "vip_address" {
  description = "Point wwwroot's DNS name at this address."
  value       = module.moodle.vip_address
}

output "addresses" {
  description = "Addresses by role."
  value       = module.moodle.addresses
}

output "host_key_commands" {
  description = "govc commands that print each VM's SSH host key from vCenter (fill host_keys with them)."
  value       = module.moodle.host_key_commands
}

output "primary" {
  description = "The database primary."
  value       = module.moodle.primary
}

output "replica_lag" {
  description = "Replication lag (seconds) per replica."
  value       = module.moodle.replica_lag
}

output "backend_states" {
  description = "HAProxy's view of each web node."
  value       = module.moodle.backend_states
}

output "drift" {
  description = "What differs on the hosts from the configuration (empty when in sync)."
  value       = module.moodle.drift
}
