package flight

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	const yamlSpec = "seed: 1\nsources:\n  a: {store: a.zarr, array: v, crop: {x: 2}}\n"
	tests := []struct {
		name    string
		cmd     string
		want    Request
		wantErr string
	}{
		{name: "bare yaml", cmd: yamlSpec, want: Request{Spec: yamlSpec, Split: "train", WorldSize: 1}},
		{name: "bare json spec", cmd: `{"seed": 1, "sources": {}}`, want: Request{Spec: `{"seed": 1, "sources": {}}`, Split: "train", WorldSize: 1}},
		{name: "json spec with an object named spec is not an envelope", cmd: `{"spec": {"a": 1}}`, want: Request{Spec: `{"spec": {"a": 1}}`, Split: "train", WorldSize: 1}},
		{
			name: "envelope",
			cmd:  `{"spec": "seed: 1", "spec_dir": "/data", "split": "val", "epoch": 3, "rank": 1, "world_size": 2, "streams": 4, "raw": true}`,
			want: Request{Spec: "seed: 1", SpecDir: "/data", Split: "val", Epoch: 3, Rank: 1, WorldSize: 2, Streams: 4, Raw: true},
		},
		{name: "empty", cmd: " \n", wantErr: "empty"},
		{name: "unknown envelope field", cmd: `{"spec": "x", "sead": 1}`, wantErr: `unknown field "sead"`},
		{name: "relative spec_dir", cmd: `{"spec": "x", "spec_dir": "data"}`, wantErr: "spec_dir"},
		{name: "rank outside world", cmd: `{"spec": "x", "rank": 2, "world_size": 2}`, wantErr: "rank 2"},
		{name: "negative epoch", cmd: `{"spec": "x", "epoch": -1}`, wantErr: "epoch -1"},
		{name: "too many streams", cmd: `{"spec": "x", "streams": 100000}`, wantErr: "streams 100000"},
		{name: "empty spec", cmd: `{"spec": ""}`, wantErr: "spec is empty"},
		{
			name: "skip",
			cmd:  `{"spec": "x", "streams": 2, "skip": [0, 3]}`,
			want: Request{Spec: "x", Split: "train", WorldSize: 1, Streams: 2, Skip: []int64{0, 3}},
		},
		{name: "negative skip", cmd: `{"spec": "x", "skip": [1, -2]}`, wantErr: "skip[1] = -2 is negative"},
		{name: "skip not one per stream", cmd: `{"spec": "x", "streams": 3, "skip": [1, 2]}`, wantErr: "skip has 2 counts, want one per stream (3)"},
		{name: "skip not a list of integers", cmd: `{"spec": "x", "skip": [1.5]}`, wantErr: "skip"},
		{name: "not utf-8", cmd: "seed: \xff\n", wantErr: "UTF-8"},
		{
			name: "shm slots",
			cmd:  `{"spec": "x", "delivery": "shm", "shm_slots": 3}`,
			want: Request{Spec: "x", Split: "train", WorldSize: 1, Delivery: "shm", ShmSlots: 3},
		},
		{name: "shm slots too few", cmd: `{"spec": "x", "delivery": "shm", "shm_slots": 2}`, wantErr: "shm_slots 2 outside [3, 64]"},
		{name: "shm slots too many", cmd: `{"spec": "x", "delivery": "shm", "shm_slots": 65}`, wantErr: "shm_slots 65 outside [3, 64]"},
		{name: "shm slots without shm", cmd: `{"spec": "x", "shm_slots": 4}`, wantErr: `shm_slots 4 without delivery "shm"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand([]byte(tt.cmd))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCommand(%q) error = %v, want one containing %q", tt.cmd, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCommand(%q): %v", tt.cmd, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseCommand(%q) = %+v, want %+v", tt.cmd, got, tt.want)
			}
		})
	}
}

func TestTicketRoundTrip(t *testing.T) {
	req := Request{Spec: "seed: 2", SpecDir: "/x", Split: "train", Epoch: 5, Rank: 1, WorldSize: 3}
	orig := ticket{PlanKey: req.planKey(), Request: req, Stream: 2, Streams: 4}
	got, err := decodeTicket(orig.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, orig) {
		t.Fatalf("decodeTicket(encode(%+v)) = %+v", orig, got)
	}
	if shard, n := got.shard(); shard != 1*4+2 || n != 3*4 {
		t.Fatalf("shard() = %d/%d, want 6/12", shard, n)
	}

	bad := []struct {
		name   string
		ticket ticket
		raw    string
		want   string
	}{
		{name: "stream out of range", ticket: ticket{PlanKey: req.planKey(), Request: req, Stream: 4, Streams: 4}, want: "stream 4"},
		{name: "no streams", ticket: ticket{PlanKey: req.planKey(), Request: req, Stream: 0, Streams: 0}, want: "streams 0"},
		{name: "plan key of another spec", ticket: ticket{PlanKey: (&Request{Spec: "other"}).planKey(), Request: req, Streams: 1}, want: "plan_key"},
		{name: "not json", raw: "\x00\x01", want: "flight ticket"},
		{name: "negative skip", ticket: ticket{PlanKey: req.planKey(), Request: req, Streams: 1, Skip: -1}, want: "skip -1"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.raw)
			if tt.raw == "" {
				data = tt.ticket.encode()
			}
			if _, err := decodeTicket(data); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decodeTicket error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func FuzzParseCommand(f *testing.F) {
	f.Add([]byte("seed: 1\nbatch_size: 4\nsources:\n  a: {store: a.zarr, array: v, crop: {x: 2}}\n"))
	f.Add([]byte(`{"spec": "seed: 1", "spec_dir": "/data", "split": "val", "epoch": 3, "rank": 1, "world_size": 2, "streams": 4, "raw": true}`))
	f.Add([]byte(`{"spec": {"a": 1}}`))
	f.Add([]byte(`{"spec": "x", "streams": 2, "skip": [0, 7]}`))
	f.Add([]byte(`{"plan_key": "00", "request": {"spec": "x"}, "stream": 0, "streams": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseCommand(data)
		if err != nil {
			return
		}
		if req.Spec == "" || req.Split == "" || req.Rank < 0 || req.Rank >= req.WorldSize || req.Streams < 0 || req.Streams > maxStreams {
			t.Fatalf("ParseCommand(%q) accepted an invalid request %+v", data, req)
		}
		for _, k := range req.Skip {
			if k < 0 || (req.Streams > 0 && len(req.Skip) != req.Streams) {
				t.Fatalf("ParseCommand(%q) accepted an invalid skip %v", data, req.Skip)
			}
		}
		tk := ticket{PlanKey: req.planKey(), Request: req, Streams: 1}
		back, err := decodeTicket(tk.encode())
		if err != nil || !reflect.DeepEqual(back, tk) {
			t.Fatalf("ticket of %+v does not round-trip: %+v, %v", req, back, err)
		}
	})
}

func FuzzDecodeTicket(f *testing.F) {
	req := Request{Spec: "seed: 2", Split: "train", WorldSize: 2, Rank: 1}
	f.Add(ticket{PlanKey: req.planKey(), Request: req, Stream: 1, Streams: 3}.encode())
	f.Add([]byte(`{"plan_key": "", "request": {}, "stream": -1, "streams": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := decodeTicket(data)
		if err != nil {
			return
		}
		shard, n := tk.shard()
		if shard < 0 || shard >= n {
			t.Fatalf("decodeTicket(%q) accepted shard %d of %d", data, shard, n)
		}
	})
}
