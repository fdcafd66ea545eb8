package flight

import (
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/lsio-loader/lsio-loader/sampler"
)

// Column and metadata names of the record batches, shared with the Python
// client (python/lsio_loader/_schema.py).
const (
	colEpochIndex = "epoch_index"
	colT0         = "t0"
	colX          = "x"
	colY          = "y"
	colLat        = "lat"
	colLon        = "lon"
	suffixIsel    = ".isel"
	suffixTime    = ".time"
	// metaDType marks a column whose Arrow value type only carries the bits:
	// bfloat16 in uint16, bool in uint8, datetime64/timedelta64 in int64.
	metaDType   = "lsio.dtype"
	metaSources = "lsio.sources"
	metaRequest = "lsio.request"
)

// maxBatchBytes bounds a record batch's tensors: a gRPC message holds less
// than 2 GiB, and the provenance columns need a little room.
const maxBatchBytes = 2<<30 - 64<<20

// axisNames name the output axes of a georeferenced source in dim_names
// where the source has no own dim on that axis.
var axisNames = [4]string{"T", "C", "H", "W"}

// sourceMeta describes one source in the schema metadata, so that a client
// can map provenance back to the stores without the spec.
type sourceMeta struct {
	Name     string   `json:"name"`
	Store    string   `json:"store"`
	Array    string   `json:"array"`
	Dims     []string `json:"dims"`
	Axes     []string `json:"axes,omitempty"` // own dim on T, C, H, W, or ""; absent for generic sources
	Size     []int64  `json:"size"`
	OutShape []int64  `json:"out_shape"`
	DType    string   `json:"dtype"`
}

// valueType maps a cropper dtype (an output dtype name, or with Raw the
// stored NumPy type string, little-endian) to the Arrow type holding its
// bits, and names the true dtype where Arrow has no exact equivalent.
func valueType(dtype string) (arrow.DataType, string, error) {
	switch dtype {
	case "float32", "<f4":
		return arrow.PrimitiveTypes.Float32, "", nil
	case "float16", "<f2":
		return arrow.FixedWidthTypes.Float16, "", nil
	case "bfloat16":
		return arrow.PrimitiveTypes.Uint16, "bfloat16", nil
	case "float64", "<f8":
		return arrow.PrimitiveTypes.Float64, "", nil
	case "|i1":
		return arrow.PrimitiveTypes.Int8, "", nil
	case "<i2":
		return arrow.PrimitiveTypes.Int16, "", nil
	case "<i4":
		return arrow.PrimitiveTypes.Int32, "", nil
	case "<i8":
		return arrow.PrimitiveTypes.Int64, "", nil
	case "|u1":
		return arrow.PrimitiveTypes.Uint8, "", nil
	case "<u2":
		return arrow.PrimitiveTypes.Uint16, "", nil
	case "<u4":
		return arrow.PrimitiveTypes.Uint32, "", nil
	case "<u8":
		return arrow.PrimitiveTypes.Uint64, "", nil
	case "|b1":
		// Arrow booleans are bit-packed; uint8 keeps the crop zero-copy.
		return arrow.PrimitiveTypes.Uint8, "bool", nil
	}
	if len(dtype) > 3 && (dtype[:3] == "<M8" || dtype[:3] == "<m8") {
		return arrow.PrimitiveTypes.Int64, dtype, nil
	}
	return nil, "", fmt.Errorf("dtype %q cannot be sent over Flight", dtype)
}

// sourceDType is the dtype the cropper delivers for src.
func sourceDType(plan *sampler.Plan, src *sampler.Source, raw bool) string {
	if raw {
		return src.Array.DType.LittleEndian().String()
	}
	return plan.OutputDType
}

// tensorDimNames names the output axes: the source's own dims where it has
// one on the axis.
func tensorDimNames(src *sampler.Source) []string {
	if src.Axes == nil {
		return src.Dims
	}
	names := make([]string, len(src.OutShape))
	for k := range names {
		names[k] = axisNames[k]
		if k < len(src.Axes) && src.Axes[k] >= 0 {
			names[k] = src.Dims[src.Axes[k]]
		}
	}
	return names
}

