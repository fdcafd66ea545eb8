package cloud

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Faults a faultProxy can inject into a GET.
const (
	pass        = ""
	slowDown    = "503 SlowDown"
	resetMid    = "reset mid-body"
	truncate    = "truncated body"
	shortLength = "short length"
	stall       = "stall"
	internal    = "500 InternalError"
)

// faultProxy is a reverse proxy on 127.0.0.1 in front of MinIO that breaks
// object GETs in chosen ways. fault picks the fault for the nth GET
// (counting from 1).
type faultProxy struct {
	target string
	fault  func(n int64) string
	gets   atomic.Int64
	delay  time.Duration // before every GET, for reads to be in flight
	srv    *httptest.Server
	client *http.Client

	mu     sync.Mutex
	faults map[string]int
}

func newFaultProxy(t *testing.T, target string, fault func(n int64) string) *faultProxy {
	p := &faultProxy{
		target: target,
		fault:  fault,
		client: &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}},
		faults: map[string]int{},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request) {
	fault := pass
	isGet := r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "" && r.URL.Path != "/"
	if isGet {
		fault = p.fault(p.gets.Add(1))
		p.mu.Lock()
		p.faults[fault]++
		p.mu.Unlock()
		if p.delay > 0 {
			select {
			case <-time.After(p.delay):
			case <-r.Context().Done():
				return
			}
		}
	}
	switch fault {
	case slowDown:
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
		return
	case internal:
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>`)
		return
	case stall:
		<-r.Context().Done()
		return
	}

	// SigV4 signs the Host header: MinIO must see the one the client used.
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.target+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host
	out.ContentLength = r.ContentLength
	resp, err := p.client.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	ok := resp.StatusCode/100 == 2 && len(body) > 1
	switch {
	case fault == shortLength && ok && resp.StatusCode == http.StatusPartialContent:
		// A consistent but short answer, as a buggy server might give.
		first, _, total, _ := parseContentRange(resp.Header.Get("Content-Range"))
		half := int64(len(body) / 2)
		w.Header().Set("Content-Length", strconv.FormatInt(half, 10))
		w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(first+half-1, 10)+"/"+strconv.FormatInt(total, 10))
		w.WriteHeader(resp.StatusCode)
		w.Write(body[:half])
	case (fault == truncate || fault == resetMid) && ok:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(resp.StatusCode)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		if fault == truncate {
			panic(http.ErrAbortHandler)
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		conn.(*net.TCPConn).SetLinger(0) // close with RST
		conn.Close()
	default:
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}
}

func (p *faultProxy) count(fault string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults[fault]
}
