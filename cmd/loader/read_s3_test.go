package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// TestReadS3MatchesLocal uploads every real store to MinIO and reads every
// array through `loader read s3://...`, configured only through the AWS
// environment variables, exactly as the AWS CLI would be. Each .npy must be
// byte-identical to the local read of the same array, which
// TestReadRealStores checks against zarr-python.
func TestReadS3MatchesLocal(t *testing.T) {
	real := testenv.RealData(t)
	arrays := findRealArrays(t, real)
	minio := testenv.StartMinIO(t)
	const bucket = "real"
	minio.Upload(t, bucket, real, "data")
	t.Setenv("AWS_ENDPOINT_URL", minio.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", minio.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minio.SecretKey)
	t.Setenv("AWS_REGION", minio.Region)
	// Nothing but those four may configure the client.
	for _, v := range []string{"AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))

	ctx := context.Background()
	dir := t.TempDir()
	for i, a := range arrays {
		rel, err := filepath.Rel(real, a.Store)
		if err != nil {
			t.Fatal(err)
		}
		url := fmt.Sprintf("s3://%s/data/%s", bucket, filepath.ToSlash(rel))
		local := filepath.Join(dir, fmt.Sprintf("%03d_local.npy", i))
		remote := filepath.Join(dir, fmt.Sprintf("%03d_s3.npy", i))
		if err := runRead(ctx, []string{a.Store, a.Array, "-o", local}, io.Discard); err != nil {
			t.Fatalf("loader read %s %s: %v", a.Store, a.Array, err)
		}
		if err := runRead(ctx, []string{url, a.Array, "-o", remote}, io.Discard); err != nil {
			t.Errorf("loader read %s %s: %v", url, a.Array, err)
			continue
		}
		want, err1 := os.ReadFile(local)
		got, err2 := os.ReadFile(remote)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("loader read %s %s: %d bytes differ from the local read (%d bytes)", url, a.Array, len(got), len(want))
		}
	}
	// inspect goes through the same store.
	var out strings.Builder
	url := fmt.Sprintf("s3://%s/data/ocf-nowcasting-2023/ukv_nwp.zarr", bucket)
	if err := runInspect(ctx, []string{url}, &out); err != nil {
		t.Fatalf("loader inspect %s: %v", url, err)
	}
	if !strings.Contains(out.String(), "UKV") {
		t.Errorf("loader inspect %s does not list UKV:\n%s", url, out.String())
	}
}