// hasTimeLabels says whether src gets a "<name>.time" column: georeferenced
// sources with a time axis.
func hasTimeLabels(src *sampler.Source) bool {
	return src.Axes != nil && src.Axes[sampler.AxisT] >= 0
}

// buildSchema is the schema of every record batch served for req.
func buildSchema(plan *sampler.Plan, req *Request) (*arrow.Schema, error) {
	fields := []arrow.Field{
		{Name: colEpochIndex, Type: arrow.PrimitiveTypes.Int64},
		{Name: colT0, Type: arrow.FixedWidthTypes.Timestamp_ns, Nullable: true},
		{Name: colX, Type: arrow.PrimitiveTypes.Float64},
		{Name: colY, Type: arrow.PrimitiveTypes.Float64},
		{Name: colLat, Type: arrow.PrimitiveTypes.Float64},
		{Name: colLon, Type: arrow.PrimitiveTypes.Float64},
	}
	metas := make([]sourceMeta, len(plan.Sources))
	var batchBytes int64
	for i := range plan.Sources {
		src := &plan.Sources[i]
		dtype := sourceDType(plan, src, req.Raw)
		value, trueDType, err := valueType(dtype)
		if err != nil {
			return nil, requestError{fmt.Errorf("source %q (%s, array %q): %w", src.Name, src.StoreURL, src.ArrayPath, err)}
		}
		tt, err := newTensorType(value, src.OutShape, tensorDimNames(src))
		if err != nil {
			return nil, requestError{fmt.Errorf("source %q: %w", src.Name, err)}
		}
		batchBytes += int64(tt.Storage.(*arrow.FixedSizeListType).Len()) * int64(elementSize(value)) * int64(plan.BatchSize)
		f := arrow.Field{Name: src.Name, Type: tt}
		if trueDType != "" {
			f.Metadata = arrow.NewMetadata([]string{metaDType}, []string{trueDType})
		}
		fields = append(fields, f)
		fields = append(fields, arrow.Field{Name: src.Name + suffixIsel, Type: arrow.FixedSizeListOfNonNullable(int32(2*len(src.Dims)), arrow.PrimitiveTypes.Int64)})
		if hasTimeLabels(src) {
			fields = append(fields, arrow.Field{Name: src.Name + suffixTime, Type: arrow.FixedSizeListOfNonNullable(int32(src.OutShape[0]), arrow.FixedWidthTypes.Timestamp_ns)})
		}
		metas[i] = sourceMeta{Name: src.Name, Store: src.StoreURL, Array: src.ArrayPath, Dims: src.Dims, Size: src.Size, OutShape: src.OutShape, DType: dtype}
		if src.Axes != nil {
			metas[i].Axes = make([]string, 4)
			for k, d := range src.Axes {
				if d >= 0 {
					metas[i].Axes[k] = src.Dims[d]
				}
			}
		}
	}
	if batchBytes > maxBatchBytes {
		return nil, requestError{fmt.Errorf("batch_size %d: a batch would be %d MB, more than the %d MB a Flight message can carry; use a smaller batch_size",
			plan.BatchSize, batchBytes>>20, maxBatchBytes>>20)}
	}
	sources, err := json.Marshal(metas)
	if err != nil {
		return nil, fmt.Errorf("schema metadata: %w", err)
	}
	request, err := json.Marshal(map[string]any{"split": req.Split, "epoch": req.Epoch, "rank": req.Rank, "world_size": req.WorldSize, "raw": req.Raw, "batch_size": plan.BatchSize})
	if err != nil {
		return nil, fmt.Errorf("schema metadata: %w", err)
	}
	md := arrow.NewMetadata([]string{metaSources, metaRequest}, []string{string(sources), string(request)})
	return arrow.NewSchema(fields, &md), nil
}

// elementSize is the byte width of t's values.
func elementSize(t arrow.DataType) int {
	return t.(arrow.FixedWidthDataType).BitWidth() / 8
}
