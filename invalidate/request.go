// Package invalidate owns invalidation: parsing a request, selecting its keys (by key, prefix,
// tag, or all), clearing or refreshing them (clear, refresh, auto), and the fan-out of each
// invalidation to every instance's L1 over Redis pub/sub, with acknowledgements and a heartbeat
// so a caller knows how many instances are live. The HTTP routes and their auth are admin's; the
// refresh work itself is the Refresher's.
package invalidate

import (
	"errors"
	"fmt"
	"strings"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/internal/strictjson"
)

// Mode says what an invalidation does to the selected keys.
type Mode string

const (
	// Clear removes the keys everywhere: the next request is a miss.
	Clear Mode = "clear"
	// Refresh marks them stale and fetches them anew in the background (a soft purge): clients
	// keep getting the old copy, marked STALE, until the new one is stored.
	Refresh Mode = "refresh"
	// Auto refreshes the hot keys (requested within the refresh window on any instance) and
	// clears the cold ones.
	Auto Mode = "auto"
)

// Request is the JSON body of POST /_swr/invalidate.
type Request struct {
	Keys     []string `json:"keys,omitempty"`
	Prefixes []string `json:"prefixes,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	All      bool     `json:"all,omitempty"`
	Mode     Mode     `json:"mode,omitempty"`
}

// MaxBody bounds the request body; MaxItems bounds each list.
const (
	MaxBody  = 1 << 20
	MaxItems = 10000
)

// ParseRequest parses and validates the JSON body of POST /_swr/invalidate. With keyHost
// (SWR_KEY_HOST), keys and prefixes may also be written "host/path". Every error says what is
// wrong, for a 400 reply.
func ParseRequest(body []byte, keyHost bool) (Request, error) {
	r, err := decodeRequest(body)
	if err == nil && keyHost {
		r.Keys, r.Prefixes = hostKeys(r.Keys), hostKeys(r.Prefixes)
	}
	return r, err
}

// decodeRequest parses and validates an invalidation body. Every error says what is wrong, for
// the 400 reply; nothing has been changed when it returns one.
func decodeRequest(body []byte) (Request, error) {
	var r Request
	if err := strictjson.Decode(body, &r, `a JSON object such as {"keys": ["/path"]}`); err != nil {
		return r, err
	}
	switch r.Mode {
	case "":
		r.Mode = Auto
	case Clear, Refresh, Auto:
	default:
		return r, fmt.Errorf("mode %q: want \"clear\", \"refresh\" or \"auto\"", r.Mode)
	}
	if len(r.Keys)+len(r.Prefixes)+len(r.Tags) == 0 && !r.All {
		return r, errors.New("empty selection: give keys, prefixes, tags, or \"all\": true")
	}
	for _, l := range []struct {
		name  string
		items []string
	}{{"keys", r.Keys}, {"prefixes", r.Prefixes}, {"tags", r.Tags}} {
		if len(l.items) > MaxItems {
			return r, fmt.Errorf("%s: %d items, at most %d per request", l.name, len(l.items), MaxItems)
		}
		for i, s := range l.items {
			switch {
			case s == "":
				return r, fmt.Errorf("%s[%d] is empty", l.name, i)
			case l.name == "tags" && strings.ContainsAny(s, " \t\r\n"):
				return r, fmt.Errorf("tags[%d] %q contains white space (Surrogate-Key tags are space separated)", i, s)
			case l.name != "tags" && strings.ContainsAny(s, "\r\n\x00"):
				return r, fmt.Errorf("%s[%d] %q contains a control character", l.name, i, s)
			}
		}
	}
	return r, nil
}

// hostKeys accepts keys and prefixes written "host/path" besides the key form "host /path"
// (httpcache.Key): the first '/' of one that has no separator and does not start with '/' begins
// the path (a valid host has no '/').
func hostKeys(ks []string) []string {
	for i, k := range ks {
		if strings.HasPrefix(k, "/") || strings.IndexByte(k, httpcache.KeySeparator) >= 0 {
			continue
		}
		host, path, ok := strings.Cut(k, "/")
		if !ok {
			continue
		}
		if h := httpcache.AppendKeyHost(nil, []byte(host), false); len(h) > 0 {
			host = string(h) // the key's spelling of the host: lower case, no default port
		}
		ks[i] = httpcache.Key(host, "/"+path)
	}
	return ks
}
