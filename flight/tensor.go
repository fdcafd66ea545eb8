package flight

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// tensorExtensionName is Arrow's canonical extension for a column of
// equally shaped tensors; pyarrow maps it to pyarrow.FixedShapeTensorType.
const tensorExtensionName = "arrow.fixed_shape_tensor"

// tensorType is arrow.fixed_shape_tensor: storage FixedSizeList<value>[prod(shape)],
// row-major. arrow-go v18 has no implementation of its own, and writing it
// needs no registration: the IPC writer takes the name and metadata from
// the type itself.
type tensorType struct {
	arrow.ExtensionBase `json:"-"`

	Shape    []int64  `json:"shape"`
	DimNames []string `json:"dim_names,omitempty"`
}

func newTensorType(value arrow.DataType, shape []int64, dimNames []string) (*tensorType, error) {
	n := int64(1)
	for _, s := range shape {
		if s <= 0 {
			return nil, fmt.Errorf("tensor shape %v: non-positive extent", shape)
		}
		n *= s
		if n > 1<<31-1 {
			return nil, fmt.Errorf("tensor shape %v: more than 2^31-1 elements per sample", shape)
		}
	}
	if dimNames != nil && len(dimNames) != len(shape) {
		return nil, fmt.Errorf("tensor shape %v: %d dim names", shape, len(dimNames))
	}
	return &tensorType{
		ExtensionBase: arrow.ExtensionBase{Storage: arrow.FixedSizeListOfNonNullable(int32(n), value)},
		Shape:         slices.Clone(shape),
		DimNames:      slices.Clone(dimNames),
	}, nil
}

func (*tensorType) ArrayType() reflect.Type { return reflect.TypeOf(tensorArray{}) }

func (*tensorType) ExtensionName() string { return tensorExtensionName }

func (t *tensorType) String() string {
	return fmt.Sprintf("extension<%s[value=%s, shape=%v]>", tensorExtensionName, t.valueType(), t.Shape)
}

func (t *tensorType) Serialize() string {
	data, _ := json.Marshal(t)
	return string(data)
}

func (*tensorType) Deserialize(storage arrow.DataType, data string) (arrow.ExtensionType, error) {
	var meta tensorType
	if err := json.Unmarshal([]byte(data), &meta); err != nil {
		return nil, fmt.Errorf("%s metadata %q: %w", tensorExtensionName, data, err)
	}
	list, ok := storage.(*arrow.FixedSizeListType)
	if !ok {
		return nil, fmt.Errorf("%s: storage %s is not a fixed-size list", tensorExtensionName, storage)
	}
	t, err := newTensorType(list.Elem(), meta.Shape, meta.DimNames)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tensorExtensionName, err)
	}
	if t.Storage.(*arrow.FixedSizeListType).Len() != list.Len() {
		return nil, fmt.Errorf("%s: shape %v does not match list size %d", tensorExtensionName, meta.Shape, list.Len())
	}
	return t, nil
}

func (t *tensorType) ExtensionEquals(other arrow.ExtensionType) bool {
	o, ok := other.(*tensorType)
	return ok && arrow.TypeEqual(t.Storage, o.Storage) && slices.Equal(t.Shape, o.Shape) && slices.Equal(t.DimNames, o.DimNames)
}

func (t *tensorType) valueType() arrow.DataType {
	return t.Storage.(*arrow.FixedSizeListType).Elem()
}

type tensorArray struct {
	array.ExtensionArrayBase
}

var (
	_ arrow.ExtensionType  = (*tensorType)(nil)
	_ array.ExtensionArray = (*tensorArray)(nil)
)
