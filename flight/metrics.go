package flight

import (
	"context"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/lsio-loader/lsio-loader/cropper"
	"github.com/lsio-loader/lsio-loader/metrics"
	"github.com/lsio-loader/lsio-loader/store/kv"
	"github.com/lsio-loader/lsio-loader/zarr"
	"google.golang.org/grpc/status"
)

// Observer is told what the server does, for monitoring (metrics.Metrics).
type Observer interface {
	BatchSent(metrics.Sent)
	// Reading adds delta to the store reads in flight.
	Reading(delta int)
	Failed(kind string)
}

// quiet is the Observer of a server without monitoring.
type quiet struct{}

func (quiet) BatchSent(metrics.Sent) {}
func (quiet) Reading(int)            {}
func (quiet) Failed(string)          {}

// observer is what the server reports to.
func (s *Server) observer() Observer {
	if s.obs == nil {
		return quiet{}
	}
	return s.obs
}

// observeReads makes open's stores report their reads in flight to obs.
func observeReads(open OpenFunc, obs Observer) OpenFunc {
	if obs == nil {
		return open
	}
	return func(ctx context.Context, url string) (zarr.Store, error) {
		st, err := open(ctx, url)
		if err != nil {
			return nil, err
		}
		return observedStore{st, obs}, nil
	}
}

// observedStore counts each byte range from its request to its completion.
type observedStore struct {
	zarr.Store
	obs Observer
}

func (s observedStore) ReadBatch(ctx context.Context, reqs []kv.ByteRange, done func(i int, data []byte, err error)) {
	s.obs.Reading(len(reqs))
	s.Store.ReadBatch(ctx, reqs, func(i int, data []byte, err error) {
		s.obs.Reading(-1)
		done(i, data, err)
	})
}

// batchSent reports a batch the transport has taken: its crops and the
// bytes of its tensors as the client receives them (the cropper's buffers
// may be larger than the batch).
func (s *Server) batchSent(schema *arrow.Schema, b *cropper.Batch, began time.Time) {
	var perRow int64
	for _, f := range schema.Fields() {
		if _, ok := f.Type.(*tensorType); ok {
			perRow += fixedBytes(f.Type)
		}
	}
	s.observer().BatchSent(metrics.Sent{
		Crops:          len(b.Samples),
		BytesRead:      b.Stats.BytesRead,
		BytesDecoded:   b.Stats.BytesDecoded,
		BytesDelivered: perRow * int64(len(b.Samples)),
		Took:           time.Since(began),
	})
}

// failed counts err, if any, by the gRPC code the client is given.
func (s *Server) failed(err error) {
	if err == nil {
		return
	}
	st, _ := status.FromError(grpcError(err))
	kind := st.Code().String() // e.g. InvalidArgument
	var b strings.Builder
	for i, r := range kind {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteString(strings.ToLower(string(r)))
	}
	s.observer().Failed(b.String())
}

// CacheBytes is what `serve -cache` holds now (0 without a cache).
func (s *Server) CacheBytes() int64 {
	if s.cache == nil {
		return 0
	}
	used, _ := s.cache.Used()
	return used
}

// PoolBytes is the memory allowed to the blocked order's chunk pools made
// so far, which the server's memory limit counts.
func (s *Server) PoolBytes() int64 {
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	return s.pooled
}

// WillNeed passes hints on to the store, when it takes them.
func (s observedStore) WillNeed(ranges []kv.ByteRange) {
	if wn, ok := s.Store.(zarr.WillNeeder); ok {
		wn.WillNeed(ranges)
	}
}
