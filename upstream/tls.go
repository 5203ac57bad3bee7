package upstream

import (
	"crypto/tls"
	"fmt"

	"github.com/swrproxy/swrproxy/internal/certpool"
)

// TLSOptions are the settings of TLS towards backends (SWR_UPSTREAM_CA_FILE,
// SWR_UPSTREAM_CLIENT_CERT, SWR_UPSTREAM_CLIENT_KEY, SWR_UPSTREAM_SERVER_NAME,
// SWR_UPSTREAM_INSECURE_SKIP_VERIFY). The zero value means the system roots, no client
// certificate, and each backend's host as the server name.
type TLSOptions struct {
	CAFile             string // PEM bundle trusted besides the system roots; "" = the system roots only
	CertFile, KeyFile  string // client certificate (chain) and its private key, PEM; both or neither
	ServerName         string // SNI and the name the certificate is verified against; "" = the dialled host
	InsecureSkipVerify bool   // accept any certificate: for tests only
}

// TLSConfig builds the client TLS config of the connections to backends: TLS 1.2 at the least;
// the system roots plus every certificate of the PEM bundle CAFile (blocks other than
// CERTIFICATE are ignored, so a bundle may carry comments or keys); the client certificate of
// CertFile and KeyFile, for backends that require one (mTLS); ServerName and InsecureSkipVerify as
// given. If the system roots cannot be loaded, the CA file's certificates are the only roots.
//
// It reads the files once: a certificate renewed on disk takes effect at the next start. An
// error names the setting and the path (never a key's contents): a file that cannot be read, a
// CA file without a certificate or with one that does not parse, a certificate and key that do
// not make a pair, or only one of the two.
func TLSConfig(o TLSOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.ServerName,
		InsecureSkipVerify: o.InsecureSkipVerify,
	}
	if o.CAFile != "" {
		roots, err := certpool.Load("SWR_UPSTREAM_CA_FILE", o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream: %w", err)
		}
		cfg.RootCAs = roots
	}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := clientCert(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// clientCert loads the client certificate and key. crypto/tls's errors say what is wrong with
// the PEM without quoting it, so the key cannot leak into a log.
func clientCert(certFile, keyFile string) (tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return tls.Certificate{}, fmt.Errorf("upstream: SWR_UPSTREAM_CLIENT_CERT=%q, SWR_UPSTREAM_CLIENT_KEY=%q: a client certificate needs both",
			certFile, keyFile)
	}
	certPEM, err := upstreamFile("SWR_UPSTREAM_CLIENT_CERT", certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := upstreamFile("SWR_UPSTREAM_CLIENT_KEY", keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("upstream: SWR_UPSTREAM_CLIENT_CERT=%q, SWR_UPSTREAM_CLIENT_KEY=%q: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// upstreamFile reads a file a TLS setting names.
func upstreamFile(setting, path string) ([]byte, error) {
	data, err := certpool.ReadFile(setting, path)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	return data, nil
}
