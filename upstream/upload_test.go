package upstream

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
)

// brokenUpload is a client's upload that breaks after some bytes (the client went away).
type brokenUpload struct{ n int }

func (b *brokenUpload) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errors.New("client closed the connection")
	}
	n := min(len(p), b.n)
	b.n -= n
	return n, nil
}

// Uploads that the client breaks off fail their exchange, but they are the client's failures: no
// number of them marks a backend down or counts as its failure (else anyone could take backends
// down at will by aborting POSTs).
func TestAbortedUploadsAreNotTheBackendsFailures(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{Health: HealthOptions{Fall: 1}}, bs[0].url, bs[1].url)
	for range 10 {
		_, err := c.Do(t.Context(), &Request{Method: http.MethodPost, URI: "/upload",
			Body: &brokenUpload{n: 100 << 10}, ContentLength: 1 << 20})
		if err == nil {
			t.Fatal("a broken upload succeeded")
		}
	}
	for _, s := range c.Servers() {
		if s.State != "up" || s.Failed != 0 || s.Failures != 0 {
			t.Errorf("%s after 10 aborted uploads: state %s, failed %d, failures %d; want up, 0, 0", s.URL, s.State, s.Failed, s.Failures)
		}
	}
	// A whole upload in memory still goes through and counts as the backend's success.
	resp, err := c.Do(t.Context(), &Request{Method: http.MethodPost, URI: "/upload",
		Body: bytes.NewReader([]byte("whole")), ContentLength: 5})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if st := c.Stats(); st.Success != 1 || st.Failed != 0 {
		t.Errorf("stats = %+v, want one success and no failure", st)
	}
}
