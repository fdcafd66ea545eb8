package flight

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/lsio-loader/lsio-loader/cropper"
	"github.com/lsio-loader/lsio-loader/sampler"
)

// batcher deals a shard's samples into batches. Under on_error: skip a
// batch that lost samples is topped up from the samples after it, so
// batches stay full.
type batcher struct {
	next  func() ([]sampler.Sample, bool)
	carry []sampler.Sample
}

func newBatcher(batches iter.Seq[[]sampler.Sample]) (*batcher, func()) {
	next, stop := iter.Pull(batches)
	return &batcher{next: next}, stop
}

// take returns the next n samples or as many as are left (none at the end).
func (b *batcher) take(n int) []sampler.Sample {
	k := len(b.peek(n))
	out := slices.Clone(b.carry[:k])
	b.carry = b.carry[k:]
	return out
}

// peek returns the next n samples or as many as are left, without taking
// them; the slice is valid until the next take.
func (b *batcher) peek(n int) []sampler.Sample {
	for len(b.carry) < n {
		more, ok := b.next()
		if !ok {
			break
		}
		b.carry = append(b.carry, more...)
	}
	return b.carry[:min(n, len(b.carry))]
}

// errShardExhausted ends a stream whose remaining samples were all skipped.
var errShardExhausted = errors.New("every remaining sample of the shard was skipped")

// skipper crops under on_error: skip, counting what it skips.
type skipper struct {
	log *slog.Logger
	// skipped counts this stream's skipped samples; total the server's.
	skipped int64
	total   *atomic.Int64
	// failedRun is how many samples in a row have failed: past maxRun,
	// the failure is the store's, not a sample's, and the stream fails.
	failedRun, maxRun int
}

// crop fills b with size samples from samples and, where those fail
// alone, from bt: a sample whose crop fails (a corrupt or unreadable
// chunk, named in the log) is dropped and replaced by the next one.
func (k *skipper) crop(ctx context.Context, c *cropper.Cropper, bt *batcher, samples []sampler.Sample, size int, b *cropper.Batch) error {
	var one cropper.Batch
	verified := 0 // samples[:verified] cropped alone without error
	for {
		if len(samples) == 0 {
			return errShardExhausted
		}
		err := c.Crop(ctx, samples, b)
		if err == nil || ctx.Err() != nil {
			return err
		}
		keep := samples[:verified]
		for _, s := range samples[verified:] {
			if err := c.Crop(ctx, []sampler.Sample{s}, &one); err != nil {
				if ctx.Err() != nil {
					return err
				}
				k.failedRun++
				if k.failedRun > k.maxRun {
					return fmt.Errorf("on_error skip: the last %d samples all failed, so the store rather than a chunk is at fault; lately: %w", k.failedRun, err)
				}
				k.skipped++
				k.total.Add(1)
				k.log.Warn("sample skipped (on_error: skip)", "epoch_index", s.Index, "err", err)
				continue
			}
			k.failedRun = 0
			keep = append(keep, s)
		}
		verified = len(keep)
		samples = append(keep, bt.take(size-len(keep))...)
	}
}

// SkippedSamples is how many samples streams have skipped under
// on_error: skip since the server started.
func (s *Server) SkippedSamples() int64 { return s.skipped.Load() }
