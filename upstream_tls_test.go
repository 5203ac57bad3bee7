package main

// TLS to backends, end to end: verified against SWR_UPSTREAM_CA_FILE, a client certificate for
// backends that require one, SWR_UPSTREAM_SERVER_NAME for a backend addressed by IP,
// SWR_UPSTREAM_HOST as the Host every backend sees, and a TLS file that cannot be read stopping
// start-up.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/config"
	"github.com/swrproxy/swrproxy/internal/testcerts"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// noChecks keeps the health checks out of the way of a test that counts handshakes: the first
// comes after a random part of an hour.
const noChecks = "1h"

// tlsOrigin answers "secure" (cacheable) over TLS with set's server certificate and counts the
// handshakes it is offered (each ClientHello), failed ones included.
func tlsOrigin(t *testing.T, set *testcerts.Set, requireClientCert bool, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hellos atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = set.ServerTLS(requireClientCert)
	srv.TLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		hellos.Add(1)
		return nil, nil // the config above
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &hellos
}

func secure(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "max-age=60")
	fmt.Fprint(w, "secure")
}

// expectOriginError checks that r is a 502 for an origin failure, not served from cache.
func expectOriginError(t *testing.T, r reply, why string) {
	t.Helper()
	if r.StatusCode != http.StatusBadGateway || r.Header.Get("X-Cache") != "MISS" ||
		r.Header.Get("Cache-Status") != "swrproxy; fwd=miss; detail=origin-error" {
		t.Errorf("%s: %d X-Cache=%q Cache-Status=%q %q, want a 502 MISS with detail=origin-error",
			why, r.StatusCode, r.Header.Get("X-Cache"), r.Header.Get("Cache-Status"), trim(r.Body))
	}
}

func TestAnHTTPSBackendIsVerifiedAgainstTheConfiguredCA(t *testing.T) {
	t.Parallel()
	set := testcerts.New(t) // for 127.0.0.1
	srv, hellos := tlsOrigin(t, set, false, secure)

	trusting := startProxy(t, srv.URL, map[string]string{"SWR_UPSTREAM_CA_FILE": set.CAFile, "SWR_HEALTH_INTERVAL": noChecks})
	expect(t, get(t, trusting.URL+"/s"), 200, "MISS", "secure")
	expect(t, get(t, trusting.URL+"/s"), 200, "HIT", "secure")

	// Without the CA the certificate is unknown: a 502, and not a cached one, so each request
	// tries the backend again.
	other := startProxy(t, srv.URL, map[string]string{"SWR_HEALTH_INTERVAL": noChecks})
	before := hellos.Load()
	expectOriginError(t, get(t, other.URL+"/s"), "first request without the CA")
	expectOriginError(t, get(t, other.URL+"/s"), "second request without the CA")
	if n := hellos.Load() - before; n != 2 {
		t.Errorf("two requests without the CA made %d handshakes, want 2 (one each: the error is not cached)", n)
	}
}

func TestAClientCertificateIsPresentedToABackendThatRequiresOne(t *testing.T) {
	t.Parallel()
	set := testcerts.New(t)
	var mu sync.Mutex
	var peers []string
	srv, _ := tlsOrigin(t, set, true, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		peers = append(peers, r.TLS.PeerCertificates[0].Subject.CommonName)
		mu.Unlock()
		secure(w, r)
	})

	withCert := startProxy(t, srv.URL, map[string]string{"SWR_UPSTREAM_CA_FILE": set.CAFile, "SWR_HEALTH_INTERVAL": noChecks,
		"SWR_UPSTREAM_CLIENT_CERT": set.ClientCertFile, "SWR_UPSTREAM_CLIENT_KEY": set.ClientKeyFile})
	expect(t, get(t, withCert.URL+"/m"), 200, "MISS", "secure")
	mu.Lock()
	if len(peers) != 1 || peers[0] != testcerts.ClientName {
		t.Errorf("the backend verified the client certificates %q, want one of %q", peers, testcerts.ClientName)
	}
	mu.Unlock()

	without := startProxy(t, srv.URL, map[string]string{"SWR_UPSTREAM_CA_FILE": set.CAFile, "SWR_HEALTH_INTERVAL": noChecks})
	expectOriginError(t, get(t, without.URL+"/m"), "no client certificate")
}

