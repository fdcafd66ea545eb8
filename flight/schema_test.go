package flight

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

func TestValueType(t *testing.T) {
	tests := []struct {
		dtype     string
		want      arrow.DataType
		trueDType string
	}{
		{"float32", arrow.PrimitiveTypes.Float32, ""},
		{"float16", arrow.FixedWidthTypes.Float16, ""},
		{"bfloat16", arrow.PrimitiveTypes.Uint16, "bfloat16"},
		{"<f8", arrow.PrimitiveTypes.Float64, ""},
		{"<i2", arrow.PrimitiveTypes.Int16, ""},
		{"|u1", arrow.PrimitiveTypes.Uint8, ""},
		{"<u8", arrow.PrimitiveTypes.Uint64, ""},
		{"|b1", arrow.PrimitiveTypes.Uint8, "bool"},
		{"<M8[ns]", arrow.PrimitiveTypes.Int64, "<M8[ns]"},
		{"<m8[s]", arrow.PrimitiveTypes.Int64, "<m8[s]"},
	}
	for _, tt := range tests {
		got, trueDType, err := valueType(tt.dtype)
		if err != nil || !arrow.TypeEqual(got, tt.want) || trueDType != tt.trueDType {
			t.Errorf("valueType(%q) = %v, %q, %v; want %v, %q", tt.dtype, got, trueDType, err, tt.want, tt.trueDType)
		}
	}
	// Big-endian never reaches Flight (the cropper delivers little-endian),
	// and strings and complex numbers have no tensor form.
	for _, bad := range []string{">f4", "<U6", "|S3", "<c8", ""} {
		if _, _, err := valueType(bad); err == nil {
			t.Errorf("valueType(%q) accepted", bad)
		}
	}
}

func TestNewTensorTypeRejects(t *testing.T) {
	for _, tt := range []struct {
		shape []int64
		dims  []string
	}{
		{[]int64{0, 3}, nil},
		{[]int64{-1}, nil},
		{[]int64{1 << 16, 1 << 16}, nil},
		{[]int64{2, 3}, []string{"a"}},
	} {
		if _, err := newTensorType(arrow.PrimitiveTypes.Float32, tt.shape, tt.dims); err == nil {
			t.Errorf("newTensorType(%v, %v) accepted", tt.shape, tt.dims)
		}
	}
}
