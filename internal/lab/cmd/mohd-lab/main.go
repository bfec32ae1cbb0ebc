// Command mohd-lab manages the lab outside tests: build the base image and the role images, remove leftovers.
//
//	mohd-lab base-image             build the base image if its recipe changed, print its tag
//	mohd-lab role-images [ROLE...]  bake the role images (every role of the library by default) whose recipe
//	                                changed, with Packer; print each image and how long its build took
//	mohd-lab clean                  remove every lab container and network
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"text/tabwriter"
	"time"

	"github.com/mohd-dev/mohd/internal/lab"
	"github.com/mohd-dev/mohd/internal/roles"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if len(os.Args) < 2 {
		usage()
	}
	progress := func(s string) { fmt.Fprintln(os.Stderr, "==> lab: "+s) }
	switch cmd, args := os.Args[1], os.Args[2:]; {
	case cmd == "base-image" && len(args) == 0:
		tag, err := lab.EnsureBaseImage(ctx, progress)
		exitOn(err)
		fmt.Println(tag)
	case cmd == "role-images":
		roleImages(ctx, args, progress)
	case cmd == "clean" && len(args) == 0:
		n, err := lab.CleanAll(ctx)
		exitOn(err)
		progress(fmt.Sprintf("removed %d containers and networks", n))
	default:
		usage()
	}
}

func roleImages(ctx context.Context, names []string, progress func(string)) {
	if len(names) == 0 {
		names = roles.Names()
	}
	for _, n := range names {
		_, err := roles.Get(n)
		exitOn(err)
	}
	start := time.Now()
	images, err := lab.EnsureRoleImages(ctx, lab.RoleImageOptions{Roles: names, Progress: progress, Output: os.Stderr})
	exitOn(err)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ROLE\tIMAGE\tBUILD")
	for _, img := range images {
		build := "reused"
		if img.Built {
			build = img.Duration.Round(time.Second).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", img.Role, img.Ref, build)
	}
	exitOn(w.Flush())
	progress(fmt.Sprintf("role images ready in %s", time.Since(start).Round(time.Second)))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mohd-lab base-image | role-images [ROLE...] | clean")
	os.Exit(2)
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "mohd-lab:", err)
		os.Exit(1)
	}
}
