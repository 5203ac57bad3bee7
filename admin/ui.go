package admin

// The admin page (/_swr/ui/): login, logout, the page and its assets. The page's data comes
// from the protected JSON routes (protected admits its session, with the CSRF token on every
// state-changing request).

import (
	"bytes"
	"embed"
	"html/template"
	"mime"
	"net/netip"
	"net/url"
	"path"
	"time"

	"github.com/gofiber/fiber/v2"
)

//go:embed ui/index.html ui/login.html ui/app.js ui/app.css
var uiFiles embed.FS

var uiPages = template.Must(template.ParseFS(uiFiles, "ui/index.html", "ui/login.html"))

// uiCSP lets the page load only its own script, style and data: no inline script or style, no
// framing, forms posting only to itself.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// loginBody bounds the login form.
const loginBody = 4 << 10

// mountUI adds the page's routes (when a secret is set: the page logs in with it).
func (a *Admin) mountUI(r fiber.Router) {
	r.Get("/_swr/ui", a.pageRoute(func(c *fiber.Ctx) error { return a.redirect(c, "/_swr/ui/") }))
	r.Get("/_swr/ui/", a.pageRoute(a.page))
	r.Get("/_swr/ui/login", a.pageRoute(a.loginForm))
	r.Post("/_swr/ui/login", a.pageRoute(a.login))
	r.Post("/_swr/ui/logout", a.pageRoute(a.logout))
	r.Get("/_swr/ui/app.js", a.pageRoute(a.asset("ui/app.js")))
	r.Get("/_swr/ui/app.css", a.pageRoute(a.asset("ui/app.css")))
	r.Get("/_swr/ui/api/dashboard", a.protected(a.dashboardJSON))
}

// pageRoute wraps the page's own routes (gated by the session and its tokens, not the Bearer
// token): like every private route, they answer 404 while no secret is set.
func (a *Admin) pageRoute(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if a.sess == nil {
			return notFound(c)
		}
		return h(c)
	}
}

// uiHeaders are set on every page and asset.
func uiHeaders(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", uiCSP)
	c.Set("X-Frame-Options", "DENY")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("Cache-Control", "no-store")
}

func (a *Admin) redirect(c *fiber.Ctx, to string) error {
	uiHeaders(c)
	c.Set(fiber.HeaderLocation, to)
	return c.SendStatus(fiber.StatusSeeOther)
}

func (a *Admin) asset(name string) fiber.Handler {
	b, err := uiFiles.ReadFile(name)
	if err != nil {
		panic(err) // embedded above
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	return func(c *fiber.Ctx) error {
		uiHeaders(c)
		c.Set(fiber.HeaderContentType, ctype)
		return c.Send(b)
	}
}

func (a *Admin) render(c *fiber.Ctx, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := uiPages.ExecuteTemplate(&buf, name, data); err != nil {
		a.cfg.Log.Error("rendering the admin page failed", "page", name, "err", err)
		return c.Status(fiber.StatusInternalServerError).SendString("Internal Server Error")
	}
	uiHeaders(c)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}

// page is GET /_swr/ui/: the dashboard for a session, else the login form.
func (a *Admin) page(c *fiber.Ctx) error {
	id, ok := a.session(c)
	if !ok {
		return a.redirect(c, "/_swr/ui/login")
	}
	return a.render(c, fiber.StatusOK, "index.html", struct{ CSRF, Instance string }{a.sess.csrf(id), a.dash.instance()})
}

// cookie sets an HttpOnly, SameSite=Strict cookie under /_swr/ (Secure on a TLS connection);
// maxAge < 0 removes it.
func (a *Admin) cookie(c *fiber.Ctx, name, value string, maxAge time.Duration) {
	ck := &fiber.Cookie{Name: name, Value: value, Path: "/_swr/", HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode,
		Secure: c.Context().IsTLS(), MaxAge: int(maxAge / time.Second)}
	if maxAge < 0 {
		ck.Value, ck.MaxAge, ck.Expires = "", -1, time.Unix(0, 0)
	}
	c.Cookie(ck)
}

// loginForm is GET /_swr/ui/login: the form, with an anti-forgery token bound to a nonce
// cookie, so that no other site can log a browser in (login CSRF).
func (a *Admin) loginForm(c *fiber.Ctx) error {
	return a.showLogin(c, fiber.StatusOK, "")
}

func (a *Admin) showLogin(c *fiber.Ctx, status int, msg string) error {
	n := nonce()
	a.cookie(c, loginCookie, n, 10*time.Minute)
	return a.render(c, status, "login.html", struct{ CSRF, Error string }{a.sess.loginToken(n), msg})
}

// clientAddr is the peer's address: the admin listener is reached directly (nginx hides /_swr/);
// without SWR_ADMIN_LISTEN, every client behind one proxy shares it (README).
func clientAddr(c *fiber.Ctx) netip.Addr {
	addr, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return addr.Unmap()
}

// login is POST /_swr/ui/login with the form fields secret and csrf.
func (a *Admin) login(c *fiber.Ctx) error {
	body, status, msg := readBody(c, loginBody)
	if status != 0 {
		return c.Status(status).SendString(msg)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return a.showLogin(c, fiber.StatusBadRequest, "The form could not be read.")
	}
	if n := c.Cookies(loginCookie); n == "" || !equal(form.Get("csrf"), a.sess.loginToken(n)) {
		uiHeaders(c)
		return c.Status(fiber.StatusForbidden).SendString("Forbidden: the login form's token is missing or wrong; load /_swr/ui/login again")
	}
	now, addr := time.Now(), clientAddr(c)
	if !a.sess.allow(addr, now) {
		return a.showLogin(c, fiber.StatusTooManyRequests, "Too many wrong attempts from your address: wait a minute.")
	}
	if !a.sess.password(form.Get("secret")) {
		a.sess.failed(addr, now)
		a.cfg.Log.Warn("admin page login refused", "client", addr.String())
		return a.showLogin(c, fiber.StatusUnauthorized, "Wrong secret or password.")
	}
	a.cookie(c, loginCookie, "", -1)
	a.cookie(c, sessionCookie, a.sess.issue(now), sessionTTL)
	a.cfg.Log.Info("admin page login", "client", addr.String())
	return a.redirect(c, "/_swr/ui/")
}

// logout is POST /_swr/ui/logout with the session's CSRF token (form field csrf or X-CSRF-Token).
func (a *Admin) logout(c *fiber.Ctx) error {
	id, ok := a.session(c)
	if !ok {
		return a.redirect(c, "/_swr/ui/login")
	}
	token := c.Get("X-CSRF-Token")
	if token == "" {
		body, status, msg := readBody(c, loginBody)
		if status != 0 {
			return c.Status(status).SendString(msg)
		}
		form, _ := url.ParseQuery(string(body))
		token = form.Get("csrf")
	}
	if !equal(token, a.sess.csrf(id)) {
		uiHeaders(c)
		return c.Status(fiber.StatusForbidden).SendString("Forbidden: missing or wrong CSRF token")
	}
	a.sess.revoke(id, time.Now())
	a.cookie(c, sessionCookie, "", -1)
	return a.redirect(c, "/_swr/ui/login")
}
