# The vSphere module's wiring, against mocked vsphere (v1.24.3 schema) and moodle providers (offline; the
# schemas come from the providers installed by `terraform init`): clones per role with their sizes, the
# database's second disk on the SSD datastore, DRS anti-affinity rules, cloud-init through guestinfo, and
# the hosts handed to the moodle-cluster module.

mock_provider "vsphere" {
  # What the data source reads from a template.
  mock_data "vsphere_virtual_machine" {
    defaults = {
      guest_id                = "debian12_64Guest"
      scsi_type               = "pvscsi"
      network_interface_types = ["vmxnet3"]
      disks = [{
        label            = "Hard disk 1"
        size             = 20
        unit_number      = 0
        thin_provisioned = true
        eagerly_scrub    = false
      }]
    }
  }
  mock_resource "vsphere_virtual_machine" {
    defaults = {
      default_ip_address = "10.20.0.99"
    }
  }
}

mock_provider "moodle" {}

variables {
  name            = "site"
  datacenter      = "dc1"
  compute_cluster = "cluster1"
  datastore       = "vsan"
  db_datastore    = "ssd1"
  network         = "moodle-private"
  folder          = "moodle"
  templates = {
    haproxy = "mohd-role-haproxy-20250301-101500"
    web     = "mohd-role-web-20250301-101500"
    db      = "mohd-role-db-20250301-101500"
    nfs     = "mohd-role-nfs-20250301-101500"
    redis   = "mohd-role-redis-20250301-101500"
  }
  sizes = {
    web = { cpus = 8, memory_mb = 16384, disk_gb = 40 }
  }
  db_disk_gb = 250

  cluster_cidr       = "10.20.0.0/24"
  gateway            = "10.20.0.1"
  dns_servers        = ["10.20.0.2"]
  dns_search_domains = ["example.edu"]
  vip_address        = "10.20.0.10"
  frontends          = [{ name = "fe1", ip_address = "10.20.0.11" }, { name = "fe2", ip_address = "10.20.0.12" }]
  web_nodes          = [{ name = "web1", ip_address = "10.20.0.21" }, { name = "web2", ip_address = "10.20.0.22" }, { name = "web3", ip_address = "10.20.0.23" }]
  db_nodes           = [{ name = "db1", ip_address = "10.20.0.31" }, { name = "db2", ip_address = "10.20.0.32" }]
  nfs_node           = { name = "nfs1", ip_address = "10.20.0.41" }
  redis_node         = { name = "redis1" } # DHCP (the mocked VM reports 10.20.0.99)

  ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKMKWuOGeUTjV6zgPmwjSNaxsjTm3I0u6qaffTE+2uR8 operator"]
  host_keys = {
    fe1    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEUnHbYSimBO2fy6AEvwCietiZ5WLSoffsoz4yrfuLzd"
    fe2    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMDWJmO6Ud+uXzxsyu6Ke1RDVrdg75E3/hDXKsVxkNIK"
    web1   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJvhJu64fdX59stI6WGGIM9RlGI1BzgJZi8IEDLMW94z"
    web2   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC+LEB1GXxLWymXvkZb+jk9PaTRyef2oFxKEjmR/ahHu"
    web3   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAi3H5SgHFWVHD/VeyTFpcYUha3rxyeRnhRUeN3JfkPz"
    db1    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKMKWuOGeUTjV6zgPmwjSNaxsjTm3I0u6qaffTE+2uR8"
    db2    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJCXp4ts9SFOYMHhS/VA4js9Oe0x4Wrt1Ef2WzBKEpXk"
    nfs1   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMfewG8Lhi7ASW5w7FM616lLAzBlyAYQBSmQB1GjFlCF"
    redis1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPiHeGWkDzWeptcVtXpVi/iKnuUBfxin7B0paiJtmIGz"
  }

  wwwroot = "https://moodle.example.edu"
  tls = {
    certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    private_key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
  }
  code                 = { git_url = "https://git.example.edu/mirrors/moodle.git", ref = "v4.5.6" }
  admin                = { email = "moodle-admins@example.edu" }
  admin_password       = "Admin-Password-42"
  db_password          = "Db-Password-4242"
  replication_password = "Repl-Password-42"
  redis_password       = "Redis-Password-42"
}

