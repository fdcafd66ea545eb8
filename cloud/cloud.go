// Package cloud reads Zarr objects from S3 (aws-sdk-go-v2) and from plain
// HTTP(S) servers with ranged GETs: hundreds in flight, nearby ranges of one
// object merged into one GET, and jittered retries bounded in time.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lsio-loader/lsio-loader/internal/bufpool"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// Options tunes an S3 or HTTP store. The zero value is a good default.
type Options struct {
	// Concurrency bounds the GETs in flight. Default 256.
	Concurrency int
	// CoalesceGap merges ranges of one object whose gap is at most this
	// many bytes into one GET. Default 1 MiB; negative turns merging off.
	CoalesceGap int64
	// MaxCoalesced bounds the size of one merged GET. Default 16 MiB.
	MaxCoalesced int64
	// ConnectTimeout bounds connecting to the endpoint: one dial, and all
	// retries of a GET while the endpoint refuses or resets connections or
	// leaves them unanswered, so that a closed port fails within it.
	// Default 10 s.
	ConnectTimeout time.Duration
	// FirstByteTimeout bounds the wait for a response's headers, so that
	// an endpoint that accepts and never answers fails within it (no retry
	// follows once ConnectTimeout has passed). Default 20 s.
	FirstByteTimeout time.Duration
	// RequestTimeout bounds one attempt, body included. Default 30 s.
	RequestTimeout time.Duration
	// RetryTimeout bounds all attempts at one GET together while the
	// endpoint answers with throttling or 5xx; past it the read fails with
	// the last error. Once every attempt at the server has failed for
	// longer than the budget of its failure, GETs fail at once (one at a
	// time still probes it), so that a dead server fails a whole batch
	// within about that budget. Default 1 min.
	RetryTimeout time.Duration
	// Anonymous sends unsigned S3 requests, for public buckets.
	Anonymous bool
	// MaxObjectBytes bounds whole-object reads, whose size only the server
	// claims. Default 1 GiB.
	MaxObjectBytes int64
}

func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = 256
	}
	if o.CoalesceGap == 0 {
		o.CoalesceGap = 1 << 20
	}
	if o.MaxCoalesced <= 0 {
		o.MaxCoalesced = 16 << 20
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.FirstByteTimeout <= 0 {
		o.FirstByteTimeout = 20 * time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.RetryTimeout <= 0 {
		o.RetryTimeout = time.Minute
	}
	if o.MaxObjectBytes <= 0 {
		o.MaxObjectBytes = 1 << 30
	}
	return o
}

// tuneTransport keeps a connection per GET in flight alive, rather than the
// standard two per host, and bounds the waits of one request.
func tuneTransport(t *http.Transport, o Options) {
	t.MaxIdleConns = o.Concurrency * 2
	t.MaxIdleConnsPerHost = o.Concurrency
	t.MaxConnsPerHost = o.Concurrency
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = o.FirstByteTimeout
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ExpectContinueTimeout = time.Second
	// Ranges are of the stored bytes: a transparently decompressed body
	// would have other offsets.
	t.DisableCompression = true
	t.DialContext = (&net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.WriteBufferSize = 64 << 10
	t.ReadBufferSize = 256 << 10
}

func newHTTPClient(o Options) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	tuneTransport(t, o)
	return &http.Client{Transport: t}
}

// getter is what differs between S3 and HTTP: one GET of a byte range.
type getter interface {
	// get requests the bytes of key that rng asks for (see rangeHeader);
	// a missing object is an error wrapping fs.ErrNotExist.
	get(ctx context.Context, key string, rng zarr.ByteRange) (*response, error)
	// url names key in errors.
	url(key string) string
}

// response is an open body with what the headers said about it.
type response struct {
	body io.ReadCloser
	// length is the Content-Length, -1 when unknown.
	length int64
	// first is the object offset of the body's first byte (from
	// Content-Range; 0 for a 200).
	first int64
	// total is the object size from Content-Range, -1 when not told.
	total int64
}

// engine runs batches over a getter: it merges ranges, bounds concurrency,
// retries and fills pooled buffers.
type engine struct {
	g    getter
	opts Options
	pool *bufpool.Pool
	sem  chan struct{}
	// failingSince is when (UnixNano) the server started failing every
	// attempt, 0 while it answers. Once it has failed for longer than
	// RetryTimeout, GETs stop retrying, so that a dead server fails a
	// batch in bounded time rather than RetryTimeout per queued GET.
	failingSince atomic.Int64
	// probing is set while the one GET allowed through to a server that
	// has been failing for long is in flight; the others fail at once.
	probing atomic.Bool
	// lastFailure is the error of the latest failed attempt, for the GETs
	// refused while the server is failing.
	lastFailure atomic.Pointer[error]
}

// failingFor is how long the server has failed every attempt, 0 if it has
// not.
func (e *engine) failingFor(now time.Time) time.Duration {
	since := e.failingSince.Load()
	if since == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, since))
}

