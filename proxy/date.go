package proxy

// The Date of a reply (RFC 9110 §6.6.1). fasthttp's server would stamp every reply with the
// current time and drops a Date set through Add or Set ("managed automatically"), so the
// listeners run with Fiber's DisableDefaultDate and swrproxy sets Date itself: a reply from the
// cache carries the stored Date (its age is in Age, RFC 9111 §4), a streamed one the origin's,
// and any reply still without one (the origin sent none, or swrproxy answered itself) gets the
// current time in the guard.

import (
	"bufio"
	"bytes"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/swrproxy/swrproxy/httpcache"
)

// dateLineMax bounds the Date line setDate can parse (field name, value, CRLFs); a longer value
// is not an HTTP-date anyway, and the reply gets the current time instead.
const dateLineMax = 256

// dateParser turns a Date value into a field of a fasthttp response header: ReadTrailer is the
// one public fasthttp API that adds a Date field to a ResponseHeader (it parses fields into the
// header's field list, where the writer sends them with the others). Pooled, so that a cache hit
// stays free of allocations.
type dateParser struct {
	line []byte
	src  bytes.Reader
	br   *bufio.Reader
}

var dateParsers = sync.Pool{New: func() any {
	p := &dateParser{line: make([]byte, 0, dateLineMax)}
	p.br = bufio.NewReaderSize(&p.src, dateLineMax)
	return p
}}

// setDate makes v the reply's Date field, replacing any. A value that does not fit a header
// line (too long, or with CR, LF or NUL) is not set.
func setDate(rh *fasthttp.ResponseHeader, v []byte) {
	if len(v) == 0 || len(v) > dateLineMax-len("Date: \r\n\r\n") || !httpcache.IsFieldValue(b2s(v)) {
		return
	}
	rh.Del(fasthttp.HeaderDate)
	p := dateParsers.Get().(*dateParser)
	p.line = append(append(append(p.line[:0], "Date: "...), v...), "\r\n\r\n"...)
	p.src.Reset(p.line)
	p.br.Reset(&p.src)
	_ = rh.ReadTrailer(p.br) // the line is well-formed and Date is an allowed trailer name: no error
	dateParsers.Put(p)
}

// requestTime is when the server began handling ctx's request (fasthttp reads the clock for every
// request, just before the handler): the hit path's "now", without reading the clock again. A
// context that no server filled in (a test calling the handler itself) gets the current time.
func requestTime(ctx *fasthttp.RequestCtx) time.Time {
	if t := ctx.Time(); !t.IsZero() {
		return t
	}
	return time.Now()
}

// ensureDate gives the reply the current time as its Date unless it has one (RFC 9110 §6.6.1:
// an origin with a clock sends Date; a proxy may add one). A reply from the cache has its stored
// Date: the clock is read only for the others.
func ensureDate(rh *fasthttp.ResponseHeader) {
	if len(rh.Peek(fasthttp.HeaderDate)) > 0 {
		return
	}
	setDate(rh, currentDate(time.Now()))
}

// formattedDate is an HTTP-date and the Unix second it stands for.
type formattedDate struct {
	sec int64
	b   []byte
}

var lastDate atomic.Pointer[formattedDate]

// currentDate returns now as an HTTP-date, formatted once per second (the format costs more
// than the rest of a cached reply's fields). The bytes are shared: read only.
func currentDate(now time.Time) []byte {
	sec := now.Unix()
	if d := lastDate.Load(); d != nil && d.sec == sec {
		return d.b
	}
	d := &formattedDate{sec: sec, b: now.UTC().AppendFormat(make([]byte, 0, len(http.TimeFormat)), http.TimeFormat)}
	lastDate.Store(d)
	return d.b
}
