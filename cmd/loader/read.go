package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

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
	flags := flag.NewFlagSet("read", flag.ContinueOnError)
	var isel iselFlag
	flags.Var(&isel, "isel", "DIM=START:STOP (Python slice bounds, negatives from the end; DIM=I is I:I+1); repeatable")
	decode := flags.Bool("decode", false, "apply CF decoding: scale_factor/add_offset/_FillValue to float64 with NaN, CF time to datetime64[ns]")
	out := flags.String("o", "", "output .npy file (- for stdout)")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: loader read STORE ARRAY [--isel DIM=START:STOP]... [--decode] -o OUT.npy")
		flags.PrintDefaults()
	}
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
	if err != nil {
		return err
	}
	start, shape, err := parseIsel(a, isel)
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
		if dtype, data, err = decodeCF(a, raw); err != nil {
			return err
		}
	}
	return writeNPYFile(*out, stdout, dtype, shape, data)
}

// openToolStore opens the store a command line names (a path, file://,
// s3:// or https:// URL) and returns how to close it.
func openToolStore(ctx context.Context, url string) (zarr.Store, func(), error) {
	st, err := store.Open(ctx, url, store.Options{})
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

// parseIsel turns DIM=START:STOP selections into a region of a.
func parseIsel(a *zarr.Array, isel []string) (start, shape []int64, err error) {
	start = make([]int64, len(a.Shape))
	shape = append([]int64(nil), a.Shape...)
	seen := map[int]bool{}
	for _, sel := range isel {
		dim, bounds, ok := strings.Cut(sel, "=")
		if !ok {
			return nil, nil, fmt.Errorf("%s: --isel %q: want DIM=START:STOP", a, sel)
		}
		d := -1
		for i, name := range a.Dims {
			if name == dim {
				d = i
			}
		}
		if d < 0 {
			return nil, nil, fmt.Errorf("%s: --isel %q: no dimension %q (dims %v)", a, sel, dim, a.Dims)
		}
		if seen[d] {
			return nil, nil, fmt.Errorf("%s: --isel %q: dimension %q selected twice", a, sel, dim)
		}
		seen[d] = true
		lo, hi, err := parseSlice(bounds, a.Shape[d])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: --isel %q: dimension %q of size %d: %w", a, sel, dim, a.Shape[d], err)
		}
		start[d], shape[d] = lo, hi-lo
	}
	return start, shape, nil
}

// parseSlice resolves "START:STOP", "START:", ":STOP" or "I" against a
// dimension of size n with Python's rules for negative bounds; out-of-range
// bounds are errors rather than clipped, so that typos do not go unseen.
func parseSlice(s string, n int64) (lo, hi int64, err error) {
	resolve := func(v string, def int64) (int64, error) {
		if v == "" {
			return def, nil
		}
		i, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bound %q is not an integer", v)
		}
		if i < 0 {
			i += n
		}
		if i < 0 || i > n {
			return 0, fmt.Errorf("bound %s outside 0..%d", v, n)
		}
		return i, nil
	}
	loStr, hiStr, isRange := strings.Cut(s, ":")
	if lo, err = resolve(loStr, 0); err != nil {
		return 0, 0, err
	}
	if !isRange {
		if loStr == "" || lo == n {
			return 0, 0, fmt.Errorf("index %q outside 0..%d", s, n-1)
		}
		return lo, lo + 1, nil
	}
	if hi, err = resolve(hiStr, n); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("stop %d before start %d", hi, lo)
	}
	return lo, hi, nil
}

// decodeCF decodes raw (little-endian elements of a) the way xarray's
// decode_cf does: CF times (datetime64 or "<unit> since <date>" units)
// become datetime64[ns], timedeltas (timedelta64, or time units with the
// dtype attribute xarray writes) become timedelta64[ns], and numbers with a
// packing (scale_factor, add_offset, _FillValue, missing_value or a v2
// fill_value) become float64 with NaN. Other arrays are left as stored.
func decodeCF(a *zarr.Array, raw []byte) (string, []byte, error) {
	units, _ := a.Attrs["units"].(string)
	encDType, _ := a.Attrs["dtype"].(string)
	dt := a.DType.LittleEndian()
	switch {
	case dt.Kind == zarr.KindDatetime || dt.Kind == zarr.KindTimedelta:
		ns, err := (zarr.Coord{Name: a.Name, DType: dt, Attrs: a.Attrs, Data: raw}).Times()
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", a, err)
		}
		if dt.Kind == zarr.KindTimedelta {
			return "<m8[ns]", int64sBytes(ns), nil
		}
		return "<M8[ns]", int64sBytes(ns), nil
	case strings.Contains(units, " since "):
		ns, err := decodeCFTimes(a, raw, units)
		if err != nil {
			return "", nil, err
		}
		return "<M8[ns]", int64sBytes(ns), nil
	case strings.HasPrefix(encDType, "timedelta64") && isNumeric(dt):
		ns, err := decodeCFDurations(a, raw, units)
		if err != nil {
			return "", nil, err
		}
		return "<m8[ns]", int64sBytes(ns), nil
	}
	if !isNumeric(dt) {
		return dt.String(), raw, nil
	}
	p, err := a.CFPacking()
	if err != nil {
		return "", nil, err
	}
	if p.Scale == 1 && p.Offset == 0 && len(p.Fill) == 0 {
		return dt.String(), raw, nil
	}
	vals, err := zarr.DecodeCF(a, raw)
	if err != nil {
		return "", nil, err
	}
	out := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(v))
	}
	return "<f8", out, nil
}

