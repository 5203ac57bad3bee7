package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/testcerts"
)

// tlsBackend starts a TLS backend of set that answers with the SNI it saw and the common name of
// the client certificate it verified, and counts the requests that reached it.
func tlsBackend(t *testing.T, set *testcerts.Set, requireClientCert bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := set.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		cn := ""
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		io.WriteString(w, r.TLS.ServerName+"|"+cn)
	}), requireClientCert)
	return srv, &hits
}

// tlsGet sends one GET to url through a plain transport of cfg and returns the body.
func tlsGet(t *testing.T, cfg *tls.Config, url string) (string, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	res, err := hc.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200", url, res.StatusCode)
	}
	return string(b), err
}

func mustTLSConfig(t *testing.T, o TLSOptions) *tls.Config {
	t.Helper()
	cfg, err := TLSConfig(o)
	if err != nil {
		t.Fatalf("TLSConfig(%+v): %v", o, err)
	}
	return cfg
}

func TestCAFileMakesABackendOfAPrivateCATrusted(t *testing.T) {
	set := testcerts.New(t)
	srv, _ := tlsBackend(t, set, false)

	if _, err := tlsGet(t, mustTLSConfig(t, TLSOptions{CAFile: set.CAFile}), srv.URL); err != nil {
		t.Errorf("with SWR_UPSTREAM_CA_FILE: %v, want the backend reached", err)
	}
	_, err := tlsGet(t, mustTLSConfig(t, TLSOptions{}), srv.URL)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("without a CA file: %v, want x509.UnknownAuthorityError", err)
	}
}

func TestTLSConfigNeverAllowsLessThanTLS12(t *testing.T) {
	set := testcerts.New(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = set.ServerTLS(false)
	srv.TLS.MinVersion, srv.TLS.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 // an old backend
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	old := set.ClientTLS()
	old.MinVersion = tls.VersionTLS10
	if _, err := tlsGet(t, old, srv.URL); err != nil {
		t.Fatalf("a TLS 1.0 client cannot reach the TLS 1.1 backend either: %v; the test proves nothing", err)
	}
	cfg := mustTLSConfig(t, TLSOptions{CAFile: set.CAFile})
	if _, err := tlsGet(t, cfg, srv.URL); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 backend: %v, want the handshake refused for its protocol version", err)
	}
}

func TestCAFileAddsEveryCertificateOfTheBundleToTheSystemRoots(t *testing.T) {
	a, b := testcerts.New(t), testcerts.New(t)
	srvA, _ := tlsBackend(t, a, false)
	srvB, _ := tlsBackend(t, b, false)
	caA, caB := readTestFile(t, a.CAFile), readTestFile(t, b.CAFile)
	key := readTestFile(t, a.ClientKeyFile)
	// Text around the blocks and a key block are not certificates: they are skipped.
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	writeTestFile(t, bundle, "# CA of origin A\n"+caA+key+"# CA of origin B\n"+caB)

	cfg := mustTLSConfig(t, TLSOptions{CAFile: bundle})
	for _, url := range []string{srvA.URL, srvB.URL} {
		if _, err := tlsGet(t, cfg, url); err != nil {
			t.Errorf("%s: %v, want it trusted through the bundle", url, err)
		}
	}

	want, err := x509.SystemCertPool()
	if err != nil {
		want = x509.NewCertPool() // what TLSConfig falls back to
	}
	want.AppendCertsFromPEM([]byte(caA + caB))
	if !cfg.RootCAs.Equal(want) {
		t.Error("RootCAs is not the system roots plus the bundle's two CAs")
	}
}

func TestClientCertificateIsPresentedToABackendThatRequiresOne(t *testing.T) {
	set := testcerts.New(t)
	srv, hits := tlsBackend(t, set, true)

	cfg := mustTLSConfig(t, TLSOptions{CAFile: set.CAFile, CertFile: set.ClientCertFile, KeyFile: set.ClientKeyFile})
	body, err := tlsGet(t, cfg, srv.URL)
	if err != nil || !strings.HasSuffix(body, "|"+testcerts.ClientName) {
		t.Errorf("with a client certificate: %q, %v; want the backend to verify %q", body, err, testcerts.ClientName)
	}
	before := hits.Load()
	if _, err := tlsGet(t, mustTLSConfig(t, TLSOptions{CAFile: set.CAFile}), srv.URL); err == nil {
		t.Error("without a client certificate: the backend answered, want the handshake refused")
	}
	if hits.Load() != before {
		t.Error("a request without a client certificate reached the handler")
	}
}

func TestServerNameIsWhatTheCertificateIsVerifiedAgainst(t *testing.T) {
	set := testcerts.New(t, "origin.test") // not valid for 127.0.0.1, where it listens
	srv, _ := tlsBackend(t, set, false)

	_, err := tlsGet(t, mustTLSConfig(t, TLSOptions{CAFile: set.CAFile}), srv.URL)
	var wrongHost x509.HostnameError
	if !errors.As(err, &wrongHost) {
		t.Errorf("dialled at 127.0.0.1 without a server name: %v, want x509.HostnameError", err)
	}
	body, err := tlsGet(t, mustTLSConfig(t, TLSOptions{CAFile: set.CAFile, ServerName: "origin.test"}), srv.URL)
	if err != nil || !strings.HasPrefix(body, "origin.test|") {
		t.Errorf("with SWR_UPSTREAM_SERVER_NAME=origin.test: %q, %v; want the backend reached with that SNI", body, err)
	}
}

