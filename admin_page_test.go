package main

import (
	"bytes"
	"context"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium returns the path of Debian's chromium, failing the test with the command that
// installs it when it is missing (make test installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run `sudo apt-get update && sudo apt-get install -y chromium` (make test does)")
	return ""
}

// browse starts a headless Chromium for the test and returns its context.
func browse(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil { // starts the browser, for the test's life
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(browser, 90*time.Second) // bounds the steps, not the browser
	t.Cleanup(func() { cancelTimeout(); cancelBrowser(); cancelAlloc() })
	return ctx
}

func TestTheAdminPageLogsInShowsAKeyAndPurgesIt(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("Surrogate-Key", "items")
		w.Write([]byte(`{"item":"` + r.URL.Path + `"}`))
	})
	in := startProxy(t, o.URL, map[string]string{"SWR_INVALIDATE_SECRET": secret, "SWR_ADMIN_LISTEN": "127.0.0.1:0"})
	expect(t, get(t, in.URL+"/api/item"), 200, "MISS", "")
	expect(t, get(t, in.URL+"/api/item"), 200, "HIT", "")
	// The page lives on the admin listener only: neither the proxy listener nor nginx serves it.
	via := startNginx(t, strings.TrimPrefix(in.URL, "http://"))
	for _, base := range []string{in.URL, via} {
		for _, path := range []string{"/_swr/ui/", "/_swr/ui/login", "/_swr/ui/app.js"} {
			if r := get(t, base+path); r.StatusCode != 404 {
				t.Errorf("%s%s: %d, want 404 (the admin listener alone serves the page)", base, path, r.StatusCode)
			}
		}
	}
	ctx := browse(t)

	// A wrong secret is refused with a message; the right one opens the dashboard.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(in.Admin+"/_swr/ui/"),
		chromedp.WaitVisible("#login-secret"),
		chromedp.SendKeys("#login-secret", "not the secret"),
		chromedp.Click("#login-submit"),
		chromedp.WaitVisible("#login-error"),
	); err != nil {
		t.Fatalf("wrong login: %v", err)
	}
	if msg, err := chromedp.Run(ctx, chromedp.Text("#login-error")); err != nil || !strings.Contains(msg, "Wrong") {
		t.Errorf("login error %q, %v", msg, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys("#login-secret", secret),
		chromedp.Click("#login-submit"),
		chromedp.WaitVisible("#chart"),
	); err != nil {
		t.Fatalf("login: %v", err)
	}

	// The key browser shows the key just cached; its Clear button, once confirmed, purges it.
	row := `#keys tr[data-key="/api/item"]`
	if err := chromedp.Do(ctx,
		chromedp.SendKeys("#key-prefix", "/api/"),
		chromedp.Click("#key-search"),
		chromedp.WaitVisible(row),
		chromedp.Click(row+" button.purge"),
		chromedp.WaitVisible("#confirm-yes"),
		chromedp.Click("#confirm-yes"),
		chromedp.WaitVisible("#action-result"),
	); err != nil {
		t.Fatalf("purge from the page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#action-result").textContent.includes("cleared 1")`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		result, _ := chromedp.Run(ctx, chromedp.Text("#action-result"))
		t.Fatalf("the invalidation reply on the page: %v (it says %q)", err, result)
	}
	expect(t, get(t, in.URL+"/api/item"), 200, "MISS", "")

	// A state change without the CSRF token is refused, even with the session cookie.
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/_swr/invalidate", {method: "POST", credentials: "same-origin",
		headers: {"Content-Type": "application/json"}, body: '{"all":true}'}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if status != 403 {
		t.Errorf("POST /_swr/invalidate from the page without the token: %d, want 403", status)
	}
	if r := get(t, in.URL+"/api/item"); r.Header.Get("X-Cache") != "HIT" {
		t.Errorf("the refused POST changed the cache: %s", r.Header.Get("X-Cache"))
	}

	// Readable on a phone: at 390 px nothing is wider than the screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(in.Admin+"/_swr/ui/"), chromedp.WaitVisible("#chart")); err != nil {
		t.Fatalf("the page at 390 px: %v", err)
	}
	if wide, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil || wide > 390 {
		t.Errorf("at 390 px the page is %d px wide (%v): it scrolls sideways", wide, err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 1000)); err != nil {
		t.Fatal(err)
	}

	// A screenshot of the dashboard, not blank. SWR_UPDATE_SCREENSHOT=1 also writes the README's.
	if err := chromedp.Do(ctx, chromedp.Navigate(in.Admin+"/_swr/ui/"), chromedp.WaitVisible("#chart")); err != nil {
		t.Fatalf("the dashboard: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#fleet tr").length > 1`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the fleet table never filled: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	file := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(file, shot, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := colours(t, shot); n < 8 {
		t.Errorf("the screenshot %s has %d colours: blank?", file, n)
	}
	if os.Getenv("SWR_UPDATE_SCREENSHOT") != "" {
		if err := os.WriteFile("docs/admin-dashboard.png", shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// colours counts the distinct colours of a PNG (up to 1000).
func colours(t *testing.T, b []byte) int {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	seen := map[[4]uint32]bool{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y && len(seen) < 1000; y += 3 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 3 {
			r, g, b, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, b, a}] = true
		}
	}
	return len(seen)
}
