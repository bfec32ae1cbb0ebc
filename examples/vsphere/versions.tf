terraform {
  required_version = ">= 1.5.7"

  required_providers {
    vsphere = {
      source  = "hashicorp/vsphere"
      version = ">= 1.24.3, < 3.0.0"
    }
    moodle = {
      source  = "mohd-dev/moodle"
      version = "~> 0.1"
    }
  }
}
