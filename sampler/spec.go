package sampler

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Spec is an experiment as an ML engineer writes it (YAML or JSON). Field
// names are the spec's keys; see examples/*.yaml.
type Spec struct {
	// Seed keys every random draw of the experiment.
	Seed      uint64 `yaml:"seed"`
	BatchSize int    `yaml:"batch_size"`
	// OutputDType is "float32" (default), "float16" or "bfloat16".
	OutputDType string `yaml:"output_dtype"`
	// Streams is how many Flight endpoints a request is split into by default.
	Streams int `yaml:"streams"`
	// SamplesPerEpoch sets the epoch length when locations are drawn
	// uniformly or every source is generic; default: the number of valid t0s
	// (1000 for generic-only experiments).
	SamplesPerEpoch int64 `yaml:"samples_per_epoch"`
	// T0Resolution is the spacing of candidate t0s; default the finest time
	// resolution of the sources.
	T0Resolution Duration `yaml:"t0_resolution"`
	// Splits maps a split name ("train", "val", ...) to the t0 periods it
	// draws from. Absent: one split "train" covering all time.
	Splits map[string][]Period `yaml:"splits"`
	// Locations says where crops are centred: uniformly over the area every
	// source covers, or at a list of sites.
	Locations LocationSpec `yaml:"locations"`
	// OutOfBounds is "resample" (default: draw again until every crop lies
	// inside its array) or "pad" (cut what exists, fill the rest).
	OutOfBounds string `yaml:"out_of_bounds"`
	// Sources are the named inputs; output order is sorted by name.
	Sources map[string]*SourceSpec `yaml:"sources"`
	// Order is the epoch order: iid (default) or blocked; see OrderSpec.
	Order OrderSpec `yaml:"order"`
	// Locality is no longer a setting: the blocked order replaces it.
	Locality removedField `yaml:"locality"`
	// OnError is "raise" (default: a sample whose chunk is corrupt or
	// unreadable fails its stream) or "skip" (the sample is logged with
	// the chunk, counted, and replaced by the next one).
	OnError string `yaml:"on_error"`
}

// Period is a closed range of t0s.
type Period struct {
	Start Time `yaml:"start"`
	End   Time `yaml:"end"`
}

// LocationSpec chooses crop centres.
type LocationSpec struct {
	// Sites is a CSV file (relative to the spec) with a header naming at
	// least lat and lon columns, optionally site_id. Empty: uniform locations.
	Sites string `yaml:"sites"`
}

// SourceSpec is one input array and how to cut it.
type SourceSpec struct {
	// Store is a path (relative to the spec file) or URL (s3://, https://).
	Store string `yaml:"store"`
	// Array is the array's path inside the store.
	Array string `yaml:"array"`
	// Dims maps the roles time, init_time, step, channel, y and x onto the
	// array's own dims. Absent: a generic source, cut by Crop per own dim.
	Dims *DimsSpec `yaml:"dims"`
	// Crop is, for a generic source, the window length per own dim; for a
	// georeferenced one, height and width in pixels.
	Crop map[string]int64 `yaml:"crop"`
	// Channels picks channels by coordinate label, in output order. Empty:
	// every channel.
	Channels []string `yaml:"channels"`
	// Coords names the spatial coordinate arrays: 1-D along y and x, or 2-D
	// auxiliary (y, x) arrays such as x_osgb/y_osgb. Default: the dims' names.
	Coords *CoordsSpec `yaml:"coords"`
	// CRS of Coords: "osgb", "latlon" or "geostationary".
	CRS string `yaml:"crs"`
	// Geostationary overrides the projection parameters otherwise read from
	// the array's attributes.
	Geostationary *GeostationarySpec `yaml:"geostationary"`
	// Time is the window relative to t0.
	Time *TimeWindowSpec `yaml:"time"`
	// Normalise is per channel, in the order of Channels.
	Normalise *NormaliseSpec `yaml:"normalise"`
	// NaNFill replaces NaN and padding in the processed output.
	NaNFill float32 `yaml:"nan_fill"`
	// DecodeCF false keeps the stored values; default true: values are
	// CF-decoded as xarray does (fill values to NaN, then scale_factor and
	// add_offset).
	DecodeCF *bool `yaml:"decode_cf"`
	// Dropout: with Probability, data is available only up to t0 + one of
	// Offsets (ocf-data-sampler's dropout_timedeltas / dropout_fraction).
	Dropout *DropoutSpec `yaml:"dropout"`
	// InitDelay is how long after its init_time an NWP run becomes usable.
	InitDelay Duration `yaml:"init_delay"`
	// MaxStaleness bounds t0 − init_time for NWP sources; 0: unbounded.
	MaxStaleness Duration `yaml:"max_staleness"`
}

