package admin

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/policy"
)

// Every route of the admin listener, whatever it does with a body (reads it, refuses it, ignores
// it, answers 401 before it), leaves nothing of the body on the wire: a body past fasthttp's
// 8 KiB pre-read that hides an authorised request, framed by Content-Length or chunked, with or
// without credentials, never runs that request, and the request after it on the connection gets
// its own answer (or the connection is closed). The routes are read from the app itself, so a
// new endpoint is covered without anyone remembering to add it here.
func TestNoAdminRouteLeavesABodyOnTheWire(t *testing.T) {
	a, _ := newAdmin(t, secret)
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte("rules:\n  - match: {path_prefix: /x/}\n    ttl: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	holder, err := policy.NewHolder(context.Background(), policy.Source{File: file}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	a.cfg.Policy = holder // its routes are mounted only with a policy
	addr, pool := serve(t, a), poolOf(a)
	before := urls(pool)
	padding := strings.Repeat(" ", 9<<10) // past the 8 KiB fasthttp reads with the header
	body := `{"url":` + padding + smuggledAdd
	seen := map[string]bool{}
	// PURGE is caught by middleware on any path, so GetRoutes does not list it.
	routes := append(newApp(a).GetRoutes(true), fiber.Route{Method: "PURGE", Path: "/_swr/anything"})
	for _, route := range routes {
		target := route.Path
		for _, p := range route.Params {
			target = strings.Replace(target, ":"+p, "x", 1)
		}
		target = strings.ReplaceAll(target, "*", "x")
		if !strings.HasPrefix(target, "/_swr/") || route.Method == "HEAD" || route.Method == "CONNECT" || seen[route.Method+target] {
			continue
		}
		seen[route.Method+target] = true
		for _, creds := range []string{"", auth} {
			for _, framing := range []string{"content-length", "chunked"} {
				name := route.Method + " " + target + " " + framing
				if creds != "" {
					name += " authorised"
				}
				t.Run(name, func(t *testing.T) {
					raw := route.Method + " " + target + " HTTP/1.1\r\nHost: x\r\n" + creds + "Content-Type: application/json\r\n"
					if framing == "chunked" {
						raw += "Transfer-Encoding: chunked\r\n\r\n" + strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\n\r\n"
					} else {
						raw += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
					}
					res := exchange(t, addr, raw+healthz)
					if len(res.Responses) == 0 {
						t.Fatalf("no answer (closed %v)", res.Closed)
					}
					for i, r := range res.Responses[1:] {
						if i == len(res.Responses)-2 && !res.Closed && r.StatusCode == 200 && r.Body == "ok\n" {
							break // healthz, answered on the same connection
						}
						t.Errorf("answer %d after the first: %d %q: part of the body was read as a request", i+2, r.StatusCode, r.Body)
					}
					if len(res.Responses) == 1 && !res.Closed {
						t.Errorf("one answer (%d) and the connection kept open: the request after the body got none", res.Responses[0].StatusCode)
					}
				})
			}
		}
	}
	for _, want := range []string{"POST/_swr/policy/reload", "GET/_swr/policy", "PURGE/_swr/anything", "POST/_swr/invalidate", "POST/_swr/ui/login"} {
		if !seen[want] {
			t.Errorf("route %s was not tried: %v", want, seen)
		}
	}
	if after := urls(pool); !slices.Equal(after, before) {
		t.Errorf("the pool went from %q to %q: a hidden request ran", before, after)
	}
}
