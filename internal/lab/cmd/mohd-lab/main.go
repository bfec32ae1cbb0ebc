// Command mohd-lab manages the lab outside tests: build the base image, remove leftovers.
//
//	mohd-lab base-image   build the base image if its recipe changed, print its tag
//	mohd-lab clean        remove every lab container and network
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/mohd-dev/mohd/internal/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if len(os.Args) != 2 {
		usage()
	}
	progress := func(s string) { fmt.Fprintln(os.Stderr, "==> lab: "+s) }
	switch os.Args[1] {
	case "base-image":
		tag, err := lab.EnsureBaseImage(ctx, progress)
		exitOn(err)
		fmt.Println(tag)
	case "clean":
		n, err := lab.CleanAll(ctx)
		exitOn(err)
		progress(fmt.Sprintf("removed %d containers and networks", n))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mohd-lab base-image | clean")
	os.Exit(2)
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "mohd-lab:", err)
		os.Exit(1)
	}
}
