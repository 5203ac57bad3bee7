package policy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/policy/wasm"
	"github.com/swrproxy/swrproxy/upstream"
)

// HasRequestHook reports whether the policy's module exports on_request.
func (p *Policy) HasRequestHook() bool { return p != nil && p.Module.Has(wasm.OnRequest) }

// HasResponseHook reports whether the policy's module exports on_response.
func (p *Policy) HasResponseHook() bool { return p != nil && p.Module.Has(wasm.OnResponse) }

// OnRequest calls the module's on_request hook. A failure (timeout, trap, bad output, no free
// instance) is counted and logged, and reported as ok false: the request goes on as if there
// were no hook.
func (p *Policy) OnRequest(ctx context.Context, in *wasm.RequestIn) (out wasm.RequestOut, ok bool) {
	if !p.HasRequestHook() {
		return out, false
	}
	out, err := p.Module.Request(ctx, in)
	if err == nil && out.HasKey {
		// The key's target is what a fill asks the origin for: one the proxy would refuse, or
		// one origins resolve in different ways, is a bad answer, not a 400 for the client.
		path, _, _ := strings.Cut(out.Key, "?")
		if !upstream.ValidTarget(out.Key) || AmbiguousPath([]byte(path)) {
			err = &wasm.Error{Hook: wasm.OnRequest, Reason: wasm.ReasonBadOutput, Err: fmt.Errorf("key %q is not a valid, unambiguous request target", out.Key)}
		}
	}
	return out, p.settle(wasm.OnRequest, err)
}

// OnResponse calls the module's on_response hook, as OnRequest does on_request.
func (p *Policy) OnResponse(ctx context.Context, in *wasm.ResponseIn) (out wasm.ResponseOut, ok bool) {
	if !p.HasResponseHook() {
		return out, false
	}
	out, err := p.Module.Response(ctx, in)
	return out, p.settle(wasm.OnResponse, err)
}

// settle counts and logs a hook's failure; it reports whether the call succeeded.
func (p *Policy) settle(hook wasm.Hook, err error) bool {
	if err == nil {
		return true
	}
	reason := wasm.ReasonTrap
	var we *wasm.Error
	if errors.As(err, &we) {
		reason = we.Reason
	}
	if p.holder != nil {
		p.holder.errors.add(string(hook), reason)
		// One message for every failure: the log handler rate-limits repeats of it.
		p.holder.log.Warn("policy hook failed; going on without it", "hook", string(hook), "reason", reason, "err", err)
	}
	return false
}

// EditFields applies a hook's field edits to h: remove, then set. Fields that frame the message or
// belong to one connection (Content-Length, Transfer-Encoding, Host, Connection, …) are left
// alone, as the rules file refuses to edit them.
func EditFields(h http.Header, set [][2]string, remove []string) {
	for _, n := range remove {
		if !httpcache.FramingField(n) {
			h.Del(n)
		}
	}
	for _, kv := range set {
		if !httpcache.FramingField(kv[0]) {
			h.Set(kv[0], kv[1])
		}
	}
}
