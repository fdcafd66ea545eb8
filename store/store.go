// Package store opens a zarr.Store from a URL, choosing the backend: a plain
// path or file:// URL reads the local directory through io_uring (or pread
// where io_uring is refused), s3://bucket/prefix reads S3 and http(s)://
// reads a web server with ranged GETs.
package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/lsio-loader/lsio-loader/cloud"
	"github.com/lsio-loader/lsio-loader/uring"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// Options tunes the backends; the zero value suits each.
type Options struct {
	Local uring.Options
	Cloud cloud.Options
}

// Open returns the store that rawURL names. A local store holds worker
// threads: the returned store then implements io.Closer, and the caller
// closes it when done.
func Open(ctx context.Context, rawURL string, opts Options) (zarr.Store, error) {
	loc, err := parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch loc.backend {
	case local:
		s, err := uring.Open(loc.path, opts.Local)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return s, nil
	case s3:
		s, err := cloud.OpenS3(ctx, loc.bucket, loc.path, opts.Cloud)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return s, nil
	default:
		s, err := cloud.OpenHTTP(ctx, loc.path, opts.Cloud)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return s, nil
	}
}

type backend int

const (
	local backend = iota
	s3
	web
)

// location is what a store URL names: a local directory, an S3 bucket and
// prefix, or an http(s) base URL (in path).
type location struct {
	backend backend
	bucket  string
	path    string
}

func parse(rawURL string) (location, error) {
	scheme, rest, hasScheme := strings.Cut(rawURL, "://")
	if !hasScheme {
		if rawURL == "" {
			return location{}, fmt.Errorf("store: open: empty path")
		}
		return location{backend: local, path: rawURL}, nil
	}
	switch strings.ToLower(scheme) {
	case "file":
		u, err := url.Parse(rawURL)
		if err != nil {
			return location{}, fmt.Errorf("store: open %q: %w", rawURL, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return location{}, fmt.Errorf("store: open %q: file URLs name a local path (file:///path), not host %q", rawURL, u.Host)
		}
		if u.Path == "" {
			return location{}, fmt.Errorf("store: open %q: empty path", rawURL)
		}
		return location{backend: local, path: u.Path}, nil
	case "s3":
		bucket, prefix, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return location{}, fmt.Errorf("store: open %q: no bucket", rawURL)
		}
		return location{backend: s3, bucket: bucket, path: prefix}, nil
	case "http", "https":
		return location{backend: web, path: rawURL}, nil
	default:
		return location{}, fmt.Errorf("store: open %q: unknown scheme %q (want a path, file://, s3://, http:// or https://)", rawURL, scheme)
	}
}
