// Package flight serves an experiment's random crops as Arrow Flight record
// batches: GetFlightInfo validates a spec and hands out one ticket per
// stream, DoGet crops that stream's shard of the epoch and streams one record
// batch per batch of samples, the tensors laid over the cropper's buffers.
package flight