func isNumeric(dt zarr.DType) bool {
	return dt.Kind == zarr.KindInt || dt.Kind == zarr.KindUint || dt.Kind == zarr.KindFloat
}

// decodeCFTimes decodes numbers with "<unit> since <date>" units into ns
// since the epoch; integers without packing convert exactly.
func decodeCFTimes(a *zarr.Array, raw []byte, units string) ([]int64, error) {
	calendar, _ := a.Attrs["calendar"].(string)
	ct, err := zarr.ParseCFTime(units, calendar)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a, err)
	}
	vals, exact, err := cfNumbers(a, raw)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(vals))
	for i, v := range vals {
		if exact != nil && !math.IsNaN(v) {
			out[i], err = ct.IntToNS(exact[i])
		} else {
			out[i], err = ct.ToNS(v)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: element %d: %w", a, i, err)
		}
	}
	return out, nil
}

// decodeCFDurations decodes numbers with time units ("hours") into ns.
func decodeCFDurations(a *zarr.Array, raw []byte, units string) ([]int64, error) {
	unit, err := zarr.ParseCFTime(units+" since 1970-01-01", "")
	if err != nil {
		return nil, fmt.Errorf("%s: timedelta units: %w", a, err)
	}
	vals, exact, err := cfNumbers(a, raw)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(vals))
	for i, v := range vals {
		switch {
		case math.IsNaN(v):
			out[i] = zarr.NaT
		case exact != nil:
			if exact[i] > math.MaxInt64/unit.UnitNS || exact[i] < math.MinInt64/unit.UnitNS {
				return nil, fmt.Errorf("%s: element %d: %d %s overflows int64 ns", a, i, exact[i], units)
			}
			out[i] = exact[i] * unit.UnitNS
		default:
			ns := math.Round(v * float64(unit.UnitNS))
			if math.Abs(ns) >= 1<<63 {
				return nil, fmt.Errorf("%s: element %d: %v %s overflows int64 ns", a, i, v, units)
			}
			out[i] = int64(ns)
		}
	}
	return out, nil
}

// cfNumbers returns the CF-decoded values (fill values as NaN) and, for
// unpacked integers, the exact stored integers too.
func cfNumbers(a *zarr.Array, raw []byte) ([]float64, []int64, error) {
	p, err := a.CFPacking()
	if err != nil {
		return nil, nil, err
	}
	vals, err := zarr.DecodeCF(a, raw)
	if err != nil {
		return nil, nil, err
	}
	dt := a.DType.LittleEndian()
	if (dt.Kind != zarr.KindInt && dt.Kind != zarr.KindUint) || p.Scale != 1 || p.Offset != 0 {
		return vals, nil, nil
	}
	ints := make([]int64, len(vals))
	for i := range ints {
		b := raw[i*dt.Size:]
		switch {
		case dt.Size == 1 && dt.Kind == zarr.KindInt:
			ints[i] = int64(int8(b[0]))
		case dt.Size == 1:
			ints[i] = int64(b[0])
		case dt.Size == 2 && dt.Kind == zarr.KindInt:
			ints[i] = int64(int16(binary.LittleEndian.Uint16(b)))
		case dt.Size == 2:
			ints[i] = int64(binary.LittleEndian.Uint16(b))
		case dt.Size == 4 && dt.Kind == zarr.KindInt:
			ints[i] = int64(int32(binary.LittleEndian.Uint32(b)))
		case dt.Size == 4:
			ints[i] = int64(binary.LittleEndian.Uint32(b))
		default:
			ints[i] = int64(binary.LittleEndian.Uint64(b))
		}
	}
	return vals, ints, nil
}

func int64sBytes(v []int64) []byte {
	out := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(out[8*i:], uint64(x))
	}
	return out
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
