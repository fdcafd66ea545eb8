// Package store opens a store from a path or URL through a registry of
// openers by URL scheme: a plain path or file:// reads the local directory
// through io_uring (or pread where io_uring is refused), s3://bucket/prefix
// reads S3 and http(s):// reads a web server with ranged GETs; tests add
// mem:// (package mem) to a registry of their own. Every store keeps the
// contract of package kv and passes the suite of package storetest.
package store

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/lsio-loader/lsio-loader/cloud"
	"github.com/lsio-loader/lsio-loader/store/kv"
	"github.com/lsio-loader/lsio-loader/uring"
)

// Store is an open store; its opener's caller closes it.
type Store = kv.Store

// Options tunes the backends; the zero value suits each.
type Options struct {
	Local uring.Options
	Cloud cloud.Options
}

// Opener opens the store a URL of its scheme names.
type Opener func(ctx context.Context, u *url.URL) (Store, error)

// Registry maps URL schemes (lower case) to openers. A Registry is never
// changed once made: With returns a new one.
type Registry struct{ schemes map[string]Opener }

// Defaults is the registry of the loader's own backends, tuned by opts:
// file, s3, http and https.
func Defaults(opts Options) Registry {
	web := func(ctx context.Context, u *url.URL) (Store, error) {
		s, err := cloud.OpenHTTP(ctx, u.String(), opts.Cloud)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return Registry{schemes: map[string]Opener{
		"file": func(_ context.Context, u *url.URL) (Store, error) {
			if u.Host != "" && u.Host != "localhost" {
				return nil, fmt.Errorf("file URLs name a local path (file:///path), not host %q", u.Host)
			}
			if u.Path == "" {
				return nil, fmt.Errorf("empty path")
			}
			s, err := uring.Open(u.Path, opts.Local)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
		"s3": func(ctx context.Context, u *url.URL) (Store, error) {
			if u.Host == "" {
				return nil, fmt.Errorf("no bucket")
			}
			s, err := cloud.OpenS3(ctx, u.Host, u.Path, opts.Cloud)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
		"http":  web,
		"https": web,
	}}
}

// With returns a registry that also opens scheme with open.
func (r Registry) With(scheme string, open Opener) Registry {
	m := maps.Clone(r.schemes)
	if m == nil {
		m = map[string]Opener{}
	}
	m[strings.ToLower(scheme)] = open
	return Registry{schemes: m}
}

// Open opens the store rawURL names: a path (the file scheme) or a URL of
// a registered scheme.
func (r Registry) Open(ctx context.Context, rawURL string) (Store, error) {
	u, err := parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store: open %q: %w", rawURL, err)
	}
	open, ok := r.schemes[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("store: open %q: unknown scheme %q (want a path or one of %s)", rawURL, u.Scheme, r.describe())
	}
	s, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("store: open %q: %w", rawURL, err)
	}
	return s, nil
}

func (r Registry) describe() string {
	var names []string
	for _, s := range slices.Sorted(maps.Keys(r.schemes)) {
		names = append(names, s+"://")
	}
	return strings.Join(names, ", ")
}

// Open opens rawURL with the default backends tuned by opts.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	return Defaults(opts).Open(ctx, rawURL)
}

// parse splits a store URL; a plain path is a file URL. The scheme comes
// back lower case, and the host of s3 URLs (the bucket) as written.
func parse(rawURL string) (*url.URL, error) {
	scheme, rest, hasScheme := strings.Cut(rawURL, "://")
	if !hasScheme {
		if rawURL == "" {
			return nil, fmt.Errorf("empty path")
		}
		return &url.URL{Scheme: "file", Path: rawURL}, nil
	}
	scheme = strings.ToLower(scheme)
	if scheme == "s3" {
		// Bucket and prefix as written: url.Parse would unescape %XX
		// and refuse some keys.
		bucket, prefix, _ := strings.Cut(rest, "/")
		return &url.URL{Scheme: scheme, Host: bucket, Path: prefix}, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	u.Scheme = scheme
	return u, nil
}
