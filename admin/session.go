package admin

// The admin page's sessions. A login with the invalidation secret (or SWR_ADMIN_PASSWORD) gives
// a cookie signed with a key derived from it (HMAC-SHA256, 12 h); every state-changing request
// made with the cookie carries a CSRF token derived from the session, and login attempts are
// limited per client address. Sessions are stateless (any instance that knows the secret
// accepts them), except for logouts, which this instance remembers until the session would have
// expired.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"strings"
	"sync"
	"time"
)

const (
	sessionCookie = "swr_session"
	loginCookie   = "swr_login" // the login form's anti-forgery nonce
	sessionTTL    = 12 * time.Hour

	loginFailures   = 5           // wrong passwords per client address and window
	loginWindow     = time.Minute // before the count starts again
	loginClientsMax = 10000       // client addresses remembered; beyond, the oldest is forgotten
	revokedMax      = 10000       // logouts remembered
)

var b64 = base64.RawURLEncoding

// sessions signs and checks session cookies and CSRF tokens. Safe for concurrent use.
type sessions struct {
	key  []byte   // HMAC key, derived from the password
	pass [32]byte // SHA-256 of the password

	mu      sync.Mutex
	revoked map[string]time.Time // session id → its expiry
	clients map[netip.Addr]*attempts
}

type attempts struct {
	failures int
	since    time.Time
}

// newSessions keys the sessions and tokens with the invalidation secret (random, at least 32
// bytes: start-up refuses a weak one) and the password's digest, never with the password alone:
// the login form's token and the cookies are MACs anyone can obtain, and a key derived from a
// password people type would let them test guesses offline, past the rate limit. Changing
// either ends every session.
func newSessions(secret, password string) *sessions {
	pass := sha256.Sum256([]byte(password))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("swrproxy admin session v2\x00"))
	mac.Write(pass[:])
	return &sessions{key: mac.Sum(nil), pass: pass,
		revoked: map[string]time.Time{}, clients: map[netip.Addr]*attempts{}}
}

// sign returns base64url(mac of purpose and msg).
func (s *sessions) sign(purpose, msg string) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(purpose))
	mac.Write([]byte{0})
	mac.Write([]byte(msg))
	return b64.EncodeToString(mac.Sum(nil))
}

// issue returns a new session cookie value, "id.mac", where id is base64url(expiry, 16 random
// bytes).
func (s *sessions) issue(now time.Time) string {
	var raw [24]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.Add(sessionTTL).Unix()))
	rand.Read(raw[8:])
	id := b64.EncodeToString(raw[:])
	return id + "." + s.sign("session", id)
}

// valid returns the id of the session cookie value v when this key signed it, it has not
// expired and it was not logged out.
func (s *sessions) valid(v string, now time.Time) (id string, ok bool) {
	id, mac, found := strings.Cut(v, ".")
	if !found || len(v) > 128 || !equal(mac, s.sign("session", id)) {
		return "", false
	}
	raw, err := b64.DecodeString(id)
	if err != nil || len(raw) != 24 {
		return "", false
	}
	if now.Unix() >= int64(binary.BigEndian.Uint64(raw[:8])) {
		return "", false
	}
	s.mu.Lock()
	_, out := s.revoked[id]
	s.mu.Unlock()
	return id, !out
}

// revoke logs the session id out on this instance until it expires.
func (s *sessions) revoke(id string, now time.Time) {
	raw, err := b64.DecodeString(id)
	if err != nil || len(raw) != 24 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.revoked) >= revokedMax {
		for k, exp := range s.revoked {
			if !now.Before(exp) {
				delete(s.revoked, k)
			}
		}
	}
	if len(s.revoked) < revokedMax {
		s.revoked[id] = time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0)
	}
}

// csrf returns the CSRF token of the session id.
func (s *sessions) csrf(id string) string { return s.sign("csrf", id) }

// loginToken returns the token the login form carries for its nonce cookie.
func (s *sessions) loginToken(nonce string) string { return s.sign("login", nonce) }

// password reports whether p is the password, in constant time (of digests, so neither the
// content nor the length leaks).
func (s *sessions) password(p string) bool {
	got := sha256.Sum256([]byte(p))
	return subtle.ConstantTimeCompare(got[:], s.pass[:]) == 1
}

// allow reports whether the client at addr may try a password now: fewer than loginFailures
// wrong ones within loginWindow (IPv6 addresses count by their /64, which one client holds
// whole). The table holds loginClientsMax addresses; when it is full, the oldest count makes
// room, so many addresses cannot lock everyone out.
func (s *sessions) allow(addr netip.Addr, now time.Time) bool {
	addr = clientKey(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.clients[addr]
	switch {
	case a == nil:
		return true
	case now.Sub(a.since) >= loginWindow:
		delete(s.clients, addr)
		return true
	}
	return a.failures < loginFailures
}

// failed counts a wrong password from addr.
func (s *sessions) failed(addr netip.Addr, now time.Time) {
	addr = clientKey(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.clients[addr]
	if a == nil || now.Sub(a.since) >= loginWindow {
		if a == nil && len(s.clients) >= loginClientsMax {
			var oldest netip.Addr
			var at time.Time
			for k, v := range s.clients {
				if at.IsZero() || v.since.Before(at) {
					oldest, at = k, v.since
				}
			}
			delete(s.clients, oldest)
		}
		a = &attempts{since: now}
		s.clients[addr] = a
	}
	a.failures++
}

// clientKey is what the login limit counts by: an IPv4 address, or an IPv6 address's /64.
func clientKey(addr netip.Addr) netip.Addr {
	if addr.Is6() && !addr.Is4In6() {
		p, _ := addr.Prefix(64)
		return p.Addr()
	}
	return addr
}

// nonce returns 16 random bytes, base64url.
func nonce() string {
	var b [16]byte
	rand.Read(b[:])
	return b64.EncodeToString(b[:])
}

// equal compares two tokens in constant time.
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
