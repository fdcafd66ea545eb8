package flight

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/sampler"
)

// TestPythonClientNames checks the client's column and metadata names
// (python/lsio_loader/_schema.py) against the ones defined here.
func TestPythonClientNames(t *testing.T) {
	path := filepath.Join(testenv.ModuleRoot(t), "python", "lsio_loader", "_schema.py")
	out := testenv.RunPython(t, `
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("schema", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
print(json.dumps({k: (v.decode() if isinstance(v, bytes) else v) for k, v in vars(m).items() if k.isupper()}))
`, path)
	var py map[string]any
	if err := json.Unmarshal(out, &py); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"EPOCH_INDEX": colEpochIndex, "T0": colT0, "X": colX, "Y": colY, "LAT": colLat, "LON": colLon,
		"PROVENANCE":   []any{colEpochIndex, colT0, colX, colY, colLat, colLon},
		"SUFFIX_ISEL":  suffixIsel,
		"SUFFIX_TIME":  suffixTime,
		"META_DTYPE":   metaDType,
		"META_SOURCES": metaSources,
		"META_REQUEST": metaRequest,
	}
	for k, v := range want {
		got, _ := json.Marshal(py[k])
		exp, _ := json.Marshal(v)
		if string(got) != string(exp) {
			t.Errorf("python %s = %s, Go has %s", k, got, exp)
		}
	}
	for k := range py {
		if _, ok := want[k]; !ok {
			t.Errorf("python defines %s, which Go does not", k)
		}
	}
	// The provenance columns lead every schema, in the same order.
	schema, err := buildSchema(&sampler.Plan{}, &Request{})
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range want["PROVENANCE"].([]any) {
		if schema.Field(i).Name != name {
			t.Errorf("schema field %d is %s, want %s", i, schema.Field(i).Name, name)
		}
	}
}