// DimsSpec maps roles onto own dims.
type DimsSpec struct {
	Time     string `yaml:"time"`
	InitTime string `yaml:"init_time"`
	Step     string `yaml:"step"`
	Channel  string `yaml:"channel"`
	Y        string `yaml:"y"`
	X        string `yaml:"x"`
}

// CoordsSpec names spatial coordinate arrays.
type CoordsSpec struct {
	X string `yaml:"x"`
	Y string `yaml:"y"`
}

// GeostationarySpec holds the projection of a geostationary grid.
type GeostationarySpec struct {
	SatelliteHeight float64 `yaml:"satellite_height"` // metres above the ellipsoid
	Longitude       float64 `yaml:"longitude"`        // sub-satellite point, degrees east
	SweepAxis       string  `yaml:"sweep"`            // "y" (SEVIRI, default) or "x" (GOES)
}

// TimeWindowSpec is [t0+Start, t0+End] every Resolution.
type TimeWindowSpec struct {
	Start      Duration `yaml:"start"`
	End        Duration `yaml:"end"`
	Resolution Duration `yaml:"resolution"`
}

// NormaliseSpec is (x − mean) / std, then clip to [ClipMin, ClipMax].
type NormaliseSpec struct {
	Mean    []float64 `yaml:"mean"`
	Std     []float64 `yaml:"std"`
	ClipMin *float64  `yaml:"clip_min"`
	ClipMax *float64  `yaml:"clip_max"`
}

// DropoutSpec follows ocf-data-sampler's dropout.
type DropoutSpec struct {
	Probability float64    `yaml:"probability"`
	Offsets     []Duration `yaml:"offsets"`
}

// Duration is a Go duration string in a spec: "-30m", "1h30m", "5m".
type Duration time.Duration

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as -30m, got a %s", nodeKind(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("want a duration such as -30m or 1h: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Time is an instant in a spec: RFC 3339, or "2006-01-02T15:04" / "2006-01-02" in UTC.
type Time int64

// UnmarshalYAML parses a time string.
func (t *Time) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a time such as 2020-04-01T12:00, got a %s", nodeKind(n))
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if v, err := time.Parse(layout, n.Value); err == nil {
			*t = Time(v.UnixNano())
			return nil
		}
	}
	return fmt.Errorf("want a time such as 2020-04-01T12:00 (UTC) or RFC 3339, got %q", n.Value)
}

// maxSpecBytes keeps a hostile spec from costing more than a human-written one could.
const maxSpecBytes = 1 << 20

// ParseSpec parses a YAML or JSON spec strictly: an unknown field is an error
// naming its path. Relative store and site paths resolve against baseDir.
func ParseSpec(data []byte, baseDir string) (*Spec, error) {
	if len(data) > maxSpecBytes {
		return nil, fmt.Errorf("spec: %d bytes, more than the %d allowed", len(data), maxSpecBytes)
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("spec: want a mapping at the top level")
	}
	if err := checkFields(root.Content[0], reflect.TypeFor[Spec](), ""); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	var s Spec
	if err := root.Content[0].Decode(&s); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	if err := s.normalise(baseDir); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	return &s, nil
}

