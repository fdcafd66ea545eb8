package cropper

import (
	"reflect"
	"testing"
)

// TestStatsAddSumsEveryCount fills every field of two Stats with distinct
// counts and checks that Add sums each one, so that a count added to Stats
// later cannot be dropped from a stream's totals.
func TestStatsAddSumsEveryCount(t *testing.T) {
	var a, b Stats
	va, vb := reflect.ValueOf(&a).Elem(), reflect.ValueOf(&b).Elem()
	for i := range va.NumField() {
		if va.Field(i).Kind() != reflect.Int64 {
			t.Fatalf("Stats.%s is a %s: extend this test", va.Type().Field(i).Name, va.Field(i).Kind())
		}
		va.Field(i).SetInt(int64(1 + i))
		vb.Field(i).SetInt(int64(100 * (1 + i)))
	}
	a.Add(b)
	for i := range va.NumField() {
		if got, want := va.Field(i).Int(), int64(101*(1+i)); got != want {
			t.Errorf("Stats.%s: Add gives %d, want %d", va.Type().Field(i).Name, got, want)
		}
	}
}
