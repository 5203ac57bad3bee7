// Package testcerts makes throwaway certificates for tests of TLS towards backends: a CA, a
// server certificate and a client certificate it signed, written as PEM files into the test's
// temporary directory, and TLS httptest servers that present them. Nothing is checked in, so
// nothing expires.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ClientName is the common name of every Set's client certificate, for a server to check whom it
// verified.
const ClientName = "swrproxy test client"

// Set is a CA and the two certificates it signed. The files are PEM: certificates as
// CERTIFICATE blocks, keys as PKCS #8 PRIVATE KEY blocks. Each Set has its own CA, so the
// certificates of one Set are unknown to a client that trusts another's.
type Set struct {
	CAFile         string         // the CA certificate
	CAPool         *x509.CertPool // the CA alone
	ServerCertFile string         // the server certificate, for the names given to New
	ServerKeyFile  string
	ClientCertFile string // the client certificate (common name ClientName), for mTLS
	ClientKeyFile  string

	server, client tls.Certificate
}

// New makes a Set in a new directory under tb.TempDir(). The server certificate is valid for
// serverNames, each a DNS name or an IP address; with none, for 127.0.0.1, ::1 and localhost,
// where httptest servers listen. It fails the test if anything goes wrong.
func New(tb testing.TB, serverNames ...string) *Set {
	tb.Helper()
	if len(serverNames) == 0 {
		serverNames = []string{"127.0.0.1", "::1", "localhost"}
	}
	dir := tb.TempDir()
	s := &Set{
		CAFile:         filepath.Join(dir, "ca.pem"),
		ServerCertFile: filepath.Join(dir, "server.pem"),
		ServerKeyFile:  filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
	}
	now := time.Now()
	caKey := newKey(tb)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: "swrproxy test CA"},
		NotBefore:             now.Add(-time.Hour), // a clock a little behind still accepts it
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER := sign(tb, caTmpl, caTmpl, caKey, caKey)
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatalf("testcerts: parse the CA: %v", err)
	}
	s.CAPool = x509.NewCertPool()
	s.CAPool.AddCert(ca)
	writePEM(tb, s.CAFile, "CERTIFICATE", caDER)

	serverTmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: serverNames[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range serverNames {
		if ip := net.ParseIP(n); ip != nil {
			serverTmpl.IPAddresses = append(serverTmpl.IPAddresses, ip)
		} else {
			serverTmpl.DNSNames = append(serverTmpl.DNSNames, n)
		}
	}
	s.server = leaf(tb, serverTmpl, ca, caKey, s.ServerCertFile, s.ServerKeyFile)

	clientTmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: ClientName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	s.client = leaf(tb, clientTmpl, ca, caKey, s.ClientCertFile, s.ClientKeyFile)
	return s
}

// ServerTLS returns a new server config presenting the server certificate. With
// requireClientCert, the handshake fails unless the client presents a certificate this Set's CA
// signed (tls.RequireAndVerifyClientCert).
func (s *Set) ServerTLS(requireClientCert bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{s.server}}
	if requireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = s.CAPool
	}
	return cfg
}

// ClientTLS returns a new client config that trusts only this Set's CA and presents its client
// certificate.
func (s *Set) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: s.CAPool, Certificates: []tls.Certificate{s.client}, MinVersion: tls.VersionTLS12}
}

// NewServer starts a TLS httptest server of h on 127.0.0.1 with ServerTLS(requireClientCert),
// closed when the test ends. Failed handshakes, which such tests provoke on purpose, are not
// logged.
func (s *Set) NewServer(tb testing.TB, h http.Handler, requireClientCert bool) *httptest.Server {
	tb.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = s.ServerTLS(requireClientCert)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv
}

// leaf signs tmpl with the CA, writes the certificate and a new key to certFile and keyFile,
// and returns them as a tls.Certificate.
func leaf(tb testing.TB, tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certFile, keyFile string) tls.Certificate {
	tb.Helper()
	key := newKey(tb)
	der := sign(tb, tmpl, ca, key, caKey)
	writePEM(tb, certFile, "CERTIFICATE", der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("testcerts: marshal a key: %v", err)
	}
	writePEM(tb, keyFile, "PRIVATE KEY", keyDER)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		tb.Fatalf("testcerts: load %s: %v", certFile, err)
	}
	return cert
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("testcerts: generate a key: %v", err)
	}
	return key
}

func sign(tb testing.TB, tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) []byte {
	tb.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		tb.Fatalf("testcerts: sign %q: %v", tmpl.Subject.CommonName, err)
	}
	return der
}

// serial is a random 128-bit serial number, so two Sets never issue the same one.
func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		tb.Fatalf("testcerts: serial number: %v", err)
	}
	return n
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatalf("testcerts: write %s: %v", path, err)
	}
}
