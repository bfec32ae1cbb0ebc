# Read a database host's facts to size MariaDB from its RAM and check its SSD volume.
data "moodle_host" "db" {
  host     = "10.20.0.21"
  host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcLiPSRiUfR0/gAH1VHK2iBPMDp3hI3qVYnZ7FdBT9v"
}

output "db_memory_mb" {
  value = data.moodle_host.db.memory_mb
}

output "db_role" {
  # "db" on a host cloned from MOHD's db image; null on any other host.
  value = data.moodle_host.db.role
}
