// Command mohd-mirror writes a Terraform filesystem mirror and the CLI configuration that uses it.
//
//	mohd-mirror DIR NAMESPACE/TYPE=VERSION=BINARY...
//
// It prints the CLI configuration's path, for TF_CLI_CONFIG_FILE.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/mohd-dev/mohd/internal/tfmirror"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: mohd-mirror DIR NAMESPACE/TYPE=VERSION=BINARY...")
		os.Exit(2)
	}
	var providers []tfmirror.Provider
	for _, arg := range os.Args[2:] {
		parts := strings.Split(arg, "=")
		ns, typ, ok := strings.Cut(parts[0], "/")
		if len(parts) != 3 || !ok {
			fmt.Fprintf(os.Stderr, "mohd-mirror: %q is not NAMESPACE/TYPE=VERSION=BINARY\n", arg)
			os.Exit(2)
		}
		providers = append(providers, tfmirror.Provider{Namespace: ns, Type: typ, Version: parts[1], Binary: parts[2]})
	}
	cfg, err := tfmirror.Write(os.Args[1], providers...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mohd-mirror:", err)
		os.Exit(1)
	}
	fmt.Println(cfg)
}
