package admin

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/tiers"
)

// variantItem is one stored variant in the reply of GET /_swr/key.
type variantItem struct {
	Status    int               `json:"status"`
	Bytes     int               `json:"bytes"`
	AgeSec    int64             `json:"age_seconds"`
	FreshFor  int64             `json:"fresh_for_seconds"` // negative once stale
	SWRSec    int64             `json:"stale_while_revalidate_seconds"`
	SIESec    int64             `json:"stale_if_error_seconds"`
	ETag      string            `json:"etag"`
	Tags      []string          `json:"tags"`
	Vary      map[string]string `json:"vary,omitempty"`
	Headers   [][2]string       `json:"headers"`
	Generated bool              `json:"etag_generated"` // swrproxy computed the ETag (the origin sent none)
}

// keyDetail is GET /_swr/key?key=<key as /_swr/keys lists it>: every stored variant of the key
// (this instance's L1, else L2), with its stored response fields.
func (a *Admin) keyDetail(c *fiber.Ctx) error {
	key := c.Query("key")
	if key == "" || len(key) > 16<<10 {
		return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": "key= is required (at most 16 KiB)"})
	}
	o := a.cfg.Store.Peek(key)
	if o == nil || len(o.Variants) == 0 {
		var err error
		if o, err = a.cfg.Store.GetL2(context.Background(), key); err != nil {
			a.cfg.Log.Warn("reading a key failed", "err", err)
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"error": "L2 unavailable (Redis down?)"})
		}
	}
	if o == nil || len(o.Variants) == 0 {
		return c.Status(fiber.StatusNotFound).JSON(fiber.Map{"error": "not cached"})
	}
	now := time.Now()
	out := struct {
		Key      string        `json:"key"`
		Hits     int64         `json:"hits"`
		Variants []variantItem `json:"variants"`
	}{Key: key, Variants: []variantItem{}}
	if a.cfg.Hits != nil {
		out.Hits = a.cfg.Hits.Hits(key)
	}
	for _, e := range o.Variants {
		out.Variants = append(out.Variants, describeVariant(e, now))
	}
	return c.JSON(out)
}

func describeVariant(e *tiers.Entry, now time.Time) variantItem {
	age := e.CurrentAge(now)
	v := variantItem{Status: int(e.Status), Bytes: len(e.Body), AgeSec: int64(age / time.Second),
		FreshFor: int64((e.Fresh - age) / time.Second), SWRSec: int64(e.StaleWhileRevalidate / time.Second),
		SIESec: int64(e.StaleIfError / time.Second), ETag: e.ETag, Tags: e.Tags, Headers: [][2]string{}, Generated: !e.OriginETag}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	if len(e.Vary) > 0 {
		v.Vary = map[string]string{}
		for i, n := range e.Vary {
			if i < len(e.VaryValues) {
				v.Vary[n] = e.VaryValues[i]
			}
		}
	}
	for _, f := range e.Header {
		v.Headers = append(v.Headers, [2]string{f.Name, f.Value})
	}
	return v
}
