// Package progress shows how far a long command is (bytes done, rate and
// time left) on one line of a terminal, and stays silent when its output
// is not one, so that logs and pipes get no carriage returns.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Options adjust a Bar; the zero value suits a command.
type Options struct {
	// IsTerminal says whether w is a terminal; default: a terminal ioctl
	// on an *os.File.
	IsTerminal func(w io.Writer) bool
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Every is the least time between two redraws; default 250 ms.
	Every time.Duration
}

// Bar is one progress line. Its methods are safe for concurrent use; on a
// writer that is not a terminal they do nothing.
type Bar struct {
	w     io.Writer
	label string
	now   func() time.Time
	every time.Duration
	on    bool

	mu    sync.Mutex
	start time.Time
	drawn time.Time // zero: nothing on the line
	shown bool
	done  int64
	total int64
}

// New returns a bar labelled label on w.
func New(w io.Writer, label string, o Options) *Bar {
	if o.IsTerminal == nil {
		o.IsTerminal = IsTerminal
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Every <= 0 {
		o.Every = 250 * time.Millisecond
	}
	return &Bar{w: w, label: label, now: o.Now, every: o.Every, on: o.IsTerminal(w), start: o.Now()}
}

// IsTerminal says whether w is an *os.File open on a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Update records done of total bytes (total ≤ 0: unknown) and redraws the
// line when the last redraw is old enough.
func (b *Bar) Update(done, total int64) {
	if !b.on {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done, b.total = max(b.done, done), total
	now := b.now()
	if b.shown && now.Sub(b.drawn) < b.every {
		return
	}
	b.drawn, b.shown = now, true
	fmt.Fprintf(b.w, "\r\x1b[K%s", Line(b.label, b.done, b.total, now.Sub(b.start)))
}

// Clear erases the line, so that other output starts on a clean one; the
// next Update draws it again.
func (b *Bar) Clear() {
	if !b.on {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shown {
		fmt.Fprint(b.w, "\r\x1b[K")
		b.shown = false
	}
}

// Done erases the line for good.
func (b *Bar) Done() {
	b.Clear()
	b.mu.Lock()
	b.on = false
	b.mu.Unlock()
}

// Line is the text of a bar: label, bytes done (of total), rate and the
// time left at that rate.
func Line(label string, done, total int64, elapsed time.Duration) string {
	line := label + ": " + Bytes(done)
	if total > 0 {
		line += fmt.Sprintf(" of %s (%.0f%%)", Bytes(total), 100*float64(done)/float64(total))
	}
	if elapsed <= 0 || done <= 0 {
		return line
	}
	rate := float64(done) / elapsed.Seconds()
	line += ", " + Bytes(int64(rate)) + "/s"
	if total > 0 && done < total {
		left := time.Duration(float64(total-done) / rate * float64(time.Second))
		line += ", " + left.Round(time.Second).String() + " left"
	}
	return line
}

// Bytes writes n in decimal units, three significant digits.
func Bytes(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	v, u := float64(n), 0
	for v >= 999.5 && u < len(units)-1 {
		v /= 1000
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.3g %s", v, units[u])
}
