// Command terraform-provider-moodle is MOHD's Terraform provider.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/mohd-dev/mohd/provider"
)

// Address is the provider's registry address.
const Address = "registry.terraform.io/mohd-dev/moodle"

// version is set by the linker (-X main.version=...) in release builds.
var version = "dev"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: Address,
		Debug:   debug,
	})
	if err != nil {
		log.Fatal(err.Error())
	}
}
