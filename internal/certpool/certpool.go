// Package certpool loads the PEM bundles of CA certificates that settings name
// (SWR_UPSTREAM_CA_FILE, SWR_REDIS_CA_FILE), with errors that name the setting and the file.
package certpool

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Load returns the system roots (or, if they cannot be loaded, an empty pool) plus every
// certificate of the PEM file at path, which setting names. Unlike CertPool.AppendCertsFromPEM,
// a broken certificate is an error: skipping it would leave the server it was meant for
// unverifiable, found out only at the first connection.
func Load(setting, path string) (*x509.CertPool, error) {
	data, err := ReadFile(setting, path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool() // a copy: adding to it leaves the process's roots alone
	if err != nil {
		pool = x509.NewCertPool()
	}
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		n++
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: certificate %d: %w", setting, path, n, err)
		}
		pool.AddCert(c)
	}
	if n == 0 {
		return nil, fmt.Errorf("%s=%q: holds no PEM certificate (-----BEGIN CERTIFICATE-----)", setting, path)
	}
	return pool, nil
}

// ReadFile reads the file at path, which setting names, with an error that names both and says
// what failed without Go's path repetition.
func ReadFile(setting, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
		}
		return nil, fmt.Errorf("%s=%q: %w", setting, path, err)
	}
	return data, nil
}