run "vms_per_role" {
  assert {
    condition     = toset(keys(vsphere_virtual_machine.this)) == toset(["fe1", "fe2", "web1", "web2", "web3", "db1", "db2", "nfs1", "redis1"])
    error_message = "one VM per host"
  }
  assert {
    condition     = vsphere_virtual_machine.this["web2"].name == "site-web2" && vsphere_virtual_machine.this["web2"].folder == "moodle"
    error_message = "VMs are named after the site and go to the folder"
  }
  assert {
    condition     = vsphere_virtual_machine.this["db1"].clone[0].template_uuid == data.vsphere_virtual_machine.template["db"].id && data.vsphere_virtual_machine.template["db"].name == "mohd-role-db-20250301-101500"
    error_message = "each VM is a clone of its role's template, found by name"
  }
  assert {
    condition     = vsphere_virtual_machine.this["web1"].num_cpus == 8 && vsphere_virtual_machine.this["web1"].memory == 16384
    error_message = "sizes override a role's CPUs and memory"
  }
  assert {
    condition     = vsphere_virtual_machine.this["db1"].num_cpus == 4 && vsphere_virtual_machine.this["db1"].memory == 16384 && vsphere_virtual_machine.this["fe1"].memory == 2048
    error_message = "roles not in sizes keep the defaults"
  }
  assert {
    condition     = vsphere_virtual_machine.this["web1"].disk[0].size == 40 && vsphere_virtual_machine.this["fe1"].disk[0].size == 20
    error_message = "the system disk is the template's, or larger when sizes asks"
  }
  assert {
    condition     = vsphere_virtual_machine.this["web1"].network_interface[0].adapter_type == "vmxnet3" && vsphere_virtual_machine.this["web1"].network_interface[0].network_id == data.vsphere_network.this.id
    error_message = "one adapter of the template's type on the cluster's port group"
  }
  assert {
    condition     = vsphere_virtual_machine.this["web1"].guest_id == "debian12_64Guest" && vsphere_virtual_machine.this["web1"].scsi_type == "pvscsi"
    error_message = "guest type and SCSI controller come from the template"
  }
}

run "database_disk" {
  assert {
    condition = alltrue([for name in ["db1", "db2"] :
      length(vsphere_virtual_machine.this[name].disk) == 2 &&
      vsphere_virtual_machine.this[name].disk[1].label == "mysql" &&
      vsphere_virtual_machine.this[name].disk[1].unit_number == 1 &&
      vsphere_virtual_machine.this[name].disk[1].size == 250
    ])
    error_message = "each database VM has a second disk (unit 1) of db_disk_gb"
  }
  assert {
    condition     = vsphere_virtual_machine.this["db2"].disk[1].datastore_id == data.vsphere_datastore.db[0].id && vsphere_virtual_machine.this["db2"].disk[0].datastore_id != data.vsphere_datastore.db[0].id
    error_message = "the database disk is on the SSD datastore"
  }
  assert {
    condition     = !vsphere_virtual_machine.this["db1"].disk[1].thin_provisioned && vsphere_virtual_machine.this["db1"].disk[1].eagerly_scrub
    error_message = "the database disk is thick, eager-zeroed"
  }
  assert {
    condition     = alltrue([for name in ["fe1", "web1", "nfs1", "redis1"] : length(vsphere_virtual_machine.this[name].disk) == 1])
    error_message = "other VMs have their system disk only"
  }
  assert {
    condition     = strcontains(yamldecode(base64decode(vsphere_virtual_machine.this["db1"].extra_config["guestinfo.userdata"])).bootcmd[0][4], "scsi-0:0:1:0")
    error_message = "cloud-init mounts the disk of SCSI unit 1"
  }
  assert {
    condition     = !strcontains(base64decode(vsphere_virtual_machine.this["web1"].extra_config["guestinfo.userdata"]), "bootcmd")
    error_message = "other VMs mount nothing"
  }
}

run "anti_affinity" {
  assert {
    condition     = toset(keys(vsphere_compute_cluster_vm_anti_affinity_rule.role)) == toset(["haproxy", "web", "db"])
    error_message = "anti-affinity rules for the front ends, the web nodes and the databases"
  }
  assert {
    condition = alltrue([for role, names in { haproxy = ["fe1", "fe2"], web = ["web1", "web2", "web3"], db = ["db1", "db2"] } :
      vsphere_compute_cluster_vm_anti_affinity_rule.role[role].virtual_machine_ids == toset([for n in names : vsphere_virtual_machine.this[n].id]) &&
      vsphere_compute_cluster_vm_anti_affinity_rule.role[role].compute_cluster_id == data.vsphere_compute_cluster.this.id
    ])
    error_message = "each rule keeps its role's VMs apart in the compute cluster"
  }
  assert {
    condition     = length(vsphere_compute_cluster_vm_group.role) == 0
    error_message = "no DRS VM groups unless asked"
  }
}