// checkFields walks n against t and reports the first key t has no field
// for, or a value whose YAML shape cannot fit, by its dotted path.
func checkFields(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind == yaml.AliasNode {
		return fmt.Errorf("%s: YAML aliases are not allowed", orTop(path))
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: want a mapping, got a %s", orTop(path), nodeKind(n))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			f, ok := fieldByTag(t, key)
			if !ok {
				return fmt.Errorf("%s: unknown field", join(path, key))
			}
			if err := checkFields(n.Content[i+1], f.Type, join(path, key)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: want a mapping, got a %s", orTop(path), nodeKind(n))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkFields(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("%s: want a list, got a %s", orTop(path), nodeKind(n))
		}
		for i, c := range n.Content {
			if err := checkFields(c, t.Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s: want a single value, got a %s", orTop(path), nodeKind(n))
		}
	}
	return nil
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "YAML node"
}

// The limits below bound what a spec can make the loader allocate.
const (
	maxBatchSize = 1 << 16
	maxStreams   = 1024
	maxSources   = 64
)

// normalise fills defaults, resolves paths and checks what can be checked
// without the data. Errors name the spec field.
func (s *Spec) normalise(baseDir string) error {
	if s.BatchSize == 0 {
		s.BatchSize = 32
	}
	if s.BatchSize < 0 || s.BatchSize > maxBatchSize {
		return fmt.Errorf("batch_size: %d is outside 1..%d", s.BatchSize, maxBatchSize)
	}
	switch s.OutputDType {
	case "":
		s.OutputDType = "float32"
	case "float32", "float16", "bfloat16":
	default:
		return fmt.Errorf("output_dtype: %q is not float32, float16 or bfloat16", s.OutputDType)
	}
	if s.Streams == 0 {
		s.Streams = 4
	}
	if s.Streams < 0 || s.Streams > maxStreams {
		return fmt.Errorf("streams: %d is outside 1..%d", s.Streams, maxStreams)
	}
	if s.SamplesPerEpoch < 0 {
		return fmt.Errorf("samples_per_epoch: %d is negative", s.SamplesPerEpoch)
	}
	if s.Locality {
		return errors.New("locality: removed; the blocked order replaces it: order: {mode: blocked, pool: 2GiB} " +
			"reuses each decoded chunk for many crops while keeping batches spread over time and space")
	}
	if err := s.Order.normalise(); err != nil {
		return err
	}
	if s.T0Resolution < 0 {
		return fmt.Errorf("t0_resolution: %v is negative", time.Duration(s.T0Resolution))
	}
	switch s.OnError {
	case "":
		s.OnError = "raise"
	case "raise", "skip":
	default:
		return fmt.Errorf("on_error: %q is not raise or skip", s.OnError)
	}
	switch s.OutOfBounds {
	case "":
		s.OutOfBounds = "resample"
	case "resample", "pad":
	default:
		return fmt.Errorf("out_of_bounds: %q is not resample or pad", s.OutOfBounds)
	}
	for name, periods := range s.Splits {
		if len(periods) == 0 {
			return fmt.Errorf("splits.%s: no periods", name)
		}
		for i, p := range periods {
			if p.End < p.Start {
				return fmt.Errorf("splits.%s[%d]: end is before start", name, i)
			}
		}
	}
	if s.Locations.Sites != "" {
		s.Locations.Sites = resolve(baseDir, s.Locations.Sites)
	}
	if len(s.Sources) == 0 {
		return errors.New("sources: none given")
	}
	if len(s.Sources) > maxSources {
		return fmt.Errorf("sources: %d given, at most %d allowed", len(s.Sources), maxSources)
	}
	for name, src := range s.Sources {
		if src == nil {
			return fmt.Errorf("sources.%s: empty", name)
		}
		if err := src.normalise(baseDir); err != nil {
			return fmt.Errorf("sources.%s.%w", name, err)
		}
	}
	return nil
}

// fieldError names the spec field (relative to its source) that is wrong.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func fieldErr(field, format string, args ...any) error {
	return &fieldError{field, fmt.Errorf(format, args...)}
}

