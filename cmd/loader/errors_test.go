package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// TestErrorsLocateTheProblem breaks the real UKV + SEVIRI example the
// ways users do and checks that each error says where the problem is.
func TestErrorsLocateTheProblem(t *testing.T) {
	real := testenv.RealData(t)
	example, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "examples", "real_ukv_seviri.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base := strings.ReplaceAll(string(example), "../../shared/data/real", real)
	const train = `    - {start: "2020-04-01T12:00", end: "2020-04-01T13:30"}`
	const val = `  val:
    - {start: "2020-04-01T13:35", end: "2020-04-01T14:00"}
`
	const nwpDims = `dims: {channel: variable, init_time: init_time, step: step, y: y, x: x}`
	for _, r := range []string{train, val, nwpDims} {
		if !strings.Contains(base, r) {
			t.Fatalf("examples/real_ukv_seviri.yaml no longer holds %q: update this test", r)
		}
	}
	ukv := filepath.Join(real, "ocf-nowcasting-2023", "ukv_nwp.zarr")
	for _, tc := range []struct {
		name string
		spec string // a spec for loader sample, or "" for read
		read []string
		want []string
	}{
		{
			name: "period after the satellite data",
			spec: strings.Replace(strings.Replace(base, val, "", 1), train, `    - {start: "2020-04-01T15:00", end: "2020-04-01T16:00"}`, 1),
			want: []string{
				"splits.train: no valid t0",
				"period 2020-04-01T15:00:00 … 2020-04-01T16:00:00: source sat rules it out",
				"source sat: data 2020-04-01T12:00:00 … 2020-04-01T14:00:00, so t0 2020-04-01T12:30:00 … 2020-04-01T14:00:00",
				"source nwp: init times 2020-04-01T00:00:00 … 2020-04-02T00:00:00",
			},
		},
		{
			name: "period after every source",
			spec: strings.Replace(strings.Replace(base, val, "", 1), train, `    - {start: "2020-05-01T00:00", end: "2020-05-02T00:00"}`, 1),
			want: []string{"sources nwp, sat rule it out"},
		},
		{
			name: "train period the data misses, val fine",
			spec: strings.Replace(base, train, `    - {start: "2020-04-01T15:00", end: "2020-04-01T16:00"}`, 1),
			want: []string{`split "train": no valid t0`, "source sat rules it out"},
		},
		{
			name: "y and x swapped",
			spec: strings.Replace(base, nwpDims, `dims: {channel: variable, init_time: init_time, step: step, y: x, x: y}`, 1),
			want: []string{"sources.nwp.dims", "y and x are swapped", `y is mapped to "x" and x to "y"`, "want y: y, x: x"},
		},
		{
			name: "array misspelt",
			read: []string{ukv, "UKx", "-o", "out.npy"},
			want: []string{`no array "UKx" in ` + ukv, "arrays: UKV, init_time, step, variable, x, y", "did you mean UKV?"},
		},
		{
			name: "label not in the coordinate",
			read: []string{ukv, "UKV", "--sel", "init_time=2020-05-01T00:00", "-o", "out.npy"},
			want: []string{`--sel "init_time=2020-05-01T00:00"`, "no label 2020-05-01T00:00",
				`coordinate "init_time" runs 2020-04-01T00:00:00 … 2020-04-02T00:00:00`},
		},
		{
			name: "index past the end",
			read: []string{ukv, "UKV", "--isel", "init_time=9", "-o", "out.npy"},
			want: []string{`dimension "init_time" of size 9`, "index 9 out of range for size 9"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var err error
			if tc.spec != "" {
				path := filepath.Join(dir, "spec.yaml")
				if err := os.WriteFile(path, []byte(tc.spec), 0o644); err != nil {
					t.Fatal(err)
				}
				err = runSample(context.Background(), []string{path, "-n", "1", "--split", "train", "-o", filepath.Join(dir, "out.npz")}, io.Discard)
			} else {
				args := append([]string(nil), tc.read...)
				args[len(args)-1] = filepath.Join(dir, args[len(args)-1])
				err = runRead(context.Background(), args, io.Discard)
			}
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
