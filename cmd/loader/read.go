package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/lsio-loader/lsio-loader/coords"
	"github.com/lsio-loader/lsio-loader/dataset"
	"github.com/lsio-loader/lsio-loader/internal/npy"
	"github.com/lsio-loader/lsio-loader/store"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// iselFlag collects repeated --isel DIM=START:STOP selections.
type iselFlag []string

func (f *iselFlag) String() string     { return strings.Join(*f, " ") }
func (f *iselFlag) Set(v string) error { *f = append(*f, v); return nil }

// runRead writes a region of one array to an .npy file: the stored values
// with zarr semantics, or with --decode the values xarray's CF decoding
// gives.
func runRead(ctx context.Context, args []string, stdout io.Writer) error {
	flags := newFlagSet("read", args, stdout)
	var isel, sel iselFlag
	flags.Var(&isel, "isel", "DIM=START:STOP (Python slice bounds: negatives from the end, clipped to the dim; DIM=I is I:I+1); repeatable")
	flags.Var(&sel, "sel", "DIM=LABEL or DIM=LABEL:LABEL, as xarray's .sel (exact labels, slices inclusive, times in ISO form: time=2020-04-01T12:00:2020-04-01T13:00); repeatable")
	decode := flags.Bool("decode", false, "apply CF decoding: scale_factor/add_offset/_FillValue to float64 with NaN, CF time to datetime64[ns]")
	out := flags.String("o", "", "output .npy file (- for stdout)")
	flags.Usage = usageFunc(flags, "STORE ARRAY [--isel DIM=START:STOP]... [--sel DIM=LABEL[:LABEL]]... [--decode] -o OUT.npy",
		"Write a region of one array to an .npy file: the stored values as zarr-python\nreads them, or with --decode the values xarray's CF decoding gives.")
	pos, err := parseInterleaved(flags, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || *out == "" {
		flags.Usage()
		return errors.New("want STORE, ARRAY and -o OUT.npy")
	}
	storeURL, arrayPath := pos[0], pos[1]
	st, closeStore, err := openToolStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer closeStore()
	a, err := zarr.OpenArray(ctx, st, arrayPath)
	if errors.Is(err, fs.ErrNotExist) {
		if g, gerr := zarr.OpenGroup(ctx, st, ""); gerr == nil {
			return dataset.MissingArray(g, storeURL, arrayPath)
		}
	}
	if err != nil {
		return err
	}
	coordOf := func(ctx context.Context, dim string) (coords.Coord, error) {
		c, err := zarr.OpenArray(ctx, st, path.Join(path.Dir(arrayPath), dim))
		if err != nil {
			return coords.Coord{}, err
		}
		return coords.ReadArray(ctx, c)
	}
	start, shape, err := dataset.Select(ctx, a, coordOf, isel, sel)
	if err != nil {
		return err
	}
	n := int64(a.DType.Size)
	for _, s := range shape {
		n *= s
	}
	raw := make([]byte, n)
	if err := a.Read(ctx, start, shape, raw); err != nil {
		return err
	}
	dtype, data := a.DType.LittleEndian().String(), raw
	if *decode {
		if dtype, data, err = dataset.Decode(a, shape, raw); err != nil {
			return err
		}
	}
	return writeNPYFile(*out, stdout, dtype, shape, data)
}

// openToolStore opens the store a command line names (a path, file://,
// s3:// or https:// URL) and returns how to close it.
func openToolStore(ctx context.Context, url string) (zarr.Store, func(), error) {
	st, err := openStoreChecked(ctx, url, store.Options{})
	if err != nil {
		return nil, nil, err
	}
	return st, func() {
		if c, ok := st.(io.Closer); ok {
			c.Close()
		}
	}, nil
}

// parseInterleaved parses flags that may come before, between or after
// the positional arguments, which the flag package alone stops at.
func parseInterleaved(flags *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := flags.Parse(args); err != nil {
			return nil, err
		}
		args = flags.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// writeNPYFile writes the .npy to path, or to stdout for "-".
func writeNPYFile(path string, stdout io.Writer, dtype string, shape []int64, data []byte) error {
	if path == "-" {
		return npy.Write(stdout, dtype, shape, data)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = npy.Write(w, dtype, shape, data)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
