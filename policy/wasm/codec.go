package wasm

// The JSON of the ABI: inputs written by hand into pooled buffers (the request path allocates as
// little as it can), outputs decoded strictly.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/swrproxy/swrproxy/httpcache"
)

// Header is what a hook sees of a message's fields. *fasthttp.RequestHeader and
// *fasthttp.ResponseHeader satisfy it; Pairs and HTTPHeader adapt the rest.
type Header interface {
	VisitAll(func(key, value []byte))
}

// Pairs is a Header of name/value pairs, in order.
type Pairs [][2]string

// VisitAll calls f for each pair.
func (p Pairs) VisitAll(f func(key, value []byte)) {
	for _, kv := range p {
		f([]byte(kv[0]), []byte(kv[1]))
	}
}

// HTTPHeader adapts an http.Header, names sorted for a stable order.
func HTTPHeader(h http.Header) Header { return httpHeader(h) }

type httpHeader http.Header

func (h httpHeader) VisitAll(f func(key, value []byte)) {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		for _, v := range h[n] {
			f([]byte(n), []byte(v))
		}
	}
}

// RequestIn is what on_request sees.
type RequestIn struct {
	Method, Host, Path, Query []byte
	Header                    Header
}

// RequestOut is what on_request answered; the zero value changes nothing.
type RequestOut struct {
	Key    string // replaces the request target in the cache key (HasKey)
	HasKey bool
	KeyAdd string // added to the cache key
	Bypass bool
	Set    [][2]string // request fields to set, sorted by name
	Remove []string
}

// ResponseIn is what on_response sees.
type ResponseIn struct {
	Status                    int
	Method, Host, Path, Query []byte
	Header                    Header
}

// ResponseOut is what on_response answered; nil durations say nothing.
type ResponseOut struct {
	TTL, StaleWhileRevalidate, StaleIfError *time.Duration
	NoStore                                 bool // "cache": false
	Set                                     [][2]string
	Remove                                  []string
	Tags                                    []string
}

// Request calls on_request; a module without it answers the zero RequestOut.
func (m *Module) Request(ctx context.Context, in *RequestIn) (RequestOut, error) {
	if !m.Has(OnRequest) {
		return RequestOut{}, nil
	}
	buf := m.buffer()
	defer m.bufs.Put(buf)
	b := append((*buf)[:0], `{"method":`...)
	b = appendString(b, in.Method)
	b = append(b, `,"host":`...)
	b = appendString(b, in.Host)
	b = appendCommon(b, in.Path, in.Query, in.Header)
	*buf = b
	out, err := m.call(ctx, OnRequest, b)
	if err != nil || out == nil {
		return RequestOut{}, err
	}
	r, err := DecodeRequestOut(out)
	if err != nil {
		return RequestOut{}, &Error{Hook: OnRequest, Reason: ReasonBadOutput, Err: err}
	}
	return r, nil
}

// Response calls on_response; a module without it answers the zero ResponseOut.
func (m *Module) Response(ctx context.Context, in *ResponseIn) (ResponseOut, error) {
	if !m.Has(OnResponse) {
		return ResponseOut{}, nil
	}
	buf := m.buffer()
	defer m.bufs.Put(buf)
	b := fmt.Appendf((*buf)[:0], `{"status":%d,"method":`, in.Status)
	b = appendString(b, in.Method)
	b = append(b, `,"host":`...)
	b = appendString(b, in.Host)
	b = appendCommon(b, in.Path, in.Query, in.Header)
	*buf = b
	out, err := m.call(ctx, OnResponse, b)
	if err != nil || out == nil {
		return ResponseOut{}, err
	}
	r, err := DecodeResponseOut(out)
	if err != nil {
		return ResponseOut{}, &Error{Hook: OnResponse, Reason: ReasonBadOutput, Err: err}
	}
	return r, nil
}

func (m *Module) buffer() *[]byte {
	if b, ok := m.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 4096)
	return &b
}

// appendCommon appends path, query and headers, and closes the object. Header pairs that would
// take the input past maxInput are left out.
func appendCommon(b, path, query []byte, h Header) []byte {
	b = append(b, `,"path":`...)
	b = appendString(b, path)
	b = append(b, `,"query":`...)
	b = appendString(b, query)
	b = append(b, `,"headers":[`...)
	first := true
	if h != nil {
		h.VisitAll(func(k, v []byte) {
			if len(b)+len(k)+len(v)+16 > maxInput {
				return
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '[')
			b = appendString(b, k)
			b = append(b, ',')
			b = appendString(b, v)
			b = append(b, ']')
		})
	}
	return append(b, "]}"...)
}

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// Limits on what a hook may answer.
const (
	maxEdits     = 64
	maxFieldSize = 8 << 10
	maxKey       = 8 << 10
	maxKeyAdd    = 1 << 10
	maxTags      = 64
	maxTag       = 256
	maxSeconds   = 1 << 31
)

