################################################################################
# vSphere
################################################################################

output "vms" {
  description = "Each VM by name: its role, managed object id, BIOS UUID and private address."
  value = {
    for name, s in local.servers : name => {
      role    = s.role
      id      = vsphere_virtual_machine.this[name].id
      moid    = vsphere_virtual_machine.this[name].moid
      address = local.host[name].address
    }
  }
}

output "addresses" {
  description = "Private addresses by role (`haproxy`, `web`, `db`, `nfs`, `redis`), each a map of VM name to address."
  value = {
    for role in local.roles : role => { for name, s in local.servers : name => local.host[name].address if s.role == role }
  }
}

output "vip_address" {
  description = "The front ends' virtual address (two front ends), else the front end's address."
  value       = local.two_frontends ? var.vip_address : local.host[var.frontends[0].name].address
}

output "anti_affinity_rules" {
  description = "The DRS anti-affinity rules by role, with the VMs each keeps apart."
  value = {
    for role, r in vsphere_compute_cluster_vm_anti_affinity_rule.role : role => {
      name = r.name
      vms  = local.role_vms[role]
    }
  }
}

output "host_key_commands" {
  description = "For each VM, a govc command that prints the SSH host key cloud-init published to vCenter (guestinfo): put each in host_keys."
  value = {
    for name, vm in vsphere_virtual_machine.this : name =>
    "govc vm.info -dc '${var.datacenter}' -e '${vm.name}' | sed -n 's/^ *guestinfo.mohd.ssh_host_ed25519_key: *//p'"
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
  description = "Replication lag in seconds by replica VM name."
  value       = try(module.cluster[0].replica_lag, null)
}

output "replicas" {
  description = "Each replica's replication state, by VM name."
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
