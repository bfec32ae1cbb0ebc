// Command mohd-demo runs MOHD's local demo (make demo, make demo-destroy, make bench).
//
//	mohd-demo [-provider BIN] [-version V] up       bring the demo up, or apply the running one again
//	mohd-demo [-provider BIN] [-version V] destroy  terraform destroy, then remove the hosts and the state
//	mohd-demo [-provider BIN] [-version V] bench    measure the demo cluster (see internal/demo/bench.go)
//
// MOODLE_SOURCE names a Moodle tree to deploy; without it the demo deploys MOHD's Moodle-shaped fixture.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mohd-dev/mohd/internal/demo"
)

func main() { os.Exit(run()) }

func run() int {
	provider := flag.String("provider", "bin/terraform-provider-moodle", "the provider binary to publish in the demo's mirror")
	version := flag.String("version", "0.1.0", "the provider's version")
	benchOut := flag.String("bench-template", "templates/guides/benchmark.md.tmpl", "bench: the docs template the results are written to")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: mohd-demo [-provider BIN] [-version V] [-bench-template FILE] up|destroy|bench")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := demo.Options{Provider: *provider, ProviderVersion: *version, MoodleSource: os.Getenv("MOODLE_SOURCE"), Out: os.Stdout}
	var err error
	switch flag.Arg(0) {
	case "up":
		var site *demo.Site
		if site, err = demo.Up(ctx, opts); err == nil {
			fmt.Print(site.Summary())
		}
	case "destroy":
		err = demo.Destroy(ctx, opts)
	case "bench":
		var res *demo.BenchResult
		if res, err = demo.Bench(ctx, opts, demo.BenchOptions{}); err == nil {
			fmt.Print("\n" + res.Markdown())
			if *benchOut != "" {
				if err = res.WriteTemplate(*benchOut); err == nil {
					fmt.Printf("\nwrote %s: `make generate` renders it into docs/guides/benchmark.md\n", *benchOut)
				}
			}
		}
	default:
		flag.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mohd-demo:", err)
		return 1
	}
	return 0
}
