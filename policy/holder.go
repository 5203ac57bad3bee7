package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swrproxy/swrproxy/policy/wasm"
)

// Source says where a policy is loaded from: the settings SWR_POLICY_FILE and SWR_POLICY_WASM
// (with SWR_POLICY_POOL and SWR_POLICY_TIMEOUT), and whether the host is in the cache key
// (SWR_KEY_HOST), without which a rule may not match on the host.
type Source struct {
	File    string       // rules file; "" for none
	Module  string       // WebAssembly module; "" for none
	Wasm    wasm.Options // the module's pool, deadline and memory cap
	KeyHost bool
	// Grace is how long a replaced module stays open for the requests that still use it (a fill
	// calls on_response when the origin answers); default one minute.
	Grace time.Duration
}

// Policy is one loaded policy: immutable, safe for concurrent use.
type Policy struct {
	Rules      *Rules       // nil without a rules file
	FileHash   string       // hex SHA-256 of the rules file; "" without one
	Module     *wasm.Module // nil without a module
	ModuleHash string       // hex SHA-256 of the module; "" without one
	Loaded     time.Time    // when it was loaded

	holder *Holder // counts the hooks' failures
}

// Target returns the target part of the cache key of a GET of target (path and query as a
// client wrote it) under the rule that would apply to it, matched on the path, the query and the
// host only (the path decoded, as the proxy matches it): what PURGE and the invalidation after a
// write (RFC 9111 §4.4) name. A rule with a match.header condition is not seen here (no request
// fields), nor is a hook's key. The lines of the fields a rule keys on are left out;
// invalidating the target clears those keys too (tiers.Store.Variants).
func (p *Policy) Target(host []byte, target string) string {
	path, query, _ := strings.Cut(target, "?")
	dec, ok := DecodePath(path)
	if !ok {
		return target // the proxy never stores such a path under a rule (AmbiguousPath)
	}
	rule := p.Match(Request{Method: []byte("GET"), Host: host, Path: []byte(dec), Query: []byte(query)})
	if rule == nil {
		return target
	}
	return ParseKey(string(rule.AppendKey(nil, []byte(path), []byte(query), nil, nil))).Target
}

// Holder holds the policy in force and replaces it, atomically, on Reload. Requests read it with
// Current, which costs one atomic load; one that got a policy keeps using it to its end, so a
// reload never changes the policy under a request in flight.
type Holder struct {
	src Source
	log *slog.Logger
	cur atomic.Pointer[Policy]
	mu  sync.Mutex // one load at a time

	reloads, failures atomic.Int64
	lastErr           atomic.Pointer[string]
	errors            hookErrors
}

// NewHolder loads the policy of src; the error (the file, its line and field) stops start-up.
func NewHolder(ctx context.Context, src Source, log *slog.Logger) (*Holder, error) {
	h := &Holder{src: src, log: log}
	p, err := h.load(ctx)
	if err != nil {
		return nil, err
	}
	h.cur.Store(p)
	return h, nil
}

// Current returns the policy in force; nil for a nil Holder. (*Policy)(nil) is no policy: its
// methods answer as if nothing were configured.
func (h *Holder) Current() *Policy {
	if h == nil {
		return nil
	}
	return h.cur.Load()
}

// Route returns the rule of the policy that applies to req (Match), and reports whether no rule
// can be matched to it safely, so that the request must be passed through, never stored: its raw
// path (rawPath, as the client wrote it, before "?") is one origins resolve in different ways
// (AmbiguousPath), or the rule keys the path in either case (key.case_insensitive_path) while
// the path as keyed, lower-cased, would take another rule (a cache: false rule for /account/
// must not be dodged by /ACCOUNT/ reaching a later folding rule, which would store it as
// /account/). It does not allocate once its pooled buffers have grown.
func (p *Policy) Route(req Request, rawPath []byte) (rule *Rule, ambiguous bool) {
	if p == nil || p.Rules.Len() == 0 && !p.HasRequestHook() {
		return nil, false
	}
	rule = p.Rules.Match(req)
	if AmbiguousPath(rawPath) {
		return rule, true
	}
	if rule == nil || !rule.key.fold || !bytes.ContainsFunc(req.Path, func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
		return rule, false
	}
	buf := lowerBufs.Get().(*[]byte)
	defer lowerBufs.Put(buf)
	low := (*buf)[:0]
	for _, c := range req.Path {
		low = append(low, lower(c))
	}
	*buf = low
	req.Path = low
	return rule, p.Rules.Match(req) != rule
}

