package cloud

import (
	"bytes"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// benchObject is the object random reads go to: the one bench/io/run.sh
// uploaded ($LSIO_BENCH_S3_BUCKET, _KEY, _SIZE with the AWS_* variables
// pointing at its MinIO), or a 64 MiB object in a MinIO started here.
func benchObject(b *testing.B) (bucket, key string, size int64) {
	b.Helper()
	if bucket = os.Getenv("LSIO_BENCH_S3_BUCKET"); bucket != "" {
		size, err := strconv.ParseInt(os.Getenv("LSIO_BENCH_S3_SIZE"), 10, 64)
		if err != nil {
			b.Fatalf("LSIO_BENCH_S3_SIZE: %v", err)
		}
		return bucket, os.Getenv("LSIO_BENCH_S3_KEY"), size
	}
	m := testenv.StartMinIO(b)
	b.Setenv("AWS_ENDPOINT_URL", m.Endpoint)
	b.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	b.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	b.Setenv("AWS_REGION", m.Region)
	data := make([]byte, 64<<20)
	crand.Read(data)
	client := m.Client()
	if _, err := client.CreateBucket(b.Context(), &s3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
		b.Fatal(err)
	}
	if _, err := client.PutObject(b.Context(), &s3.PutObjectInput{Bucket: aws.String("bench"), Key: aws.String("rand.bin"), Body: bytes.NewReader(data)}); err != nil {
		b.Fatal(err)
	}
	return "bench", "rand.bin", int64(len(data))
}

// BenchmarkS3RandomRead issues ranged GETs of random blocks with
// $LSIO_BENCH_CONCURRENCY (default 64) in flight, merging turned off, the
// way boto3 with a thread pool of that size does in bench/io/run.sh.
func BenchmarkS3RandomRead(b *testing.B) {
	bucket, key, size := benchObject(b)
	concurrency := 64
	if v, err := strconv.Atoi(os.Getenv("LSIO_BENCH_CONCURRENCY")); err == nil && v > 0 {
		concurrency = v
	}
	for _, bs := range []int64{64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", bs>>10), func(b *testing.B) {
			s, err := OpenS3(b.Context(), bucket, "", Options{Concurrency: concurrency, CoalesceGap: -1})
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, uint64(bs)))
			blocks := size / bs
			batch := make([]zarr.ByteRange, 4*concurrency)
			var failed error
			done := func(_ int, data []byte, err error) {
				if err != nil {
					failed = err
				}
				s.Release(data)
			}
			b.SetBytes(bs)
			cpu0 := cpuTime()
			b.ResetTimer()
			for n := 0; n < b.N; n += len(batch) {
				k := min(len(batch), b.N-n)
				for i := range k {
					batch[i] = zarr.ByteRange{Key: key, Offset: rng.Int64N(blocks) * bs, Length: bs}
				}
				s.ReadBatch(b.Context(), batch[:k], done)
				if failed != nil {
					b.Fatal(failed)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			// The client's own CPU per request: with MinIO on the same few
			// cores the server bounds throughput, this says what the client
			// costs.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/req")
		})
	}
}

// cpuTime is the CPU (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
