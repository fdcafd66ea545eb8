// Command loader is lsio-loader's one binary: it serves random crops of Zarr
// datasets over Arrow Flight and offers the tools around that service.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand: its name, a one-line summary and its body,
// which gets the arguments after the name.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "serve experiment specs over Arrow Flight", runServe},
		{"read", "read a region of an array into an .npy file", runRead},
		{"inspect", "describe a store's variables, like xarray's repr", runInspect},
		{"sample", "write N samples of an experiment to an .npz file", runSample},
		{"stats", "stream summary statistics of a store or spec", runStats},
		{"bench", "run the benchmark workloads", runBench},
		{"demo", "write the built-in sample dataset", runDemo},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: loader COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
}

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands() {
		if c.name != os.Args[1] {
			continue
		}
		err := c.run(ctx, os.Args[2:], os.Stdout)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "loader %s: %v\n", c.name, err)
			os.Exit(1)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "loader: unknown command %q\n\n", os.Args[1])
	usage(os.Stderr)
	os.Exit(2)
}
