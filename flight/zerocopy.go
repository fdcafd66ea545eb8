package flight

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // the codec every other message goes through
	"google.golang.org/grpc/mem"
)

// arrow-go's flight.Writer copies every record batch twice before gRPC
// sees it: the IPC body into a bytes.Buffer, then the whole FlightData into
// a fresh protobuf encoding, and gRPC copies it a third time into HTTP/2
// frames. Here the FlightData protobuf is framed by hand around the Arrow
// buffers themselves, handed to gRPC as a mem.BufferSlice, so the only
// copy left in this process is gRPC's into its frames. The price: the
// cropper's buffers must not be reused until gRPC has written them out,
// which it signals by freeing them (sendDone).

// codec is the server's gRPC codec: the protobuf codec, except for
// flightMessage, which is already framed.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec { return codec{proto: encoding.GetCodecV2("proto")} }

func (c codec) Name() string { return c.proto.Name() }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*flightMessage); ok {
		return m.buffers(), nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

// Protobuf tags of FlightData (Flight.proto): data_header = 2 and
// data_body = 1000, app_metadata = 3, all length-delimited.
var (
	tagDataHeader  = protowireTag(2)
	tagAppMetadata = protowireTag(3)
	tagDataBody    = protowireTag(1000)
)

func protowireTag(field uint64) []byte {
	return binary.AppendUvarint(nil, field<<3|2)
}

// flightMessage is one FlightData: an IPC message header and its body, the
// body as the Arrow buffers (and padding) in order.
type flightMessage struct {
	prefix []byte   // tag, length and header; then the body's tag and length
	body   [][]byte // not copied
	done   *sendDone
}

// buffers gives gRPC the message without copying the body. Buffers big
// enough for gRPC to reference-count are tracked by done; smaller ones are
// copied (gRPC would not tell when it is finished with them).
func (m *flightMessage) buffers() mem.BufferSlice {
	out := make(mem.BufferSlice, 0, 1+len(m.body))
	out = append(out, mem.SliceBuffer(m.prefix))
	for _, part := range m.body {
		if mem.IsBelowBufferPoolingThreshold(cap(part)) {
			out = append(out, mem.SliceBuffer(append([]byte(nil), part...)))
			continue
		}
		m.done.pending.Add(1)
		out = append(out, mem.NewBuffer(&part, m.done))
	}
	m.done.arm()
	return out
}

// sendDone is closed once gRPC has freed every tracked buffer of a
// message. It is the mem.BufferPool of those buffers: gRPC returns each
// with Put when it is done with it.
type sendDone struct {
	// pending counts tracked buffers not yet returned, plus one until armed,
	// so that a buffer returned before the last is counted cannot close ch.
	pending atomic.Int64
	ch      chan struct{}
}

func newSendDone() *sendDone {
	d := &sendDone{ch: make(chan struct{})}
	d.pending.Store(1)
	return d
}

func (d *sendDone) arm() { d.Put(nil) }

func (d *sendDone) Put(*[]byte) {
	if d.pending.Add(-1) == 0 {
		close(d.ch)
	}
}

// Get is never called: gRPC only allocates from pools it owns.
func (d *sendDone) Get(length int) *[]byte {
	b := make([]byte, length)
	return &b
}

// bodyParts collects the slices an IPC payload writes as its body.
type bodyParts struct {
	parts [][]byte
	size  int
}

func (b *bodyParts) Write(p []byte) (int, error) {
	b.parts = append(b.parts, p)
	b.size += len(p)
	return len(p), nil
}

// payloadSender is an ipc.PayloadWriter sending each payload as one
// flightMessage. After a Write of the ipc.Writer over it, last tells when
// gRPC has finished with that record batch's buffers.
type payloadSender struct {
	stream grpc.ServerStream
	last   *sendDone
	// appMeta, when set, is sent as the next record batch's app_metadata
	// (shared-memory delivery); the first payload, the schema, has none.
	appMeta  []byte
	payloads int
}

func (s *payloadSender) Start() error { return nil }
func (s *payloadSender) Close() error { return nil }

func (s *payloadSender) WritePayload(p ipc.Payload) error {
	meta := p.Meta()
	var header []byte
	if meta != nil {
		header = meta.Bytes()
		defer meta.Release()
	}
	var body bodyParts
	if err := p.SerializeBody(&body); err != nil {
		return fmt.Errorf("framing record batch: %w", err)
	}
	if body.size > math.MaxInt32 {
		return fmt.Errorf("record batch of %d bytes exceeds the 2 GiB a gRPC message can hold: use a smaller batch_size", body.size)
	}
	prefix := make([]byte, 0, len(header)+len(s.appMeta)+32)
	prefix = append(prefix, tagDataHeader...)
	prefix = binary.AppendUvarint(prefix, uint64(len(header)))
	prefix = append(prefix, header...)
	if s.payloads > 0 && s.appMeta != nil {
		prefix = append(prefix, tagAppMetadata...)
		prefix = binary.AppendUvarint(prefix, uint64(len(s.appMeta)))
		prefix = append(prefix, s.appMeta...)
		s.appMeta = nil
	}
	s.payloads++
	prefix = append(prefix, tagDataBody...)
	prefix = binary.AppendUvarint(prefix, uint64(body.size))
	s.last = newSendDone()
	return s.stream.SendMsg(&flightMessage{prefix: prefix, body: body.parts, done: s.last})
}
