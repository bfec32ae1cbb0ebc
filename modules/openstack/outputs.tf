################################################################################
# OpenStack
################################################################################

output "servers" {
  description = "Each server by name: its role, Nova id, private address and image."
  value = {
    for name, s in local.servers : name => {
      role     = s.role
      id       = openstack_compute_instance_v2.this[name].id
      address  = local.host[name].address
      image_id = openstack_compute_instance_v2.this[name].image_id
      flavor   = openstack_compute_instance_v2.this[name].flavor_name
    }
  }
}

output "addresses" {
  description = "Private addresses by role (`haproxy`, `web`, `db`, `nfs`, `redis`), each a map of server name to address."
  value = {
    for role in local.roles : role => { for name, s in local.servers : name => local.host[name].address if s.role == role }
  }
}

output "vip_address" {
  description = "The front ends' virtual address (two front ends), else the front end's address."
  value       = local.two_frontends ? local.vip_ip : local.host[var.frontends[0].name].address
}

output "floating_ip" {
  description = "The floating IP users reach (point wwwroot's DNS name at it); null without floating_ip_pool."
  value       = try(openstack_networking_floatingip_v2.this[0].address, null)
}

output "security_group_ids" {
  description = "The security group of each role."
  value       = { for role, g in openstack_networking_secgroup_v2.role : role => g.id }
}

output "server_group_ids" {
  description = "The server groups (front ends, web nodes, databases) and their policy."
  value       = { for role, g in openstack_compute_servergroup_v2.role : role => g.id }
}

output "db_volume_ids" {
  description = "The Cinder volume of each database server (MariaDB's data directory)."
  value       = { for name, v in openstack_blockstorage_volume_v3.db : name => v.id }
}

output "host_key_commands" {
  description = "For each server, a command that prints the SSH host keys cloud-init wrote to its console log: compare them with what you trust, then put the `ssh-ed25519` line of each in host_keys."
  value = {
    for name, s in openstack_compute_instance_v2.this : name =>
    "openstack console log show ${s.id} | sed -n '/BEGIN SSH HOST KEY KEYS/,/END SSH HOST KEY KEYS/p' | grep '^ssh-ed25519 ' | cut -d' ' -f1,2"
  }
}

################################################################################
# Moodle (null while configure_moodle is false)
################################################################################

output "url" {
  description = "The site's URL."
  value       = try(module.cluster[0].url, null)
}

output "primary" {
  description = "The database primary: name and address."
  value       = try(module.cluster[0].primary, null)
}

output "replica_lag" {
  description = "Replication lag in seconds by replica server name."
  value       = try(module.cluster[0].replica_lag, null)
}

output "replicas" {
  description = "Each replica's replication state, by server name."
  value       = try(module.cluster[0].replicas, null)
}

output "backend_states" {
  description = "HAProxy's view of each web node per front end."
  value       = try(module.cluster[0].backend_states, null)
}

output "drift" {
  description = "What the last refresh found different on the cluster's hosts (empty when in sync)."
  value       = try(module.cluster[0].drift, null)
}

output "member_drift" {
  description = "Drift of the web nodes and replicas that drifted."
  value       = try(module.cluster[0].member_drift, null)
}

output "last_event" {
  description = "What the last apply did beyond converging (a switchover, a failover)."
  value       = try(module.cluster[0].last_event, null)
}
