package proxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/swrproxy/swrproxy/proxy"
)

// BenchmarkL1HitLargeBodyOverTCP is issue 14's "large bodies": one client on a kept-alive
// loopback connection asks for a cached 64 KiB (and 1 MiB) JSON body, through a real listener,
// so the cost includes how the stored body reaches the socket. "bare" is a fasthttp server
// sending the same bytes from memory (SetBodyRaw), measured in the same run: compare the
// ns/op of the pair.
//
//	go test ./proxy -run '^$' -bench LargeBodyOverTCP -benchmem
func BenchmarkL1HitLargeBodyOverTCP(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		body := []byte(`{"data":"` + strings.Repeat("0123456789abcdef", size/16)[:size-11] + `"}`)
		b.Run(fmt.Sprintf("size=%dKiB/bare", size>>10), func(b *testing.B) {
			srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
				ctx.Response.Header.Set("Content-Type", "application/json")
				ctx.Response.Header.Set("Cache-Control", "max-age=3600")
				ctx.Response.SetBodyRaw(body)
			}}
			benchGets(b, func(ln net.Listener) { srv.Serve(ln) }, func() { srv.Shutdown() }, size)
		})
		b.Run(fmt.Sprintf("size=%dKiB/swrproxy", size>>10), func(b *testing.B) {
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=3600")
				w.Header().Set("Content-Type", "application/json")
				w.Write(body)
			}))
			defer origin.Close()
			app := proxy.NewApp(newHandlerL1(b, origin.URL, 256<<20), nil)
			// Through KeepAccepting, as every listener: its connections send a large stored
			// body with its header in one writev.
			serve := func(ln net.Listener) { app.Listener(proxy.KeepAccepting(ln, slog.New(slog.DiscardHandler))) }
			benchGets(b, serve, func() { app.Shutdown() }, size)
		})
	}
}

// benchGets serves on a loopback listener and times GETs of /big on one kept-alive connection,
// reading each response whole (a body of size bytes, or its gzip: the client accepts none).
func benchGets(b *testing.B, serve func(net.Listener), stop func(), size int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go serve(ln)
	defer stop()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 64<<10)
	req := []byte("GET /big HTTP/1.1\r\nHost: bench.example\r\n\r\n")
	get := func() string {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		length, xcache := -1, ""
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) <= 2 {
				break
			}
			name, value, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(":"))
			switch strings.ToLower(string(name)) {
			case "content-length":
				length, _ = strconv.Atoi(strings.TrimSpace(string(value)))
			case "x-cache":
				xcache = strings.TrimSpace(string(value))
			}
		}
		if length != size {
			b.Fatalf("Content-Length %d, want %d", length, size)
		}
		if _, err := br.Discard(length); err != nil {
			b.Fatal(err)
		}
		return xcache
	}
	get() // the fill
	if x := get(); x != "" && x != "HIT" {
		b.Fatalf("X-Cache = %q, want HIT", x)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		get()
	}
}
