package flight

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// memoryBudget admits batches into memory across every stream of the
// server: a stream holds its batches' cost while it runs, and one that
// cannot fit waits, up to a deadline, for others to finish, rather than
// the server being killed for running out of memory.
type memoryBudget struct {
	limit int64
	wait  time.Duration

	mu    sync.Mutex
	used  int64
	freed chan struct{} // closed, and replaced, whenever cost is released
}

func newMemoryBudget(limit int64, wait time.Duration) *memoryBudget {
	if limit <= 0 {
		return nil
	}
	return &memoryBudget{limit: limit, wait: wait, freed: make(chan struct{})}
}

// acquire takes n bytes of the budget, waiting up to the budget's wait
// (or ctx) for them; it fails with ResourceExhausted, never blocks for ever.
func (m *memoryBudget) acquire(ctx context.Context, n int64, what string) error {
	if m == nil {
		return nil
	}
	if n > m.limit {
		return status.Errorf(codes.ResourceExhausted, "%s needs %s, more than the server's whole memory budget of %s (loader serve -memory); use a smaller batch_size",
			what, megabytes(n), megabytes(m.limit))
	}
	timer := time.NewTimer(m.wait)
	defer timer.Stop()
	for {
		m.mu.Lock()
		if m.used+n <= m.limit {
			m.used += n
			m.mu.Unlock()
			return nil
		}
		freed, used := m.freed, m.used
		m.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-timer.C:
			return status.Errorf(codes.ResourceExhausted, "%s needs %s of the server's memory budget; %s of its %s stayed in use by other streams for %v (loader serve -memory); retry later",
				what, megabytes(n), megabytes(used), megabytes(m.limit), m.wait)
		}
	}
}

// tryAcquire takes n bytes if they are free now.
func (m *memoryBudget) tryAcquire(n int64) bool {
	if m == nil {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.used+n > m.limit {
		return false
	}
	m.used += n
	return true
}

func (m *memoryBudget) release(n int64) {
	if m == nil || n == 0 {
		return
	}
	m.mu.Lock()
	m.used -= n
	close(m.freed)
	m.freed = make(chan struct{})
	m.mu.Unlock()
}

// recordBytes is the size of a record batch of rows rows of schema: every
// column is fixed-width.
func recordBytes(schema *arrow.Schema, rows int) int64 {
	var perRow int64
	for _, f := range schema.Fields() {
		perRow += fixedBytes(f.Type)
	}
	return perRow * int64(rows)
}

func fixedBytes(t arrow.DataType) int64 {
	switch t := t.(type) {
	case arrow.ExtensionType:
		return fixedBytes(t.StorageType())
	case *arrow.FixedSizeListType:
		return int64(t.Len()) * fixedBytes(t.Elem())
	case arrow.FixedWidthDataType:
		return int64(max(t.BitWidth()/8, 1))
	}
	return 0
}

// DefaultMemory is the memory budget when none is given: three quarters
// of the machine's memory, or of the cgroup's limit when that is lower; 0
// (no budget) when neither can be read.
func DefaultMemory() int64 {
	total := memTotal()
	if limit := cgroupLimit(); limit > 0 && (total == 0 || limit < total) {
		total = limit
	}
	return total / 4 * 3
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// cgroupLimit reads the memory limit of this process's cgroup (v2, else
// v1); 0 when there is none.
func cgroupLimit() int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && v > 0 && v < 1<<60 {
			return v
		}
	}
	return 0
}

// describeBatch names a stream's batches in admission errors.
func describeBatch(batchSize int, bytes int64) string {
	return fmt.Sprintf("a batch of %d samples (%s)", batchSize, megabytes(bytes))
}

func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
