terraform {
  required_version = ">= 1.5.7"

  required_providers {
    vsphere = {
      source = "hashicorp/vsphere"
      # Written for v2 (what sites run) in the syntax v1.24.3 shares with it (see README, "vsphere provider
      # versions"); 1.24.3 is the newest release buildable offline, and what this module's tests run.
      version = ">= 1.24.3, < 3.0.0"
    }
    moodle = {
      source  = "mohd-dev/moodle"
      version = "~> 0.1"
    }
  }
}
