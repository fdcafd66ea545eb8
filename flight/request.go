package flight

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"unicode/utf8"
)

// Request is what a client asks for in a FlightDescriptor command: either
// this JSON envelope, or the bare spec text (YAML or JSON), which stands for
// an envelope with every other field at its default.
type Request struct {
	// Spec is the experiment spec, YAML or JSON text.
	Spec string `json:"spec"`
	// SpecDir is the absolute directory relative paths in Spec resolve
	// against; empty means the server's working directory.
	SpecDir string `json:"spec_dir,omitempty"`
	// Split is the spec's split to sample; "train" when empty.
	Split string `json:"split,omitempty"`
	Epoch int64  `json:"epoch"`
	// Rank and WorldSize place this client among data-parallel trainers,
	// each reading a disjoint share of the epoch. WorldSize 0 means 1.
	Rank      int `json:"rank"`
	WorldSize int `json:"world_size,omitempty"`
	// Streams is how many endpoints (tickets) to hand out for this rank;
	// 0 takes the spec's default.
	Streams int `json:"streams,omitempty"`
	// Raw keeps the stored dtype, without normalisation or casting.
	Raw bool `json:"raw,omitempty"`
	// Skip, when given, holds one count per stream: the batches of the
	// stream a client already has (resuming mid-epoch), which the stream
	// then starts after. Each is at most the stream's batch count, which
	// the endpoints' app_metadata tells.
	Skip []int64 `json:"skip,omitempty"`
	// Delivery is "arrow" (the default: crops in the record batches) or
	// "shm" (crops in shared memory, unix sockets only; shm.go).
	Delivery string `json:"delivery,omitempty"`
	// ShmSlots is the size of each stream's ring for delivery "shm", in
	// batches; 0 takes the default (shm.go).
	ShmSlots int `json:"shm_slots,omitempty"`
}

// maxStreams bounds a request's endpoints: each is a goroutine and two
// batches of memory while it is read.
const maxStreams = 1024

// ParseCommand reads a FlightDescriptor command: a JSON envelope (an object
// with a string "spec" member) or bare spec text. Defaults are filled in,
// except Streams, which needs the spec.
func ParseCommand(cmd []byte) (Request, error) {
	var req Request
	trimmed := bytes.TrimSpace(cmd)
	if len(trimmed) == 0 {
		return req, errors.New("flight command: empty, expected an experiment spec or a JSON request envelope")
	}
	if isEnvelope(trimmed) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, fmt.Errorf("flight command: request envelope: %w", err)
		}
		if dec.More() {
			return req, errors.New("flight command: request envelope: trailing data after the JSON object")
		}
	} else {
		req.Spec = string(cmd)
	}
	if req.Split == "" {
		req.Split = "train"
	}
	if req.WorldSize == 0 {
		req.WorldSize = 1
	}
	return req, req.validate()
}

