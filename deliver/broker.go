package deliver

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The side socket's protocol, one connection per ring: the client sends
// the ring's token and a newline; the broker answers "ok\n" with the
// memfd attached (SCM_RIGHTS), or "error: why\n". The client then sends
// one line "<slot> <generation>\n" per batch it has freed, for as long as
// it reads the stream.

// maxLine bounds a line of the side protocol: a token or a release.
const maxLine = 128

// Broker serves rings' memfds on a unix socket of its own, next to the
// server's, and routes the releases clients send back to their rings.
type Broker struct {
	path string
	lis  *net.UnixListener
	log  *slog.Logger

	mu    sync.Mutex
	rings map[string]*Ring
}

// Listen creates the broker's socket at path, owner-only like the
// server's; a socket file left there by a dead process is replaced.
func Listen(path string, log *slog.Logger) (*Broker, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("deliver: %s exists and is not a socket; not replacing it", path)
		}
		if conn, err := net.Dial("unix", path); err == nil {
			conn.Close()
			return nil, fmt.Errorf("deliver: a process already listens on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("deliver: removing stale socket %s: %w", path, err)
		}
	}
	old := syscall.Umask(0o177)
	lis, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("deliver: listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("deliver: making %s owner-only: %w", path, err)
	}
	return &Broker{path: path, lis: lis, log: log, rings: make(map[string]*Ring)}, nil
}

// Path is the broker's socket, for clients to connect to.
func (b *Broker) Path() string { return b.path }

// Register makes r reachable by the returned token until unregister is
// called.
func (b *Broker) Register(r *Ring) (token string, unregister func(), err error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, fmt.Errorf("deliver: making a ring token: %w", err)
	}
	token = hex.EncodeToString(raw[:])
	b.mu.Lock()
	b.rings[token] = r
	b.mu.Unlock()
	return token, func() {
		b.mu.Lock()
		delete(b.rings, token)
		b.mu.Unlock()
	}, nil
}

// Serve answers connections until ctx is cancelled or the listener fails,
// then closes the socket (removing its file).
func (b *Broker) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { b.lis.Close() })
	defer stop()
	defer wg.Wait()
	for {
		conn, err := b.lis.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("deliver: accepting on %s: %w", b.path, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			closeOnDone := context.AfterFunc(ctx, func() { conn.Close() })
			defer closeOnDone()
			defer conn.Close()
			if err := b.serveConn(conn); err != nil && !errors.Is(err, net.ErrClosed) {
				b.log.Warn("shared-memory client", "socket", b.path, "err", err)
			}
		}()
	}
}

// Close stops accepting connections and removes the socket file.
func (b *Broker) Close() error { return b.lis.Close() }

func (b *Broker) serveConn(conn *net.UnixConn) error {
	rd := bufio.NewReaderSize(conn, maxLine)
	line, err := readLine(rd)
	if err != nil {
		return fmt.Errorf("reading the ring token: %w", err)
	}
	// Marked fetched under the lock that unregistering takes: once a ring
	// is unregistered, either its client has it or none ever will.
	b.mu.Lock()
	ring := b.rings[line]
	if ring != nil {
		ring.markFetched()
	}
	b.mu.Unlock()
	if ring == nil {
		_, _ = conn.Write([]byte("error: no such ring (stream ended or wrong token)\n"))
		return errors.New("unknown ring token")
	}
	if _, _, err := conn.WriteMsgUnix([]byte("ok\n"), unix.UnixRights(ring.FD()), nil); err != nil {
		ring.markGone() // the client never got it
		return fmt.Errorf("passing the memfd: %w", err)
	}
	for {
		line, err := readLine(rd)
		if errors.Is(err, io.EOF) {
			// Only a clean hang-up says the client has unmapped the ring;
			// after a protocol error it may still be reading it.
			ring.markGone()
			return nil
		}
		if err != nil {
			return err
		}
		index, gen, err := ParseRelease(line)
		if err != nil {
			return err
		}
		if err := ring.Release(index, gen); err != nil {
			return err
		}
	}
}

// readLine reads one line of at most maxLine bytes, without its newline.
func readLine(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("side protocol: line longer than %d bytes", maxLine)
	}
	if err != nil {
		if len(line) > 0 && errors.Is(err, io.EOF) {
			return "", fmt.Errorf("side protocol: connection closed mid-line: %w", io.ErrUnexpectedEOF)
		}
		return "", err
	}
	return strings.TrimSuffix(string(line), "\n"), nil
}

// ParseRelease reads a release line: "<slot> <generation>".
func ParseRelease(line string) (index int, gen uint64, err error) {
	a, b, ok := strings.Cut(line, " ")
	if !ok {
		return 0, 0, fmt.Errorf("side protocol: release %q: want \"<slot> <generation>\"", line)
	}
	i, err := strconv.ParseUint(a, 10, 31)
	if err != nil {
		return 0, 0, fmt.Errorf("side protocol: release %q: slot: %w", line, err)
	}
	g, err := strconv.ParseUint(b, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("side protocol: release %q: generation: %w", line, err)
	}
	return int(i), g, nil
}
