package progress

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// clock is a settable clock for the bars under test.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLine(t *testing.T) {
	for _, tc := range []struct {
		name        string
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{"half with ETA", 500e6, 1e9, 10 * time.Second, "gen: 500 MB of 1 GB (50%), 50 MB/s, 10s left"},
		{"unknown total", 1234, 0, time.Second, "gen: 1.23 kB, 1.23 kB/s"},
		{"nothing yet", 0, 2e9, 0, "gen: 0 B of 2 GB (0%)"},
		{"finished", 3e9, 3e9, time.Minute, "gen: 3 GB of 3 GB (100%), 50 MB/s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Line("gen", tc.done, tc.total, tc.elapsed); got != tc.want {
				t.Errorf("Line(%d, %d, %v) = %q, want %q", tc.done, tc.total, tc.elapsed, got, tc.want)
			}
		})
	}
}

func TestQuietWhenNotATerminal(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"a buffer, default check", Options{}},
		{"check injected false", Options{IsTerminal: func(io.Writer) bool { return false }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			b := New(&out, "stats", tc.opts)
			b.Update(10, 100)
			b.Update(100, 100)
			b.Clear()
			b.Done()
			if out.Len() != 0 {
				t.Errorf("wrote %q to a writer that is not a terminal", out.String())
			}
		})
	}
}

func TestDrawsOnATerminal(t *testing.T) {
	var out bytes.Buffer
	c := &clock{t: time.Unix(1000, 0)}
	b := New(&out, "bench gen", Options{IsTerminal: func(io.Writer) bool { return true }, Now: c.now, Every: time.Second})
	c.t = c.t.Add(2 * time.Second)
	b.Update(200e6, 1e9)
	c.t = c.t.Add(500 * time.Millisecond) // too soon: not drawn
	b.Update(300e6, 1e9)
	c.t = c.t.Add(1500 * time.Millisecond)
	b.Update(400e6, 1e9)
	b.Done()
	b.Update(500e6, 1e9) // after Done: nothing
	want := "\r\x1b[Kbench gen: 200 MB of 1 GB (20%), 100 MB/s, 8s left" +
		"\r\x1b[Kbench gen: 400 MB of 1 GB (40%), 100 MB/s, 6s left" +
		"\r\x1b[K"
	if got := out.String(); got != want {
		t.Errorf("terminal got\n%q\nwant\n%q", got, want)
	}
	if strings.Contains(out.String(), "300 MB") {
		t.Error("redrew sooner than Every")
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1 kB", 1_500_000: "1.5 MB", 2_600_000_000: "2.6 GB", 999_600: "1 MB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
