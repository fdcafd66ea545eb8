package flight

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/lsio-loader/lsio-loader/cropper"
	"github.com/lsio-loader/lsio-loader/sampler"
)

// recordBuilder lays record batches over cropper batches. The provenance
// columns are allocated afresh for each record (they are small): the
// transport may still be reading the previous one's.
type recordBuilder struct {
	plan   *sampler.Plan
	schema *arrow.Schema
	// per field of schema: the tensor type, or nil for other columns.
	tensors []*tensorType
	cols    []arrow.Array
}

func newRecordBuilder(plan *sampler.Plan, schema *arrow.Schema) *recordBuilder {
	rb := &recordBuilder{plan: plan, schema: schema}
	for _, f := range schema.Fields() {
		tt, _ := f.Type.(*tensorType)
		rb.tensors = append(rb.tensors, tt)
	}
	return rb
}

// build returns the record for b. Its tensor columns alias b.Data, so b must
// not be reused until the record has been written.
func (rb *recordBuilder) build(b *cropper.Batch) (arrow.RecordBatch, error) {
	n := len(b.Samples)
	if len(b.Data) != len(rb.plan.Sources) {
		return nil, fmt.Errorf("cropper returned %d source buffers for %d sources", len(b.Data), len(rb.plan.Sources))
	}
	index, t0 := make([]int64, n), make([]int64, n)
	x, y, lat, lon := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	t0Valid := make([]byte, bitutil.BytesForBits(int64(n)))
	nulls := 0
	for i := range b.Samples {
		s := &b.Samples[i]
		index[i], t0[i] = s.Index, s.T0
		x[i], y[i], lat[i], lon[i] = s.X, s.Y, s.Lat, s.Lon
		if s.T0 == sampler.NaT {
			t0[i] = 0
			nulls++
		} else {
			bitutil.SetBit(t0Valid, i)
		}
	}
	rb.cols = rb.cols[:0]
	defer func() {
		for _, c := range rb.cols {
			c.Release()
		}
	}()
	var t0Bitmap *memory.Buffer
	if nulls > 0 {
		t0Bitmap = memory.NewBufferBytes(t0Valid)
	}
	rb.cols = append(rb.cols,
		primitive(arrow.PrimitiveTypes.Int64, n, nil, arrow.Int64Traits.CastToBytes(index), 0),
		primitive(arrow.FixedWidthTypes.Timestamp_ns, n, t0Bitmap, arrow.Int64Traits.CastToBytes(t0), nulls),
		primitive(arrow.PrimitiveTypes.Float64, n, nil, arrow.Float64Traits.CastToBytes(x), 0),
		primitive(arrow.PrimitiveTypes.Float64, n, nil, arrow.Float64Traits.CastToBytes(y), 0),
		primitive(arrow.PrimitiveTypes.Float64, n, nil, arrow.Float64Traits.CastToBytes(lat), 0),
		primitive(arrow.PrimitiveTypes.Float64, n, nil, arrow.Float64Traits.CastToBytes(lon), 0),
	)
	for si := range rb.plan.Sources {
		src := &rb.plan.Sources[si]
		tt := rb.tensors[len(rb.cols)]
		perSample := int(tt.Storage.(*arrow.FixedSizeListType).Len())
		value := tt.valueType()
		want := n * perSample * elementSize(value)
		if len(b.Data[si]) < want {
			return nil, fmt.Errorf("source %q: cropper delivered %d bytes for %d samples of %v %s (%d bytes)", src.Name, len(b.Data[si]), n, src.OutShape, value, want)
		}
		if si < len(b.DTypes) {
			if v, _, err := valueType(b.DTypes[si]); err != nil || !arrow.TypeEqual(v, value) {
				return nil, fmt.Errorf("source %q: cropper delivered dtype %q, schema has %s", src.Name, b.DTypes[si], value)
			}
		}
		rb.cols = append(rb.cols, fixedList(tt, n, perSample, primitiveData(value, n*perSample, nil, b.Data[si][:want], 0)))

		nd := len(src.Dims)
		isel := make([]int64, n*2*nd)
		for i := range b.Samples {
			w := &b.Samples[i].Windows[si]
			for d := range nd {
				isel[(i*nd+d)*2] = w.Start[d]
				isel[(i*nd+d)*2+1] = w.Start[d] + src.Size[d]
			}
		}
		iselType := rb.schema.Field(len(rb.cols)).Type
		rb.cols = append(rb.cols, fixedList(iselType, n, 2*nd, primitiveData(arrow.PrimitiveTypes.Int64, n*2*nd, nil, arrow.Int64Traits.CastToBytes(isel), 0)))

		if hasTimeLabels(src) {
			steps := int(src.OutShape[0])
			times := make([]int64, n*steps)
			for i := range b.Samples {
				labels := rb.plan.TimeLabels(si, b.Samples[i].Windows[si])
				if len(labels) != steps {
					return nil, fmt.Errorf("source %q: %d time labels for a window of %d steps", src.Name, len(labels), steps)
				}
				copy(times[i*steps:], labels)
			}
			timeType := rb.schema.Field(len(rb.cols)).Type
			rb.cols = append(rb.cols, fixedList(timeType, n, steps, primitiveData(arrow.FixedWidthTypes.Timestamp_ns, n*steps, nil, arrow.Int64Traits.CastToBytes(times), 0)))
		}
	}
	return array.NewRecordBatch(rb.schema, rb.cols, int64(n)), nil
}

func primitiveData(t arrow.DataType, n int, validity *memory.Buffer, values []byte, nulls int) arrow.ArrayData {
	return array.NewData(t, n, []*memory.Buffer{validity, memory.NewBufferBytes(values)}, nil, nulls, 0)
}

func primitive(t arrow.DataType, n int, validity *memory.Buffer, values []byte, nulls int) arrow.Array {
	data := primitiveData(t, n, validity, values, nulls)
	defer data.Release()
	return array.MakeFromData(data)
}

// fixedList wraps child values as n lists of size each; for a tensor type
// the list is its storage.
func fixedList(t arrow.DataType, n, size int, child arrow.ArrayData) arrow.Array {
	defer child.Release()
	storageType := t
	tt, isTensor := t.(*tensorType)
	if isTensor {
		storageType = tt.Storage
	}
	data := array.NewData(storageType, n, []*memory.Buffer{nil}, []arrow.ArrayData{child}, 0, 0)
	defer data.Release()
	storage := array.MakeFromData(data)
	if !isTensor {
		return storage
	}
	defer storage.Release()
	return array.NewExtensionArrayWithStorage(tt, storage)
}
