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
		{"version", "print the version this binary was built from", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: loader COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'loader COMMAND -h' for a command's flags.")
}

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command args names and returns the exit status: 0 (help
// included), 1 when the command failed or its flags were wrong, 2 when
// there is no command or no such command.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && name == "help" {
			return run(ctx, []string{args[1], "-h"}, stdout, stderr)
		}
		usage(stdout)
		return 0
	case "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, args[1:], stdout)
		switch {
		case errors.Is(err, flag.ErrHelp):
			return 0
		case err != nil:
			fmt.Fprintf(stderr, "loader %s: %v\nRun 'loader %s -h' for usage.\n", c.name, err, c.name)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "loader: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}