func newEngine(g getter, opts Options) *engine {
	return &engine{g: g, opts: opts, pool: bufpool.New(64), sem: make(chan struct{}, opts.Concurrency)}
}

// group is one GET serving one or more requests.
type group struct {
	key     string
	rng     zarr.ByteRange
	members []int
}

// plan merges the fixed ranges of each key whose gaps are small; whole and
// suffix reads get a GET each.
func (e *engine) plan(reqs []zarr.ByteRange) []group {
	var groups []group
	byKey := map[string][]int{}
	for i, r := range reqs {
		if r.Offset < 0 || r.Length < 0 || e.opts.CoalesceGap < 0 {
			groups = append(groups, group{key: r.Key, rng: r, members: []int{i}})
			continue
		}
		byKey[r.Key] = append(byKey[r.Key], i)
	}
	for key, idx := range byKey {
		sort.Slice(idx, func(a, b int) bool { return reqs[idx[a]].Offset < reqs[idx[b]].Offset })
		cur := group{key: key, rng: reqs[idx[0]], members: []int{idx[0]}}
		for _, i := range idx[1:] {
			r := reqs[i]
			end := cur.rng.Offset + cur.rng.Length
			newEnd := max(end, r.Offset+r.Length)
			if r.Offset-end <= e.opts.CoalesceGap && newEnd-cur.rng.Offset <= e.opts.MaxCoalesced {
				cur.rng.Length = newEnd - cur.rng.Offset
				cur.members = append(cur.members, i)
				continue
			}
			groups = append(groups, cur)
			cur = group{key: key, rng: r, members: []int{i}}
		}
		groups = append(groups, cur)
	}
	return groups
}

// readBatch implements zarr.Store.ReadBatch for both stores.
func (e *engine) readBatch(ctx context.Context, reqs []zarr.ByteRange, done func(int, []byte, error)) {
	var wg sync.WaitGroup
	for _, g := range e.plan(reqs) {
		select {
		case e.sem <- struct{}{}:
		case <-ctx.Done():
			for _, i := range g.members {
				done(i, nil, ctx.Err())
			}
			continue
		}
		wg.Go(func() {
			defer func() { <-e.sem }()
			e.serve(ctx, g, reqs, done)
		})
	}
	wg.Wait()
}

func (e *engine) serve(ctx context.Context, g group, reqs []zarr.ByteRange, done func(int, []byte, error)) {
	buf, err := e.fetch(ctx, g.key, g.rng)
	if err != nil && len(g.members) > 1 && ctx.Err() == nil && !retryable(err) && !errors.Is(err, fs.ErrNotExist) {
		// One member past the end of the object must not fail its
		// neighbours: ask one by one. (A server that keeps failing, or a
		// missing object, fails them all alike.)
		for _, i := range g.members {
			e.serve(ctx, group{key: g.key, rng: reqs[i], members: []int{i}}, reqs, done)
		}
		return
	}
	if err != nil {
		for _, i := range g.members {
			done(i, nil, err)
		}
		return
	}
	if len(g.members) == 1 {
		done(g.members[0], buf, nil)
		return
	}
	// Each request gets its own buffer, so that callers release them
	// independently; the copy is cheap beside the round trips merging saves.
	for _, i := range g.members {
		r := reqs[i]
		part := e.pool.Get(int(r.Length))
		copy(part, buf[r.Offset-g.rng.Offset:])
		done(i, part, nil)
	}
	e.pool.Release(buf)
}

