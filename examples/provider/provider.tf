terraform {
  required_providers {
    moodle = {
      source = "mohd-dev/moodle"
    }
  }
}

# Hosts are reached over SSH as the cloud image's user, with passwordless sudo. Host keys are always
# verified: give each host's key on its resource (host_key) or list them here in known_hosts.
provider "moodle" {
  ssh {
    user        = "debian"
    private_key = file(pathexpand("~/.ssh/moodle_ed25519"))
    known_hosts = file("${path.module}/known_hosts")

    # Reach the private network through a jump host.
    bastion {
      host     = "bastion.example.org"
      host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcLiPSRiUfR0/gAH1VHK2iBPMDp3hI3qVYnZ7FdBT9v"
    }
  }
}