func (src *SourceSpec) normalise(baseDir string) error {
	if src.Store == "" {
		return fieldErr("store", "missing")
	}
	src.Store = resolve(baseDir, src.Store)
	if src.Array == "" {
		return fieldErr("array", "missing")
	}
	if len(src.Crop) == 0 {
		return fieldErr("crop", "missing")
	}
	for k, v := range src.Crop {
		if v <= 0 {
			return fieldErr("crop."+k, "%d is not positive", v)
		}
	}
	if src.Dims == nil {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"channels", len(src.Channels) > 0}, {"coords", src.Coords != nil}, {"crs", src.CRS != ""},
			{"time", src.Time != nil}, {"dropout", src.Dropout != nil}, {"init_delay", src.InitDelay != 0},
			{"max_staleness", src.MaxStaleness != 0}, {"geostationary", src.Geostationary != nil},
		} {
			if f.set {
				return fieldErr(f.name, "needs dims (a generic source is cut by crop alone)")
			}
		}
		return src.checkNormalise(-1)
	}
	d := src.Dims
	for k := range src.Crop {
		if k != "height" && k != "width" {
			return fieldErr("crop."+k, "unknown field (a source with dims takes crop height and width)")
		}
	}
	if src.Crop["height"] <= 0 || src.Crop["width"] <= 0 {
		return fieldErr("crop", "needs height and width")
	}
	if d.Y == "" || d.X == "" {
		return fieldErr("dims", "needs y and x")
	}
	isNWP := d.InitTime != "" || d.Step != ""
	if isNWP && (d.InitTime == "" || d.Step == "") {
		return fieldErr("dims", "an NWP source needs both init_time and step")
	}
	if isNWP && d.Time != "" {
		return fieldErr("dims.time", "an NWP source has init_time and step instead")
	}
	hasTime := isNWP || d.Time != ""
	if hasTime != (src.Time != nil) {
		if hasTime {
			return fieldErr("time", "missing (the source has a time dim)")
		}
		return fieldErr("time", "given, but dims maps no time")
	}
	if t := src.Time; t != nil {
		if t.Resolution <= 0 {
			return fieldErr("time.resolution", "must be positive")
		}
		if t.End < t.Start {
			return fieldErr("time.end", "%v is before start %v", time.Duration(t.End), time.Duration(t.Start))
		}
		if (t.End-t.Start)%t.Resolution != 0 {
			return fieldErr("time", "end − start (%v) is not a multiple of resolution %v", time.Duration(t.End-t.Start), time.Duration(t.Resolution))
		}
		if (t.End-t.Start)/t.Resolution >= 1<<20 {
			return fieldErr("time", "more than 2^20 steps")
		}
	}
	if !isNWP && (src.InitDelay != 0 || src.MaxStaleness != 0) {
		return fieldErr("init_delay", "only NWP sources (dims init_time and step) have init_delay and max_staleness")
	}
	if src.MaxStaleness < 0 {
		return fieldErr("max_staleness", "negative")
	}
	if dr := src.Dropout; dr != nil {
		if !hasTime {
			return fieldErr("dropout", "needs a time dim")
		}
		if dr.Probability < 0 || dr.Probability > 1 || math.IsNaN(dr.Probability) {
			return fieldErr("dropout.probability", "%v is outside [0, 1]", dr.Probability)
		}
		if dr.Probability > 0 && len(dr.Offsets) == 0 {
			return fieldErr("dropout.offsets", "needed when probability > 0")
		}
	}
	switch src.CRS {
	case "osgb", "latlon", "geostationary":
	case "":
		return fieldErr("crs", "missing (osgb, latlon or geostationary)")
	default:
		return fieldErr("crs", "%q is not osgb, latlon or geostationary", src.CRS)
	}
	if src.Coords == nil {
		src.Coords = &CoordsSpec{X: d.X, Y: d.Y}
	}
	if src.Coords.X == "" || src.Coords.Y == "" {
		return fieldErr("coords", "needs x and y")
	}
	if g := src.Geostationary; g != nil {
		if src.CRS != "geostationary" {
			return fieldErr("geostationary", "given, but crs is %s", src.CRS)
		}
		if g.SweepAxis == "" {
			g.SweepAxis = "y"
		}
		if g.SweepAxis != "x" && g.SweepAxis != "y" {
			return fieldErr("geostationary.sweep", "%q is not x or y", g.SweepAxis)
		}
	}
	nCh := len(src.Channels)
	if d.Channel == "" && nCh > 0 {
		return fieldErr("channels", "given, but dims maps no channel")
	}
	if d.Channel == "" {
		nCh = 1
	}
	return src.checkNormalise(nCh)
}

// checkNormalise checks normalisation lengths against nCh channels (-1:
// unknown until the data is opened).
func (src *SourceSpec) checkNormalise(nCh int) error {
	n := src.Normalise
	if n == nil {
		return nil
	}
	if len(n.Mean) != len(n.Std) {
		return fieldErr("normalise", "%d means but %d stds", len(n.Mean), len(n.Std))
	}
	if nCh >= 0 && len(n.Mean) != nCh && len(n.Mean) != 1 {
		return fieldErr("normalise.mean", "%d values for %d channels", len(n.Mean), nCh)
	}
	for i, m := range n.Mean {
		if math.IsNaN(m) || math.IsInf(m, 0) {
			return fieldErr(fmt.Sprintf("normalise.mean[%d]", i), "%v is not a finite number", m)
		}
	}
	for _, c := range []struct {
		name string
		v    *float64
	}{{"clip_min", n.ClipMin}, {"clip_max", n.ClipMax}} {
		if c.v != nil && math.IsNaN(*c.v) {
			return fieldErr("normalise."+c.name, "NaN")
		}
	}
	for i, s := range n.Std {
		if !(s > 0) || math.IsInf(s, 0) {
			return fieldErr(fmt.Sprintf("normalise.std[%d]", i), "%v is not a positive finite number", s)
		}
	}
	if n.ClipMin != nil && n.ClipMax != nil && *n.ClipMin > *n.ClipMax {
		return fieldErr("normalise.clip_min", "greater than clip_max")
	}
	return nil
}

func resolve(baseDir, p string) string {
	if strings.Contains(p, "://") || filepath.IsAbs(p) {
		return p
	}
	// Absolute, so that provenance names the store wherever it is read.
	if abs, err := filepath.Abs(filepath.Join(baseDir, p)); err == nil {
		return abs
	}
	return filepath.Join(baseDir, p)
}
