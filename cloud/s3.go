package cloud

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// S3Store is a zarr.Store over the objects below s3://bucket/prefix.
type S3Store struct {
	*engine
	client *s3.Client
	bucket string
	prefix string // "" or ending in "/"
}

var _ zarr.Store = (*S3Store)(nil)

// OpenS3 returns a store for s3://bucket/prefix. Credentials, region and
// endpoint come from the standard AWS chain, as the AWS CLI finds them
// (AWS_* variables including AWS_ENDPOINT_URL, shared config and
// credentials files, profiles); a custom endpoint gets path-style
// addressing. Retries are the store's own: the SDK's, with their token
// bucket that stops retrying under load, are off.
func OpenS3(ctx context.Context, bucket, prefix string, opts Options) (*S3Store, error) {
	if bucket == "" {
		return nil, fmt.Errorf("cloud: open s3://%s/%s: no bucket", bucket, prefix)
	}
	opts = opts.withDefaults()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithHTTPClient(
		// The SDK's buildable client, so that AWS_CA_BUNDLE still applies.
		awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) { tuneTransport(t, opts) })))
	if err != nil {
		return nil, fmt.Errorf("cloud: open s3://%s/%s: AWS config: %w", bucket, prefix, err)
	}
	if cfg.Region == "" {
		// Path-style and most S3-compatible servers accept any region;
		// AWS itself redirects, which the error then names.
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.Retryer = aws.NopRetryer{}
		o.RetryMaxAttempts = 0
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		if o.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
		if opts.Anonymous {
			o.Credentials = aws.AnonymousCredentials{}
		}
	})
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	s := &S3Store{client: client, bucket: bucket, prefix: prefix}
	s.engine = newEngine(s, opts)
	return s, nil
}

// Close drops the idle connections; in-flight reads finish first.
func (s *S3Store) Close() error {
	if c, ok := s.client.Options().HTTPClient.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return nil
}

// String names the store as an s3:// URL.
func (s *S3Store) String() string {
	return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
}

func (s *S3Store) url(key string) string { return "s3://" + s.bucket + "/" + s.prefix + key }

// ReadBatch issues ranged GETs for reqs, merging nearby ranges of one
// object, with up to Concurrency in flight; done is called from many
// goroutines.
func (s *S3Store) ReadBatch(ctx context.Context, reqs []zarr.ByteRange, done func(int, []byte, error)) {
	s.readBatch(ctx, reqs, done)
}

// Release gives back a buffer handed to a ReadBatch callback.
func (s *S3Store) Release(data []byte) { s.pool.Release(data) }

func (s *S3Store) get(ctx context.Context, key string, rng zarr.ByteRange) (*response, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)}
	if h := rangeHeader(rng); h != "" {
		in.Range = aws.String(h)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		// Only a missing key is a missing object (a chunk that reads as
		// fill); a missing bucket (also a 404) is a configuration error.
		var noKey *types.NoSuchKey
		var code errorCoder
		if errors.As(err, &noKey) || (errors.As(err, &code) && code.ErrorCode() == "NoSuchKey") {
			return nil, fmt.Errorf("%w: %w", fs.ErrNotExist, err)
		}
		return nil, err
	}
	resp := &response{body: out.Body, length: aws.ToInt64(out.ContentLength), total: -1}
	if out.ContentLength == nil {
		resp.length = -1
	}
	if out.ContentRange != nil {
		first, last, total, err := parseContentRange(*out.ContentRange)
		if err != nil {
			out.Body.Close()
			return nil, err
		}
		resp.first, resp.total = first, total
		if resp.length >= 0 && resp.length != last-first+1 {
			out.Body.Close()
			return nil, fmt.Errorf("content-range %q disagrees with content-length %d", *out.ContentRange, resp.length)
		}
	} else if rng.Offset != 0 || rng.Length >= 0 {
		out.Body.Close()
		return nil, fmt.Errorf("asked for %s, got no Content-Range", rangeHeader(rng))
	}
	return resp, nil
}

// List returns the keys below prefix with ListObjectsV2, page by page.
func (s *S3Store) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.prefix + prefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("cloud: list %s: %w", s.url(prefix), err)
		}
		for _, obj := range page.Contents {
			keys = append(keys, strings.TrimPrefix(aws.ToString(obj.Key), s.prefix))
		}
	}
	return keys, nil
}
