// Package npy writes NumPy .npy and .npz files byte-identical to what numpy
// saves, so that the command line tools hand arrays to Python unchanged.
package npy

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// npyAlign is the header alignment numpy uses, so that memory-mapped data
// starts on a cache line.
const npyAlign = 64

// npyGrowthDigits is the room numpy leaves in the header for the first
// dimension to grow in place; matching it makes our files byte-identical to
// numpy.save's.
const npyGrowthDigits = 21

// Write writes one array in the NPY format as numpy.save does: dtype is a
// numpy descr ("<f4", "|b1", "<M8[ns]", "<U6"), data holds the values in C
// order in that dtype's byte order. The length of data must match dtype and
// shape.
func Write(w io.Writer, dtype string, shape []int64, data []byte) error {
	header, err := npyHeader(dtype, shape, int64(len(data)))
	if err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return fmt.Errorf("npy: writing header: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("npy: writing %d data bytes: %w", len(data), err)
	}
	return nil
}

// npyHeader builds the magic, version, length and padded dict of an NPY file.
func npyHeader(dtype string, shape []int64, dataLen int64) ([]byte, error) {
	itemSize, err := npyItemSize(dtype)
	if err != nil {
		return nil, err
	}
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("npy: negative dimension in shape %v", shape)
		}
		if d > 0 && n > math.MaxInt64/itemSize/d {
			return nil, fmt.Errorf("npy: shape %v of %s overflows int64 bytes", shape, dtype)
		}
		n *= d
	}
	if n*itemSize != dataLen {
		return nil, fmt.Errorf("npy: %d data bytes for dtype %s and shape %v, want %d", dataLen, dtype, shape, n*itemSize)
	}
	var dict strings.Builder
	dict.WriteString("{'descr': '")
	dict.WriteString(dtype)
	dict.WriteString("', 'fortran_order': False, 'shape': (")
	for i, d := range shape {
		if i > 0 {
			dict.WriteString(", ")
		}
		dict.WriteString(strconv.FormatInt(d, 10))
	}
	if len(shape) == 1 {
		dict.WriteString(",")
	}
	dict.WriteString("), }")
	if len(shape) > 0 {
		dict.WriteString(strings.Repeat(" ", max(0, npyGrowthDigits-len(strconv.FormatInt(shape[0], 10)))))
	}
	body := dict.String()
	for _, version := range []byte{1, 2} {
		lenSize := 2
		if version == 2 {
			lenSize = 4
		}
		prefix := 6 + 2 + lenSize
		hlen := len(body) + 1
		pad := npyAlign - (prefix+hlen)%npyAlign
		if pad == npyAlign {
			pad = 0
		}
		total := hlen + pad
		if version == 1 && total > 0xffff {
			continue
		}
		out := make([]byte, 0, prefix+total)
		out = append(out, "\x93NUMPY"...)
		out = append(out, version, 0)
		if version == 1 {
			out = binary.LittleEndian.AppendUint16(out, uint16(total))
		} else {
			out = binary.LittleEndian.AppendUint32(out, uint32(total))
		}
		out = append(out, body...)
		out = append(out, strings.Repeat(" ", pad)...)
		out = append(out, '\n')
		return out, nil
	}
	return nil, fmt.Errorf("npy: header of %d bytes is too long", len(body))
}

// npyItemSize returns the bytes per element of a numpy descr such as "<f4",
// "|b1", "<M8[ns]" or "<U6".
func npyItemSize(descr string) (int64, error) {
	if len(descr) < 3 || !strings.ContainsRune("<>|=", rune(descr[0])) {
		return 0, fmt.Errorf("npy: unsupported dtype %q", descr)
	}
	kind, rest := descr[1], descr[2:]
	switch kind {
	case 'M', 'm':
		unit, ok := strings.CutPrefix(rest, "8")
		if ok && (unit == "" || len(unit) > 2 && unit[0] == '[' && unit[len(unit)-1] == ']' && isAlnum(unit[1:len(unit)-1])) {
			return 8, nil
		}
	case 'b', 'i', 'u', 'f', 'c', 'U', 'S', 'V':
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || n <= 0 {
			break
		}
		if kind == 'U' {
			n *= 4
		}
		return n, nil
	}
	return 0, fmt.Errorf("npy: unsupported dtype %q", descr)
}

func isAlnum(s string) bool {
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// NPZ writes a .npz file as numpy.savez does: a zip of uncompressed .npy
// members, one per array.
type NPZ struct {
	zw    *zip.Writer
	names map[string]bool
}

// NewNPZ starts an .npz file on w; Close finishes it.
func NewNPZ(w io.Writer) *NPZ {
	return &NPZ{zw: zip.NewWriter(w), names: map[string]bool{}}
}

// Add writes the array name (stored as name.npy, loaded back as name) with
// the dtype, shape and C-order data of Write.
func (z *NPZ) Add(name, dtype string, shape []int64, data []byte) error {
	if name == "" || z.names[name] {
		return fmt.Errorf("npz: empty or duplicate member name %q", name)
	}
	header, err := npyHeader(dtype, shape, int64(len(data)))
	if err != nil {
		return fmt.Errorf("npz member %s: %w", name, err)
	}
	fw, err := z.zw.CreateHeader(&zip.FileHeader{Name: name + ".npy", Method: zip.Store})
	if err != nil {
		return fmt.Errorf("npz member %s: %w", name, err)
	}
	if _, err := fw.Write(header); err != nil {
		return fmt.Errorf("npz member %s: %w", name, err)
	}
	if _, err := fw.Write(data); err != nil {
		return fmt.Errorf("npz member %s: %w", name, err)
	}
	z.names[name] = true
	return nil
}

// Close writes the zip directory. It does not close the underlying writer.
func (z *NPZ) Close() error {
	if err := z.zw.Close(); err != nil {
		return fmt.Errorf("npz: %w", err)
	}
	return nil
}