// fetch GETs one range with retries and returns it in a pooled buffer.
func (e *engine) fetch(ctx context.Context, key string, rng zarr.ByteRange) ([]byte, error) {
	if rng.Offset >= 0 && rng.Length == 0 {
		return []byte{}, nil
	}
	start := time.Now()
	var last error = errors.New("unknown")
	if p := e.lastFailure.Load(); p != nil {
		last = *p
	}
	if down := e.failingFor(start); down > e.budget(last) {
		if !e.probing.CompareAndSwap(false, true) {
			return nil, fmt.Errorf("cloud: GET %s (%s): not sent, the server has failed every request for %v, lately with: %w",
				e.g.url(key), describe(rng), down.Round(time.Millisecond), last)
		}
		defer e.probing.Store(false)
	}
	deadline := start.Add(e.opts.RetryTimeout)
	var prevErr error
	for attempt := 1; ; attempt++ {
		timeout := min(e.opts.RequestTimeout, time.Until(deadline))
		actx, cancel := context.WithTimeout(ctx, timeout)
		buf, err := e.attempt(actx, key, rng)
		cancel()
		if err == nil {
			e.failingSince.Store(0)
			return buf, nil
		}
		if timeout < e.opts.RequestTimeout && prevErr != nil && errors.Is(err, context.DeadlineExceeded) {
			// The last attempt only had what was left of the budget; the
			// error before it says more about what is wrong.
			err = prevErr
		}
		prevErr = err
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cloud: GET %s (%s): %w", e.g.url(key), describe(rng), ctx.Err())
		}
		if !retryable(err) {
			return nil, fmt.Errorf("cloud: GET %s (%s): %w", e.g.url(key), describe(rng), err)
		}
		now := time.Now()
		e.lastFailure.Store(&err)
		e.failingSince.CompareAndSwap(0, now.UnixNano())
		budget := e.budget(err)
		if down := e.failingFor(now); down > budget {
			return nil, fmt.Errorf("cloud: GET %s (%s): not retried, the server has failed every request for %v: %w",
				e.g.url(key), describe(rng), down.Round(time.Millisecond), err)
		}
		// Full jitter: a sleep drawn from [0, 50ms·2^attempt), capped at
		// 5 s, so that many readers throttled together come back spread out.
		backoff := time.Duration(rand.Int64N(int64(min(50*time.Millisecond<<min(attempt, 10), 5*time.Second))))
		if now.Add(backoff).After(start.Add(budget)) || now.Add(backoff).After(deadline) {
			return nil, fmt.Errorf("cloud: GET %s (%s): gave up after %d attempts in %v: %w",
				e.g.url(key), describe(rng), attempt, time.Since(start).Round(time.Millisecond), err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, fmt.Errorf("cloud: GET %s (%s): %w", e.g.url(key), describe(rng), ctx.Err())
		}
	}
}

// budget is how long a GET failing with err is retried: an endpoint that
// cannot be reached gets ConnectTimeout, one that answers with throttling
// or 5xx gets RetryTimeout.
func (e *engine) budget(err error) time.Duration {
	if unreachable(err) {
		return e.opts.ConnectTimeout
	}
	return e.opts.RetryTimeout
}

// unreachable says whether err is a failure to get any answer at all:
// refused, reset or unanswered connections, rather than a status.
func unreachable(err error) bool {
	var status statusCoder
	if errors.As(err, &status) && status.HTTPStatusCode() != 0 {
		return false
	}
	var code errorCoder
	if errors.As(err, &code) && code.ErrorCode() != "" {
		return false
	}
	return retryable(err) && !errors.Is(err, errTruncated)
}

// errTruncated marks a body that ended before the bytes its headers
// promised; the next attempt may get them all.
var errTruncated = errors.New("truncated body")

// errStatus carries an HTTP status that needs no S3 error parsing.
type errStatus struct {
	code int
	msg  string
}

func (e *errStatus) Error() string { return fmt.Sprintf("HTTP %d %s", e.code, e.msg) }

// statusCoder is what the S3 SDK's response errors and errStatus share.
type statusCoder interface{ HTTPStatusCode() int }

func (e *errStatus) HTTPStatusCode() int { return e.code }

// errorCoder is the S3 error code (SlowDown, NoSuchKey, ...).
type errorCoder interface{ ErrorCode() string }

