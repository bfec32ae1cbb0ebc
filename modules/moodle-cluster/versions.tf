terraform {
  # 1.5.7: the last MPL release of Terraform (and OpenTofu's base); check blocks need 1.5.
  required_version = ">= 1.5.7"

  required_providers {
    moodle = {
      source  = "mohd-dev/moodle"
      version = "~> 0.1"
    }
  }
}
