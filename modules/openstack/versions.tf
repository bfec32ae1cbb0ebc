terraform {
  required_version = ">= 1.5.7"

  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = ">= 3.0.0, < 4.0.0"
    }
    moodle = {
      source  = "mohd-dev/moodle"
      version = "~> 0.1"
    }
  }
}