func TestTheServerNameIsSentAndVerifiedForABackendAddressedByIP(t *testing.T) {
	t.Parallel()
	set := testcerts.New(t, "origin.test") // not valid for 127.0.0.1, where it listens
	var sni atomic.Value
	srv, _ := tlsOrigin(t, set, false, func(w http.ResponseWriter, r *http.Request) {
		sni.Store(r.TLS.ServerName)
		secure(w, r)
	})

	named := startProxy(t, srv.URL, map[string]string{"SWR_UPSTREAM_CA_FILE": set.CAFile, "SWR_HEALTH_INTERVAL": noChecks,
		"SWR_UPSTREAM_SERVER_NAME": "origin.test"})
	expect(t, get(t, named.URL+"/n"), 200, "MISS", "secure")
	if got := sni.Load(); got != "origin.test" {
		t.Errorf("SNI = %v, want origin.test", got)
	}

	byIP := startProxy(t, srv.URL, map[string]string{"SWR_UPSTREAM_CA_FILE": set.CAFile, "SWR_HEALTH_INTERVAL": noChecks})
	expectOriginError(t, get(t, byIP.URL+"/n"), "a certificate for origin.test at 127.0.0.1 without SWR_UPSTREAM_SERVER_NAME")
}

func TestTheUpstreamHostIsTheHostEveryBackendSees(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var checks atomic.Int64
	hosts := map[string]map[string]bool{"traffic": {}, "check": {}}
	handler := func(w http.ResponseWriter, r *http.Request) {
		kind := "traffic"
		if isHealthCheck(r) {
			kind = "check"
			checks.Add(1)
		}
		mu.Lock()
		hosts[kind][r.Host] = true
		mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "ok")
	}
	a, b := newOrigin(t, handler), newOrigin(t, handler)
	p := startProxy(t, a.URL+","+b.URL, healthEnv("SWR_UPSTREAM_HOST", "www.example.test"))
	for range 4 { // round robin: both backends
		expect(t, get(t, p.URL+"/h"), 200, "BYPASS", "ok")
	}
	testenv.WaitFor(t, 5*time.Second, "health checks on both backends", func() bool { return checks.Load() >= 2 })
	mu.Lock()
	defer mu.Unlock()
	for kind, seen := range hosts {
		if len(seen) != 1 || !seen["www.example.test"] {
			t.Errorf("Host of the %s the backends saw: %v, want only www.example.test", kind, seen)
		}
	}
}

func TestAnUnreadableCAFileStopsStartUpNamingTheSettingAndThePath(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no-such-ca.pem")
	vars := map[string]string{"SWR_UPSTREAM": "https://127.0.0.1:1", "SWR_LISTEN": "127.0.0.1:0", "SWR_REDIS_URL": "",
		"SWR_UPSTREAM_CA_FILE": missing}
	cfg, err := config.LoadLookup(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, nil)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var listened atomic.Bool
		err = run(ctx, cfg, testLogger(t), func(string, string) { listened.Store(true) })
		if listened.Load() {
			t.Errorf("swrproxy listened with an unreadable SWR_UPSTREAM_CA_FILE")
		}
	}
	if err == nil {
		t.Fatal("start-up with an unreadable SWR_UPSTREAM_CA_FILE succeeded")
	}
	t.Logf("start-up error: %v", err)
	for _, want := range []string{"SWR_UPSTREAM_CA_FILE", missing} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("start-up error %q does not name %q", err, want)
		}
	}
}

func TestHealthChecksOfAnHTTPSBackendUseTheTLSSettings(t *testing.T) {
	t.Parallel()
	// A check that skipped the CA, the server name or the client certificate would fail the
	// handshake, never reach the handler, and take the backend down after its fall.
	set := testcerts.New(t, "origin.test")
	var checks atomic.Int64
	srv, _ := tlsOrigin(t, set, true, func(w http.ResponseWriter, r *http.Request) {
		if isHealthCheck(r) {
			checks.Add(1)
		}
		secure(w, r)
	})
	p := startProxy(t, srv.URL, healthEnv("SWR_UPSTREAM_CA_FILE", set.CAFile, "SWR_UPSTREAM_SERVER_NAME", "origin.test",
		"SWR_UPSTREAM_CLIENT_CERT", set.ClientCertFile, "SWR_UPSTREAM_CLIENT_KEY", set.ClientKeyFile))
	testenv.WaitFor(t, 5*time.Second, "more passed checks than the fall", func() bool { return checks.Load() > healthFall })
	if r := get(t, p.URL+"/_swr/readyz"); !strings.Contains(r.Body, `"origin":"ok"`) {
		t.Errorf("readiness %s, want the origin ok", r.Body)
	}
	expect(t, get(t, p.URL+"/c"), 200, "MISS", "secure")
}
