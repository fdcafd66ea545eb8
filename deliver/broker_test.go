package deliver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBrokerPassesRing: a client with the token gets the memfd, sees what
// the server writes, frees slots by line, and its hang-up marks the ring
// gone; a wrong token or a malformed line gets nothing.
func TestBrokerPassesRing(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "b.sock")
	b, err := Listen(sock, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- b.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	r, err := NewRing("test", 2, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	token, unregister, err := b.Register(r)
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()

	for _, tc := range []struct{ name, send, want string }{
		{"wrong token", "0123\n", "error: no such ring"},
		{"line too long", strings.Repeat("x", 300), ""},
	} {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(conn, tc.send)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 128)
		n, _ := conn.Read(buf)
		if !strings.HasPrefix(string(buf[:n]), tc.want) || (tc.want == "" && n != 0) {
			t.Errorf("%s: answered %q, want %q", tc.name, buf[:n], tc.want)
		}
		conn.Close()
	}

	slot, err := r.Acquire(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	copy(slot.Mem, "crops")
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "%s\n", token)
	buf, oob := make([]byte, 16), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil || string(buf[:n]) != "ok\n" {
		t.Fatalf("answered %q, %v", buf[:n], err)
	}
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fds[0], 0, int(r.Size()), unix.PROT_READ, unix.MAP_SHARED)
	unix.Close(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if got := string(mem[slot.Offset : slot.Offset+5]); got != "crops" {
		t.Errorf("client's mapping reads %q", got)
	}
	select {
	case <-r.Fetched():
	case <-time.After(5 * time.Second):
		t.Fatal("ring not marked fetched")
	}
	fmt.Fprintf(conn, "%d %d\n", slot.Index, slot.Gen)
	deadline := time.Now().Add(5 * time.Second)
	for r.Leased() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r.Leased() != 0 {
		t.Error("the client's release did not free the slot")
	}
	conn.Close()
	select {
	case <-r.Gone():
	case <-time.After(5 * time.Second):
		t.Fatal("ring not marked gone after the client hung up")
	}
}
