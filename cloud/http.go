package cloud

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strings"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// HTTPStore is a zarr.Store over the objects below an http(s) base URL,
// read with Range requests.
type HTTPStore struct {
	*engine
	client *http.Client
	base   string // without a trailing "/"
	// shown is base with any password redacted, for errors and logs.
	shown string
}

var _ zarr.Store = (*HTTPStore)(nil)

// OpenHTTP returns a store for the objects below baseURL.
func OpenHTTP(ctx context.Context, baseURL string, opts Options) (*HTTPStore, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("cloud: open: not an http(s) URL with a host")
	}
	opts = opts.withDefaults()
	s := &HTTPStore{client: newHTTPClient(opts), base: strings.TrimRight(baseURL, "/"), shown: strings.TrimRight(u.Redacted(), "/")}
	s.engine = newEngine(s, opts)
	return s, nil
}

// String names the store as its base URL.
func (s *HTTPStore) String() string { return s.shown }

func (s *HTTPStore) url(key string) string { return s.shown + "/" + key }

// ReadBatch issues ranged GETs for reqs, merging nearby ranges of one
// object, with up to Concurrency in flight; done is called from many
// goroutines.
func (s *HTTPStore) ReadBatch(ctx context.Context, reqs []zarr.ByteRange, done func(int, []byte, error)) {
	s.readBatch(ctx, reqs, done)
}

// Release gives back a buffer handed to a ReadBatch callback.
func (s *HTTPStore) Release(data []byte) { s.pool.Release(data) }

// Close drops the idle connections; in-flight reads finish first.
func (s *HTTPStore) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// List is not possible over plain HTTP, which has no listing.
func (s *HTTPStore) List(ctx context.Context, prefix string) ([]string, error) {
	return nil, fmt.Errorf("cloud: list %q in %s: HTTP stores cannot be listed; the hierarchy needs consolidated metadata (.zmetadata or zarr.json with consolidated_metadata)", prefix, s.base)
}

func (s *HTTPStore) get(ctx context.Context, key string, rng zarr.ByteRange) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/"+key, nil)
	if err != nil {
		return nil, err
	}
	h := rangeHeader(rng)
	if h != "" {
		req.Header.Set("Range", h)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	out := &response{body: resp.Body, length: resp.ContentLength, total: -1}
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		first, last, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			resp.Body.Close()
			return nil, err
		}
		out.first, out.total = first, total
		if out.length >= 0 && out.length != last-first+1 {
			resp.Body.Close()
			return nil, fmt.Errorf("content-range %q disagrees with content-length %d", resp.Header.Get("Content-Range"), out.length)
		}
	case resp.StatusCode == http.StatusOK && h == "":
	case resp.StatusCode == http.StatusOK:
		resp.Body.Close()
		return nil, fmt.Errorf("asked for %s, the server sent the whole object (it ignores Range)", h)
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: HTTP 404", fs.ErrNotExist)
	default:
		resp.Body.Close()
		return nil, &errStatus{code: resp.StatusCode, msg: resp.Status}
	}
	return out, nil
}