func TestInsecureSkipVerifyReachesABackendOfAnUnknownCA(t *testing.T) {
	srv, _ := tlsBackend(t, testcerts.New(t), false)
	other := testcerts.New(t) // trusting another CA does not help
	if _, err := tlsGet(t, mustTLSConfig(t, TLSOptions{CAFile: other.CAFile}), srv.URL); err == nil {
		t.Fatal("another CA's bundle: the backend was reached, want it refused")
	}
	if _, err := tlsGet(t, mustTLSConfig(t, TLSOptions{CAFile: other.CAFile, InsecureSkipVerify: true}), srv.URL); err != nil {
		t.Errorf("with SWR_UPSTREAM_INSECURE_SKIP_VERIFY: %v, want the backend reached", err)
	}
}

func TestBadTLSFilesAreErrorsNamingTheSettingAndThePath(t *testing.T) {
	set, other := testcerts.New(t), testcerts.New(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	text := filepath.Join(dir, "text.pem")
	writeTestFile(t, text, "not a certificate\n")
	broken := filepath.Join(dir, "broken.pem")
	writeTestFile(t, broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	key := readTestFile(t, set.ClientKeyFile)

	tests := []struct {
		name string
		o    TLSOptions
		says []string // the error contains each
	}{
		{"missing CA file", TLSOptions{CAFile: missing}, []string{`SWR_UPSTREAM_CA_FILE="` + missing + `"`, "no such file"}},
		{"CA file is a directory", TLSOptions{CAFile: dir}, []string{`SWR_UPSTREAM_CA_FILE="` + dir + `"`, "is a directory"}},
		{"CA file of text", TLSOptions{CAFile: text}, []string{`SWR_UPSTREAM_CA_FILE="` + text + `"`, "no PEM certificate"}},
		{"CA file of a key", TLSOptions{CAFile: set.ClientKeyFile}, []string{`SWR_UPSTREAM_CA_FILE="` + set.ClientKeyFile + `"`, "no PEM certificate"}},
		{"CA file with a broken certificate", TLSOptions{CAFile: broken}, []string{`SWR_UPSTREAM_CA_FILE="` + broken + `"`, "certificate 1"}},
		{"missing client certificate", TLSOptions{CertFile: missing, KeyFile: set.ClientKeyFile},
			[]string{`SWR_UPSTREAM_CLIENT_CERT="` + missing + `"`, "no such file"}},
		{"missing client key", TLSOptions{CertFile: set.ClientCertFile, KeyFile: missing},
			[]string{`SWR_UPSTREAM_CLIENT_KEY="` + missing + `"`, "no such file"}},
		{"key of another certificate", TLSOptions{CertFile: set.ClientCertFile, KeyFile: other.ClientKeyFile},
			[]string{`SWR_UPSTREAM_CLIENT_CERT="` + set.ClientCertFile + `"`, `SWR_UPSTREAM_CLIENT_KEY="` + other.ClientKeyFile + `"`, "does not match"}},
		{"certificate and key swapped", TLSOptions{CertFile: set.ClientKeyFile, KeyFile: set.ClientCertFile},
			[]string{`SWR_UPSTREAM_CLIENT_CERT="` + set.ClientKeyFile + `"`, `SWR_UPSTREAM_CLIENT_KEY="` + set.ClientCertFile + `"`}},
		{"certificate without key", TLSOptions{CertFile: set.ClientCertFile},
			[]string{`SWR_UPSTREAM_CLIENT_CERT="` + set.ClientCertFile + `"`, `SWR_UPSTREAM_CLIENT_KEY=""`, "needs both"}},
		{"key without certificate", TLSOptions{KeyFile: set.ClientKeyFile},
			[]string{`SWR_UPSTREAM_CLIENT_CERT=""`, `SWR_UPSTREAM_CLIENT_KEY="` + set.ClientKeyFile + `"`, "needs both"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := TLSConfig(tt.o)
			if err == nil {
				t.Fatalf("TLSConfig = %v, want an error", cfg)
			}
			msg := err.Error()
			for _, s := range tt.says {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not say %s", msg, s)
				}
			}
			for _, path := range []string{tt.o.CAFile, tt.o.CertFile, tt.o.KeyFile} {
				if n := strings.Count(msg, path); path != "" && n > 1 {
					t.Errorf("error %q gives the path %s %d times, want it once at most", msg, path, n)
				}
			}
			for _, line := range strings.Split(key, "\n") {
				if len(line) > 16 && !strings.HasPrefix(line, "-----") && strings.Contains(msg, line) {
					t.Errorf("error %q shows the private key", msg)
				}
			}
		})
	}
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeTestFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