// lowerBufs hold the lower-cased paths of Route (matching lets the request escape, so a buffer
// on the stack would not stay there).
var lowerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// Match returns the rule of the policy that applies to req, or nil.
func (p *Policy) Match(req Request) *Rule {
	if p == nil {
		return nil
	}
	return p.Rules.Match(req)
}

// Reload loads the policy again from its source and puts it in force. When loading fails the
// policy in force stays, the failure is logged and counted, and the error says why.
func (h *Holder) Reload(ctx context.Context) (*Policy, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, err := h.load(ctx)
	if err != nil {
		h.failures.Add(1)
		msg := err.Error()
		h.lastErr.Store(&msg)
		h.log.Error("policy reload rejected; the policy in force stays", "err", err)
		return nil, err
	}
	old := h.cur.Swap(p)
	if old != nil && old.Module != nil {
		// Requests that got the old policy may still call its hooks (a fill calls on_response
		// when the origin answers): close its module once they are done with it.
		grace := h.src.Grace
		if grace <= 0 {
			grace = time.Minute
		}
		time.AfterFunc(grace, func() { old.Module.Close(context.Background()) })
	}
	h.reloads.Add(1)
	h.lastErr.Store(nil)
	h.log.Info("policy reloaded", "file", h.src.File, "rules", p.Rules.Len(), "file_hash", short(p.FileHash),
		"module", h.src.Module, "module_hash", short(p.ModuleHash))
	return p, nil
}

// load reads and compiles everything the source names.
func (h *Holder) load(ctx context.Context) (*Policy, error) {
	p := &Policy{Loaded: time.Now(), holder: h}
	if h.src.File != "" {
		data, err := os.ReadFile(h.src.File)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		rules, err := Parse(h.src.File, data)
		if err != nil {
			return nil, err
		}
		if rule, ok := rules.UsesHost(); ok && !h.src.KeyHost {
			return nil, &Error{File: h.src.File, Line: rule.Line, Field: fmt.Sprintf("rules[%d].match.host", rule.Index),
				Msg: "needs SWR_KEY_HOST=true: without the host in the cache key, requests for different hosts share entries while different rules apply to them"}
		}
		for _, w := range rules.Warnings() {
			h.log.Warn("policy: " + w)
		}
		sum := sha256.Sum256(data)
		p.Rules, p.FileHash = rules, hex.EncodeToString(sum[:])
	}
	if h.src.Module != "" {
		m, err := wasm.Load(ctx, h.src.Module, h.src.Wasm)
		if err != nil {
			return nil, err
		}
		p.Module, p.ModuleHash = m, m.Hash()
	}
	return p, nil
}

// Info is what GET /_swr/policy shows.
type Info struct {
	File       string    `json:"file,omitempty"`
	FileHash   string    `json:"file_hash,omitempty"`
	Rules      []string  `json:"rules"` // names (or "rules[i]" for a rule without one), in file order
	Module     string    `json:"module,omitempty"`
	ModuleHash string    `json:"module_hash,omitempty"`
	Hooks      []string  `json:"hooks"` // the hooks the module exports
	Loaded     time.Time `json:"loaded_at"`
	Reloads    int64     `json:"reloads"`              // successful reloads since start
	Failures   int64     `json:"reload_failures"`      // rejected reloads since start
	LastError  string    `json:"last_error,omitempty"` // why the last reload was rejected, if it was
}

// Info describes the policy in force.
func (h *Holder) Info() Info {
	p := h.Current()
	in := Info{File: h.src.File, Module: h.src.Module, Reloads: h.reloads.Load(), Failures: h.failures.Load(), Rules: []string{}, Hooks: []string{}}
	if e := h.lastErr.Load(); e != nil {
		in.LastError = *e
	}
	if p == nil {
		return in
	}
	in.FileHash, in.ModuleHash, in.Loaded = p.FileHash, p.ModuleHash, p.Loaded
	for _, hk := range []wasm.Hook{wasm.OnRequest, wasm.OnResponse} {
		if p.Module.Has(hk) {
			in.Hooks = append(in.Hooks, string(hk))
		}
	}
	for _, r := range p.Rules.All() {
		in.Rules = append(in.Rules, r.Label())
	}
	return in
}

// Label is the rule's name, or "rules[i]" when it has none: how logs and /_swr/policy name it.
func (rule *Rule) Label() string {
	if rule.Name != "" {
		return rule.Name
	}
	return fmt.Sprintf("rules[%d]", rule.Index)
}

// Len returns the number of rules (0 for nil).
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.rules)
}

func short(hash string) string { return hash[:min(len(hash), 12)] }
