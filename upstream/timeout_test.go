package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAnOriginThatNeverAnswersTimesOut(t *testing.T) {
	stop := make(chan struct{})
	srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	t.Cleanup(func() { close(stop) }) // before srv.Close, which waits for handlers
	tests := []struct {
		name       string
		timeout    time.Duration // the client's
		ctxTimeout time.Duration // the caller's
	}{
		// The caller's 10s is a backstop: a client that never times out fails on elapsed, not by hanging.
		{"client timeout", 200 * time.Millisecond, 10 * time.Second},
		{"caller deadline", 10 * time.Second, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, srv.URL, tt.timeout)
			ctx, cancel := context.WithTimeout(t.Context(), tt.ctxTimeout)
			defer cancel()
			start := time.Now()
			resp, err := c.Do(ctx, &Request{Method: http.MethodGet, URI: "/slow"})
			elapsed := time.Since(start)
			if resp != nil {
				resp.Body.Close()
			}
			var ue *Error
			if !errors.As(err, &ue) {
				t.Fatalf("Do = %v, %v; want an *upstream.Error", resp, err)
			}
			if !ue.Timeout() {
				t.Errorf("Timeout() = false for %v, want true", err)
			}
			if ue.Target != srv.URL+"/slow" {
				t.Errorf("Target = %q, want %q", ue.Target, srv.URL+"/slow")
			}
			if elapsed > 5*time.Second {
				t.Errorf("Do returned after %v, want about 200ms", elapsed)
			}
		})
	}
}

func TestARefusedConnectionIsNotATimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	c := newClient(t, "http://"+addr, 5*time.Second)
	resp, err := c.Do(t.Context(), &Request{Method: http.MethodGet, URI: "/"})
	var ue *Error
	if !errors.As(err, &ue) {
		t.Fatalf("Do = %v, %v; want an *upstream.Error", resp, err)
	}
	if ue.Timeout() {
		t.Errorf("Timeout() = true for %v, want false", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Do error = %v, want it to wrap ECONNREFUSED", err)
	}
	if !strings.HasPrefix(err.Error(), "upstream http://"+addr+"/: ") {
		t.Errorf("Error() = %q, want it to start with the target", err.Error())
	}
}

func TestIdleTimeoutCutsOnlyAStalledBody(t *testing.T) {
	const idle = 200 * time.Millisecond
	stop := make(chan struct{})
	srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		switch r.URL.Path {
		case "/stall":
			io.WriteString(w, "first part")
			w.(http.Flusher).Flush()
			select { // then nothing, until the client gives up
			case <-r.Context().Done():
			case <-stop:
			}
		case "/trickle":
			for i := range 12 { // a byte every 50ms for 600ms: never idle for long
				if i > 0 {
					time.Sleep(50 * time.Millisecond)
				}
				w.Write([]byte{byte('a' + i)})
				w.(http.Flusher).Flush()
			}
		}
	})
	t.Cleanup(func() { close(stop) })
	c := newClient(t, srv.URL, 5*time.Second)

	tests := []struct {
		path     string
		wantBody string
		wantErr  bool
	}{
		{"/stall", "first part", true},
		{"/trickle", "abcdefghijkl", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			resp, err := c.Do(ctx, &Request{Method: http.MethodGet, URI: tt.path})
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			body := IdleTimeout(resp.Body, idle, cancel)
			start := time.Now()
			got, err := io.ReadAll(body)
			elapsed := time.Since(start)
			body.Close()
			if (err != nil) != tt.wantErr {
				t.Errorf("reading %s: error %v, want error: %v", tt.path, err, tt.wantErr)
			}
			if string(got) != tt.wantBody {
				t.Errorf("read %q from %s, want %q", got, tt.path, tt.wantBody)
			}
			if elapsed > 5*time.Second {
				t.Errorf("reading %s took %v, want well under 5s", tt.path, elapsed)
			}
			if ctx.Err() == nil {
				t.Error("Close did not cancel the request's context")
			}
		})
	}
}

// TestAnOriginHeaderBlockOverTheBoundIsAnError: the header block is read whole, so its size is
// bounded (MaxResponseHeaderBytes) rather than left to the origin.
func TestAnOriginHeaderBlockOverTheBoundIsAnError(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 40 {
			w.Header().Set(fmt.Sprintf("X-Big-%d", i), strings.Repeat("x", 32<<10))
		}
		w.WriteHeader(200)
	})
	c := newClient(t, o.URL, 5*time.Second)
	if resp, err := c.Do(context.Background(), &Request{Method: "GET", URI: "/"}); err == nil {
		resp.Body.Close()
		t.Fatalf("a %d KiB header block was accepted; want an error above %d KiB", 40*32, MaxResponseHeaderBytes>>10)
	}
}
