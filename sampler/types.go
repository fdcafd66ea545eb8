package sampler

import "github.com/lsio-loader/lsio-loader/zarr"

// NaT marks a sample without a time: generic sources only.
const NaT int64 = -1 << 63

// Axis names one of the four output axes of a georeferenced source.
type Axis int

// The output axes of a georeferenced source, in output order.
const (
	AxisT Axis = iota
	AxisC
	AxisH
	AxisW
)

// Source is one validated source of an experiment: everything the cropper
// needs to cut, convert and normalise its windows.
type Source struct {
	Name      string
	StoreURL  string // as resolved from the spec (absolute path or URL)
	ArrayPath string
	Array     *zarr.Array
	Dims      []string // the array's own dims, in storage order
	// Size is the window length along each own dim.
	Size []int64
	// Axes gives, for T, C, H and W, the own dim on that output axis, or -1
	// where the source has none. Nil for a generic source, whose output is its
	// window in storage order. Own dims not on any axis have Size 1 and are
	// squeezed out (an NWP source's init_time).
	Axes []int
	// TStride is the step along the T axis's own dim between output time
	// steps: 1, or more when the spec's time resolution is a multiple of
	// the data's spacing (Size along that dim then spans
	// (T−1)·TStride+1 steps). 1 for generic sources.
	TStride int64
	// Periodic marks own dims whose indices wrap modulo their length (a
	// longitude covering 360°): there a window starts inside the array but
	// may run past its end, continuing at its start. Nil when none does.
	Periodic []bool
	// Channels selects, in output order, indices along the C axis relative to
	// the window start there. Nil keeps the whole window.
	Channels []int64
	// OutShape is one sample's output shape: (T, C, H, W), or the window
	// shape for a generic source.
	OutShape []int64
	// Per output channel; nil when the spec gives no normalisation.
	Mean, Std []float32
	// Clip bounds after normalisation; ±Inf when unset.
	ClipMin, ClipMax float32
	// NaNFill replaces NaN (and points outside the array when padding) in the
	// processed output.
	NaNFill float32
	// DecodeCF: the stored values are CF-decoded (spec decode_cf, default
	// true).
	DecodeCF bool
}

// Window is one sample's cut of one source: [Start[d], Start[d]+Size[d])
// along each own dim d. It may reach outside the array only when the spec
// asks for padding; the cropper fills what lies outside.
type Window struct {
	Start []int64
	// AvailableT is how many leading steps of the T axis are available; steps
	// from AvailableT on were dropped out (dropout/delay) and are filled.
	// Equal to the T size when nothing is dropped.
	AvailableT int64
}

// Sample is one training example.
type Sample struct {
	Epoch int64
	Index int64 // position in the epoch, 0 <= Index < Plan.EpochLen
	T0    int64 // ns since the Unix epoch, or NaT
	// Location in the spec's common CRS (x, y), and as WGS84 lat/lon; NaN when
	// the experiment has no location.
	X, Y, Lat, Lon float64
	Windows        []Window // one per source, in Plan.Sources order
}