run "cloud_init_guestinfo" {
  assert {
    condition     = vsphere_virtual_machine.this["web1"].extra_config["guestinfo.metadata.encoding"] == "base64" && vsphere_virtual_machine.this["web1"].extra_config["guestinfo.userdata.encoding"] == "base64"
    error_message = "metadata and userdata are base64 guestinfo"
  }
  assert {
    condition = jsondecode(base64decode(vsphere_virtual_machine.this["web1"].extra_config["guestinfo.metadata"])) == {
      "instance-id"    = "site-web1"
      "local-hostname" = "web1"
      network = {
        version = 2
        ethernets = {
          ens192 = {
            dhcp4       = false
            addresses   = ["10.20.0.21/24"]
            routes      = [{ to = "0.0.0.0/0", via = "10.20.0.1" }]
            nameservers = { addresses = ["10.20.0.2"], search = ["example.edu"] }
          }
        }
      }
    }
    error_message = "the metadata gives the VM its name and static address"
  }
  assert {
    condition     = !can(jsondecode(base64decode(vsphere_virtual_machine.this["redis1"].extra_config["guestinfo.metadata"])).network)
    error_message = "a VM without ip_address keeps DHCP"
  }
  assert {
    condition = yamldecode(base64decode(vsphere_virtual_machine.this["nfs1"].extra_config["guestinfo.userdata"])).users == [{
      name                = "debian"
      shell               = "/bin/bash"
      lock_passwd         = true
      sudo                = "ALL=(ALL) NOPASSWD:ALL"
      ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKMKWuOGeUTjV6zgPmwjSNaxsjTm3I0u6qaffTE+2uR8 operator"]
    }]
    error_message = "cloud-init creates the login user with the key and passwordless sudo"
  }
  assert {
    condition     = strcontains(yamldecode(base64decode(vsphere_virtual_machine.this["nfs1"].extra_config["guestinfo.userdata"])).runcmd[0][2], "info-set guestinfo.mohd.ssh_host_ed25519_key")
    error_message = "cloud-init publishes the host key to vCenter"
  }
}

run "moodle_wiring" {
  assert {
    condition     = module.cluster[0].frontends.vip == "10.20.0.10/24" && module.cluster[0].frontends.addresses == ["10.20.0.11", "10.20.0.12"]
    error_message = "the front ends and the VIP (with the cluster's prefix length)"
  }
  assert {
    condition     = module.cluster[0].primary.name == "db1" && module.cluster[0].replicas["db2"].address == "10.20.0.32"
    error_message = "db1 is the primary, db2 its replica"
  }
  assert {
    condition     = toset(keys(module.cluster[0].backends)) == toset(["web1", "web2", "web3"])
    error_message = "one backend per web VM"
  }
  assert {
    condition     = output.addresses.redis == { redis1 = "10.20.0.99" }
    error_message = "a DHCP VM is wired at the address VMware Tools reports"
  }
}

run "one_front_end_vm_groups" {
  variables {
    frontends        = [{ name = "fe1", ip_address = "10.20.0.11" }]
    vip_address      = null
    db_datastore     = null
    drs_vm_groups    = true
    configure_moodle = false
  }

  assert {
    condition     = toset(keys(vsphere_compute_cluster_vm_anti_affinity_rule.role)) == toset(["web", "db"])
    error_message = "no rule for a single front end"
  }
  assert {
    condition     = toset(keys(vsphere_compute_cluster_vm_group.role)) == toset(["haproxy", "web", "db", "nfs", "redis"]) && vsphere_compute_cluster_vm_group.role["web"].name == "site-web"
    error_message = "drs_vm_groups creates one VM group per role"
  }
  assert {
    condition     = vsphere_virtual_machine.this["db1"].disk[1].datastore_id == data.vsphere_datastore.this.id
    error_message = "without db_datastore the database disk is on the VMs' datastore"
  }
  assert {
    condition     = length(module.cluster) == 0 && output.url == null
    error_message = "configure_moodle = false creates the VMs only"
  }
  assert {
    condition     = strcontains(output.host_key_commands["db1"], "govc vm.info -dc 'dc1' -e 'site-db1'")
    error_message = "the host key commands are given"
  }
}

run "vip_missing" {
  command = plan
  variables {
    vip_address = null
  }
  expect_failures = [data.vsphere_datacenter.this]
}

run "address_outside_cluster_cidr" {
  command = plan
  variables {
    nfs_node = { name = "nfs1", ip_address = "10.30.0.41" }
  }
  expect_failures = [data.vsphere_datacenter.this]
}

run "missing_template" {
  command = plan
  variables {
    templates = { haproxy = "a", web = "b", db = "c", nfs = "d" }
  }
  expect_failures = [var.templates]
}

run "bad_size" {
  command = plan
  variables {
    sizes = { db = { cpus = 0, memory_mb = 512 } }
  }
  expect_failures = [var.sizes]
}