func retryable(err error) bool {
	var code errorCoder
	if errors.As(err, &code) {
		switch code.ErrorCode() {
		case "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
			"InternalError", "ServiceUnavailable", "XMinioServerNotInitialized":
			return true
		}
	}
	var status statusCoder
	if errors.As(err, &status) {
		c := status.HTTPStatusCode()
		if c >= 500 || c == http.StatusTooManyRequests || c == http.StatusRequestTimeout {
			return true
		}
		if c != 0 {
			return false
		}
	}
	var netErr net.Error
	return errors.Is(err, errTruncated) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) ||
		(errors.As(err, &netErr) && netErr.Timeout())
}

// attempt is one GET: it checks that the body holds exactly the bytes
// asked for and reads it into a pooled buffer.
func (e *engine) attempt(ctx context.Context, key string, rng zarr.ByteRange) ([]byte, error) {
	resp, err := e.g.get(ctx, key, rng)
	if err != nil {
		return nil, err
	}
	defer resp.body.Close()
	want, err := expectedLength(rng, resp)
	if err != nil {
		return nil, err
	}
	if want > e.opts.MaxObjectBytes {
		return nil, fmt.Errorf("object claims %d bytes, more than the %d allowed", want, e.opts.MaxObjectBytes)
	}
	if want < 0 {
		return e.readUnsized(resp.body)
	}
	buf := e.pool.Get(int(want))
	if n, err := io.ReadFull(resp.body, buf); err != nil {
		e.pool.Release(buf)
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, fmt.Errorf("%w: %d of %d bytes", errTruncated, n, want)
		}
		return nil, fmt.Errorf("reading body after %d of %d bytes: %w", n, want, err)
	}
	return buf, nil
}

// expectedLength checks that the response holds the bytes rng asked for
// and says how many they are (-1 when only the body can tell).
func expectedLength(rng zarr.ByteRange, resp *response) (int64, error) {
	switch {
	case rng.Offset >= 0 && rng.Length >= 0:
		if resp.first != rng.Offset {
			return 0, fmt.Errorf("server sent bytes from %d, not from %d", resp.first, rng.Offset)
		}
		if resp.length >= 0 && resp.length < rng.Length {
			return 0, fmt.Errorf("bytes %d-%d past the end of the object (%d bytes from %d)", rng.Offset, rng.Offset+rng.Length, resp.length, rng.Offset)
		}
		return rng.Length, nil
	case resp.total < 0:
		return resp.length, nil
	case rng.Offset < 0:
		want := min(-rng.Offset, resp.total)
		if resp.first != resp.total-want || (resp.length >= 0 && resp.length != want) {
			return 0, fmt.Errorf("asked for the last %d bytes of %d, got %d from %d", -rng.Offset, resp.total, resp.length, resp.first)
		}
		return want, nil
	default:
		want := resp.total - rng.Offset
		if resp.first != rng.Offset || (resp.length >= 0 && resp.length != want) {
			return 0, fmt.Errorf("asked for bytes %d-end of %d, got %d from %d", rng.Offset, resp.total, resp.length, resp.first)
		}
		return want, nil
	}
}

// readUnsized reads a body without Content-Length, up to MaxObjectBytes.
func (e *engine) readUnsized(body io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(body, e.opts.MaxObjectBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	if int64(len(data)) > e.opts.MaxObjectBytes {
		return nil, fmt.Errorf("object is over the %d bytes allowed", e.opts.MaxObjectBytes)
	}
	buf := e.pool.Get(len(data))
	copy(buf, data)
	return buf, nil
}

// rangeHeader is the HTTP Range for rng, "" for a whole object.
func rangeHeader(rng zarr.ByteRange) string {
	switch {
	case rng.Offset < 0:
		return fmt.Sprintf("bytes=%d", rng.Offset)
	case rng.Length < 0 && rng.Offset == 0:
		return ""
	case rng.Length < 0:
		return fmt.Sprintf("bytes=%d-", rng.Offset)
	default:
		return fmt.Sprintf("bytes=%d-%d", rng.Offset, rng.Offset+rng.Length-1)
	}
}

func describe(rng zarr.ByteRange) string {
	switch {
	case rng.Offset < 0:
		return fmt.Sprintf("last %d bytes", -rng.Offset)
	case rng.Length < 0:
		return fmt.Sprintf("bytes %d-end", rng.Offset)
	default:
		return fmt.Sprintf("bytes %d-%d", rng.Offset, rng.Offset+rng.Length-1)
	}
}
