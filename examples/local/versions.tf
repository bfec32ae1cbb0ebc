terraform {
  required_version = ">= 1.5"
  required_providers {
    moodle = {
      source = "mohd-dev/moodle"
    }
  }
}

# The lab's hosts are reached as the cloud image's user with the demo's key; every host key is verified
# (the demo reads each host's key out of band and writes it into terraform.tfvars).
provider "moodle" {
  ssh {
    user        = var.ssh_user
    private_key = file(var.ssh_private_key_file)
  }
}
