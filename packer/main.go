// Command packer-plugin-moodle is MOHD's Packer plugin. Its provisioner `moodle-role` bakes the images of
// MOHD's roles (haproxy, web, db, nfs, redis, monitoring).
//
//	go build -o bin/packer-plugin-moodle ./packer
//	packer plugins install --path bin/packer-plugin-moodle github.com/mohd-dev/moodle
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/mohd-dev/mohd/packer/provisioner/role"
	"github.com/mohd-dev/mohd/packer/version"
)

func main() {
	pps := plugin.NewSet()
	// Packer names a plugin's components <plugin>-<name>: this is the `moodle-role` provisioner.
	pps.RegisterProvisioner("role", new(role.Provisioner))
	pps.SetVersion(version.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}
