package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lsio-loader/lsio-loader/dataset"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// runInspect prints a store's dimensions, coordinates (with their ranges),
// data variables (with their storage layout) and attributes, in the shape
// of xarray's Dataset repr.
func runInspect(ctx context.Context, args []string, stdout io.Writer) error {
	flags := newFlagSet("inspect", args, stdout)
	flags.Usage = usageFunc(flags, "STORE", "Describe a store as xarray's Dataset repr does: dimensions, coordinates with\ntheir ranges, data variables with their storage layout, attributes.")
	pos, err := parseInterleaved(flags, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		flags.Usage()
		return fmt.Errorf("want one STORE, got %d arguments", len(pos))
	}
	st, closeStore, err := openToolStore(ctx, pos[0])
	if err != nil {
		return err
	}
	defer closeStore()
	g, err := zarr.OpenGroup(ctx, st, "")
	if err != nil {
		return err
	}
	return dataset.Describe(ctx, stdout, g)
}
