package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// TestSampleBlockedS3MatchesLocal samples the real joined experiment in the
// blocked order from local files and from MinIO: the same epoch, the same
// crops (TestSampleMatchesZarrPython checks the local ones against
// zarr-python). It also prints the order's randomness figures.
func TestSampleBlockedS3MatchesLocal(t *testing.T) {
	real := testenv.RealData(t)
	spec, err := os.ReadFile(realUKVSEVIRISpec(t))
	if err != nil {
		t.Fatal(err)
	}
	blocked := strings.Replace(string(spec), "order: {mode: iid}", "order: {mode: blocked, pool: 2GiB}", 1)
	if blocked == string(spec) {
		t.Fatal("the example spec has no order: {mode: iid} line")
	}
	local := strings.ReplaceAll(blocked, "../../shared/data/real", real)
	minio := testenv.StartMinIO(t)
	minio.Upload(t, "real", filepath.Join(real, "ocf-nowcasting-2023"), "data")
	t.Setenv("AWS_ENDPOINT_URL", minio.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", minio.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minio.SecretKey)
	t.Setenv("AWS_REGION", minio.Region)
	remote := strings.ReplaceAll(blocked, "../../shared/data/real/ocf-nowcasting-2023", "s3://real/data")
	dir := t.TempDir()
	var npz []string
	for name, text := range map[string]string{"local": local, "s3": remote} {
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		npz = append(npz, sampleNPZ(t, path, "-n", "64", "--raw"))
	}
	out := testenv.RunPython(t, `
import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
for k in ("t0", "nwp", "sat", "nwp.isel", "sat.isel", "x", "y"):
    assert np.array_equal(a[k], b[k], equal_nan=True), k
print(len(a["t0"]), "samples agree")
`, npz[0], npz[1])
	t.Logf("%s", bytes.TrimSpace(out))
	var r bytes.Buffer
	if err := runSample(context.Background(), []string{filepath.Join(dir, "local.yaml"), "--randomness"}, &r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.String(), "order blocked") || !strings.Contains(r.String(), "× iid") || !strings.Contains(r.String(), "crop starts reached in space: 100% this epoch, 100% over epochs") {
		t.Fatalf("--randomness printed %q", r.String())
	}
	t.Logf("%s", r.String())
}
