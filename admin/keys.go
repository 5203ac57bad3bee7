package admin

import (
	"context"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

// keyItem is one cached key in the reply of GET /_swr/keys.
type keyItem struct {
	Key      string   `json:"key"`
	Variants int      `json:"variants"`
	Bytes    int      `json:"bytes"`
	AgeSec   int64    `json:"age_seconds"`
	FreshFor int64    `json:"fresh_for_seconds"` // negative once stale
	Fresh    bool     `json:"fresh"`
	Tags     []string `json:"tags,omitempty"`
	Hits     int64    `json:"hits"` // this instance's
}

// keysPage is the reply of GET /_swr/keys: Next, when set, is the after of the next page.
type keysPage struct {
	Keys []keyItem `json:"keys"`
	Next string    `json:"next,omitempty"`
}

// keys lists cached keys in byte order: GET /_swr/keys?prefix=/api/&after=<last key of the
// previous page>&limit=100.
func (a *Admin) keys(c *fiber.Ctx) error {
	limit := 100
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": "limit must be a number from 1 to 1000"})
		}
		limit = n
	}
	prefix, after := c.Query("prefix"), c.Query("after")
	ctx := context.Background()
	ks, more, err := a.cfg.Store.KeysWithPrefix(ctx, prefix, after, limit)
	if err != nil {
		a.cfg.Log.Warn("listing keys failed", "err", err)
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"error": "key index unavailable (Redis down?)"})
	}
	now := time.Now()
	page := keysPage{Keys: []keyItem{}}
	for _, k := range ks {
		if info, ok := a.cfg.Store.Describe(ctx, k, now); ok {
			page.Keys = append(page.Keys, keyItem{
				Key: info.Key, Variants: info.Variants, Bytes: info.Bytes, AgeSec: info.AgeSec,
				FreshFor: info.FreshForSec, Fresh: info.Fresh, Tags: info.Tags, Hits: a.cfg.Hits.Hits(k),
			})
		}
	}
	if more && len(ks) > 0 {
		page.Next = ks[len(ks)-1]
	}
	return c.JSON(page)
}