// isEnvelope tells an envelope from a JSON spec: only an envelope has a
// string member "spec".
func isEnvelope(cmd []byte) bool {
	if cmd[0] != '{' {
		return false
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(cmd, &probe) != nil {
		return false
	}
	spec, ok := probe["spec"]
	return ok && len(spec) > 0 && spec[0] == '"'
}

func (r *Request) validate() error {
	switch {
	case r.Spec == "":
		return errors.New("flight command: request envelope: spec is empty")
	case !utf8.ValidString(r.Spec) || !utf8.ValidString(r.SpecDir) || !utf8.ValidString(r.Split):
		// Tickets carry the request as JSON, which cannot hold other bytes.
		return errors.New("flight command: spec, spec_dir and split must be UTF-8 text")
	case r.SpecDir != "" && !filepath.IsAbs(r.SpecDir):
		return fmt.Errorf("flight command: request envelope: spec_dir %q is not an absolute path", r.SpecDir)
	case r.Epoch < 0:
		return fmt.Errorf("flight command: request envelope: epoch %d is negative", r.Epoch)
	case r.WorldSize < 1 || r.WorldSize > 1<<20:
		return fmt.Errorf("flight command: request envelope: world_size %d outside [1, 2^20]", r.WorldSize)
	case r.Rank < 0 || r.Rank >= r.WorldSize:
		return fmt.Errorf("flight command: request envelope: rank %d outside [0, world_size %d)", r.Rank, r.WorldSize)
	case r.Streams < 0 || r.Streams > maxStreams:
		return fmt.Errorf("flight command: request envelope: streams %d outside [1, %d]", r.Streams, maxStreams)
	case r.Delivery != "" && r.Delivery != deliveryArrow && r.Delivery != deliveryShm:
		return fmt.Errorf("flight command: request envelope: delivery %q: want %q or %q", r.Delivery, deliveryArrow, deliveryShm)
	case r.ShmSlots != 0 && r.Delivery != deliveryShm:
		return fmt.Errorf("flight command: request envelope: shm_slots %d without delivery %q", r.ShmSlots, deliveryShm)
	case r.ShmSlots != 0 && (r.ShmSlots < minShmSlots || r.ShmSlots > maxShmSlots):
		return fmt.Errorf("flight command: request envelope: shm_slots %d outside [%d, %d]", r.ShmSlots, minShmSlots, maxShmSlots)
	case len(r.Skip) > maxStreams:
		return fmt.Errorf("flight command: request envelope: skip has %d counts, more than the %d streams a request may have", len(r.Skip), maxStreams)
	case r.Streams > 0 && len(r.Skip) > 0 && len(r.Skip) != r.Streams:
		return fmt.Errorf("flight command: request envelope: skip has %d counts, want one per stream (%d)", len(r.Skip), r.Streams)
	}
	for i, k := range r.Skip {
		if k < 0 {
			return fmt.Errorf("flight command: request envelope: skip[%d] = %d is negative", i, k)
		}
	}
	return nil
}

// checkSkip checks the skip list against the streams a request resolved to
// and their batch counts (count(i) for stream i).
func (r *Request) checkSkip(streams int, count func(stream int) int64) error {
	if len(r.Skip) == 0 {
		return nil
	}
	if len(r.Skip) != streams {
		return fmt.Errorf("flight command: request envelope: skip has %d counts, want one per stream (%d)", len(r.Skip), streams)
	}
	for i, k := range r.Skip {
		if n := count(i); k > n {
			return fmt.Errorf("flight command: request envelope: skip[%d] = %d, but stream %d has only %d batches", i, k, i, n)
		}
	}
	return nil
}

// planKey identifies the plan a request needs: the same spec text read from
// the same directory gives the same plan, whatever split, epoch or rank.
func (r *Request) planKey() string {
	h := sha256.New()
	h.Write([]byte(r.SpecDir))
	h.Write([]byte{0})
	h.Write([]byte(r.Spec))
	return hex.EncodeToString(h.Sum(nil))
}

// ticket is what a DoGet needs to serve one stream on its own, even from a
// server that has never seen the request (restarted, or another replica):
// the whole request, the stream and the plan key to find a cached plan.
// Skip is the request's skip count for this stream (the request carries
// none, so that a ticket stays small whatever the streams).
type ticket struct {
	PlanKey string  `json:"plan_key"`
	Request Request `json:"request"`
	Stream  int     `json:"stream"`
	Streams int     `json:"streams"`
	Skip    int64   `json:"skip,omitempty"`
}

func (t ticket) encode() []byte {
	data, _ := json.Marshal(t)
	return data
}

func decodeTicket(data []byte) (ticket, error) {
	var t ticket
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, fmt.Errorf("flight ticket: %w", err)
	}
	if err := t.Request.validate(); err != nil {
		return t, fmt.Errorf("flight ticket: %w", err)
	}
	switch {
	case t.Streams < 1 || t.Streams > maxStreams:
		return t, fmt.Errorf("flight ticket: streams %d outside [1, %d]", t.Streams, maxStreams)
	case t.Stream < 0 || t.Stream >= t.Streams:
		return t, fmt.Errorf("flight ticket: stream %d outside [0, %d)", t.Stream, t.Streams)
	case t.Skip < 0:
		return t, fmt.Errorf("flight ticket: skip %d is negative", t.Skip)
	case t.PlanKey != t.Request.planKey():
		return t, errors.New("flight ticket: plan_key does not match the request it carries")
	}
	return t, nil
}

// shard maps a stream of a rank onto the epoch's shards, so that ranks and
// their streams together read every sample once.
func (t ticket) shard() (shard, nShards int) {
	return t.Request.Rank*t.Streams + t.Stream, t.Request.WorldSize * t.Streams
}