// decodeStrict decodes one JSON object into v, refusing unknown members and trailing data.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("data after the JSON object")
	}
	return nil
}

// DecodeRequestOut decodes and checks on_request's output.
func DecodeRequestOut(b []byte) (RequestOut, error) {
	var w struct {
		Key    *string           `json:"key"`
		KeyAdd string            `json:"key_add"`
		Bypass bool              `json:"bypass"`
		Set    map[string]string `json:"set_headers"`
		Remove []string          `json:"remove_headers"`
	}
	if err := decodeStrict(b, &w); err != nil {
		return RequestOut{}, err
	}
	var out RequestOut
	if w.Key != nil {
		k := *w.Key
		if !strings.HasPrefix(k, "/") || len(k) > maxKey || strings.IndexFunc(k, func(r rune) bool { return r < 0x21 || r == 0x7f }) >= 0 {
			return RequestOut{}, fmt.Errorf("key %q is not an origin-form target of at most %d bytes", trunc(k), maxKey)
		}
		out.Key, out.HasKey = k, true
	}
	if len(w.KeyAdd) > maxKeyAdd || !utf8.ValidString(w.KeyAdd) {
		return RequestOut{}, fmt.Errorf("key_add over %d bytes or not UTF-8", maxKeyAdd)
	}
	out.KeyAdd, out.Bypass = w.KeyAdd, w.Bypass
	var err error
	if out.Set, out.Remove, err = edits(w.Set, w.Remove); err != nil {
		return RequestOut{}, err
	}
	return out, nil
}

// DecodeResponseOut decodes and checks on_response's output.
func DecodeResponseOut(b []byte) (ResponseOut, error) {
	var w struct {
		TTL    *float64          `json:"ttl"`
		SWR    *float64          `json:"stale_while_revalidate"`
		SIE    *float64          `json:"stale_if_error"`
		Cache  *bool             `json:"cache"`
		Set    map[string]string `json:"set_headers"`
		Remove []string          `json:"remove_headers"`
		Tags   []string          `json:"tags"`
	}
	if err := decodeStrict(b, &w); err != nil {
		return ResponseOut{}, err
	}
	var out ResponseOut
	for _, d := range []struct {
		name string
		v    *float64
		dst  **time.Duration
	}{{"ttl", w.TTL, &out.TTL}, {"stale_while_revalidate", w.SWR, &out.StaleWhileRevalidate}, {"stale_if_error", w.SIE, &out.StaleIfError}} {
		if d.v == nil {
			continue
		}
		if math.IsNaN(*d.v) || *d.v < 0 || *d.v > maxSeconds {
			return ResponseOut{}, fmt.Errorf("%s %v is not a number of seconds from 0 to 2^31", d.name, *d.v)
		}
		dur := time.Duration(*d.v * float64(time.Second))
		*d.dst = &dur
	}
	out.NoStore = w.Cache != nil && !*w.Cache
	if len(w.Tags) > maxTags {
		return ResponseOut{}, fmt.Errorf("%d tags, more than %d", len(w.Tags), maxTags)
	}
	for _, t := range w.Tags {
		if t == "" || len(t) > maxTag || strings.IndexFunc(t, func(r rune) bool { return r <= 0x20 || r == 0x7f }) >= 0 {
			return ResponseOut{}, fmt.Errorf("tag %q is empty, over %d bytes, or holds a space or control character", trunc(t), maxTag)
		}
	}
	out.Tags = w.Tags
	var err error
	if out.Set, out.Remove, err = edits(w.Set, w.Remove); err != nil {
		return ResponseOut{}, err
	}
	return out, nil
}

// edits checks header edits as the rules file checks its own: names that are tokens of at most
// 256 bytes and no framing field (httpcache.FramingField), values without control characters
// other than tab.
func edits(set map[string]string, remove []string) ([][2]string, []string, error) {
	if len(set) > maxEdits || len(remove) > maxEdits {
		return nil, nil, fmt.Errorf("more than %d header edits", maxEdits)
	}
	var out [][2]string
	for n, v := range set {
		if err := editable("set_headers", n); err != nil {
			return nil, nil, err
		}
		if len(v) > maxFieldSize || !httpcache.IsFieldValue(v) {
			return nil, nil, fmt.Errorf("set_headers: the value of %s holds a control character, or is over %d bytes", n, maxFieldSize)
		}
		out = append(out, [2]string{n, v})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	for _, n := range remove {
		if err := editable("remove_headers", n); err != nil {
			return nil, nil, err
		}
	}
	return out, remove, nil
}

// editable checks one edited field's name.
func editable(what, name string) error {
	switch {
	case len(name) > 256 || !httpcache.IsToken(name):
		return fmt.Errorf("%s: %q is not a field name", what, trunc(name))
	case httpcache.FramingField(name):
		return fmt.Errorf("%s: %s frames the message and may not be edited", what, name)
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
