package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MinIO is a MinIO server started for one test, with its data in a
// temporary directory.
type MinIO struct {
	// Endpoint is the server's base URL, e.g. "http://127.0.0.1:41234".
	Endpoint  string
	AccessKey string
	SecretKey string
	Region    string

	cmd    *exec.Cmd
	exited chan struct{}
}

// StartMinIO starts a MinIO server on a free loopback port, waits until it
// is live and answers S3 calls, and kills it when the test ends. The binary
// is $LSIO_MINIO or ~/.cache/lsio-loader/bin/minio; the test fails when
// there is none (`make test` installs it).
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := os.Getenv("LSIO_MINIO")
	if bin == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("testenv: minio: %v", err)
		}
		bin = filepath.Join(home, ".cache", "lsio-loader", "bin", "minio")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("testenv: no MinIO binary at %s (set LSIO_MINIO or run `make test`, which installs it): %v", bin, err)
	}
	m := &MinIO{
		AccessKey: "lsio-test-access",
		SecretKey: "lsio-test-secret-key",
		Region:    "us-east-1",
		exited:    make(chan struct{}),
	}
	addr := freeLoopbackAddr(t)
	m.Endpoint = "http://" + addr
	var logs lockedBuffer
	m.cmd = exec.Command(bin, "server", t.TempDir(), "--address", addr, "--console-address", freeLoopbackAddr(t), "--quiet")
	m.cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_REGION="+m.Region,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	m.cmd.Stdout, m.cmd.Stderr = &logs, &logs
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", bin, err)
	}
	go func() {
		m.cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(m.Kill)

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(m.Endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			// Live is not enough: S3 calls fail with
			// XMinioServerNotInitialized for a while after.
			if resp.StatusCode == http.StatusOK {
				if _, err = m.Client().ListBuckets(context.Background(), &s3.ListBucketsInput{}); err == nil {
					return m
				}
			}
		}
		select {
		case <-m.exited:
			t.Fatalf("testenv: MinIO exited before it was live: %s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: MinIO not live at %s after 30s: %v\n%s", m.Endpoint, err, logs.String())
		}
	}
}

// Kill stops the server at once (SIGKILL), as a crash would, and waits for
// it to exit.
func (m *MinIO) Kill() {
	if m.cmd.Process != nil {
		m.cmd.Process.Kill()
	}
	<-m.exited
}

// Client returns an S3 client for the server with its root credentials.
func (m *MinIO) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       m.Region,
		BaseEndpoint: aws.String(m.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
	})
}

// Upload copies every file below localDir to bucket under prefix (creating
// the bucket when needed), keeping the relative paths as keys.
func (m *MinIO) Upload(t testing.TB, bucket, localDir, prefix string) {
	t.Helper()
	ctx := context.Background()
	client := m.Client()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		var owned interface{ ErrorCode() string }
		if !errors.As(err, &owned) || (owned.ErrorCode() != "BucketAlreadyOwnedByYou" && owned.ErrorCode() != "BucketAlreadyExists") {
			t.Fatalf("testenv: create bucket %s: %v", bucket, err)
		}
	}
	err := filepath.WalkDir(localDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(localDir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if prefix != "" {
			key = prefix + "/" + key
		}
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testenv: upload %s to s3://%s/%s: %v", localDir, bucket, prefix, err)
	}
}

func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// lockedBuffer collects the server's output, which exec writes from its own
// goroutines while a failing test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
