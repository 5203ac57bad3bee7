package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// pool is GET /_swr/servers of in, decoded.
type poolView struct {
	Instance string `json:"instance"`
	Healthy  int    `json:"healthy"`
	Servers  []struct {
		URL    string `json:"url"`
		State  string `json:"state"`
		Source string `json:"source"`
	} `json:"servers"`
}

func servers(t *testing.T, in *instance) poolView {
	t.Helper()
	r := get(t, in.URL+"/_swr/servers", "Authorization", "Bearer "+secret)
	var v poolView
	if r.StatusCode != http.StatusOK || json.Unmarshal([]byte(r.Body), &v) != nil {
		t.Fatalf("GET /_swr/servers: %d %s", r.StatusCode, r.Body)
	}
	return v
}

func (v poolView) has(u string) bool {
	for _, s := range v.Servers {
		if s.URL == u {
			return true
		}
	}
	return false
}

func deleteServer(t *testing.T, in *instance, path string, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, in.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("DELETE %s: %v", path, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// A backend added through one instance is used by the other within a second; removed through
// the other, it gets no more traffic from either; a restarted instance loads the fleet's pool
// from Redis, not its own SWR_UPSTREAM; refused changes change nothing.
func TestTheFleetSharesOnePoolManagedThroughEitherInstance(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	uncached := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("ok"))
	}
	a1, a2, a3 := newOrigin(t, uncached), newOrigin(t, uncached), newOrigin(t, uncached)
	fourth := newOrigin(t, uncached)
	env := map[string]string{"SWR_REDIS_URL": rdb.URL(), "SWR_INVALIDATE_SECRET": secret, "SWR_HEALTH_INTERVAL": "1h"}
	list := a1.URL + "," + a2.URL + "," + a3.URL
	A := startProxy(t, list, env)
	B := startProxy(t, list, env)
	if v := servers(t, B); len(v.Servers) != 3 || v.Healthy != 3 || v.Servers[0].Source != "env" {
		t.Fatalf("B's pool at start: %+v, want the three of SWR_UPSTREAM", v)
	}

	// Refused: no token, a bad URL. Nothing changes.
	if code, _ := postJSON(t, A.URL+"/_swr/servers", "", `{"url":"`+fourth.URL+`"}`); code != http.StatusUnauthorized {
		t.Errorf("POST without a token: %d, want 401", code)
	}
	if code, body := postJSON(t, A.URL+"/_swr/servers", secret, `{"url":"ftp://x"}`); code != http.StatusBadRequest || body["error"] == nil {
		t.Errorf("POST of a bad URL: %d %v, want 400 with an error", code, body)
	}
	if code := deleteServer(t, B, "/_swr/servers?url="+url.QueryEscape(a1.URL), ""); code != http.StatusUnauthorized {
		t.Errorf("DELETE without a token: %d, want 401", code)
	}
	if v := servers(t, A); len(v.Servers) != 3 {
		t.Fatalf("after refused changes A has %d backends, want 3", len(v.Servers))
	}

	// Added through A: B sends it traffic within a second.
	if code, body := postJSON(t, A.URL+"/_swr/servers", secret, `{"url":"`+fourth.URL+`"}`); code != http.StatusCreated || body["source"] != "api" {
		t.Fatalf("POST the fourth: %d %v, want 201 from the api", code, body)
	}
	if code, _ := postJSON(t, B.URL+"/_swr/servers", secret, `{"url":"`+fourth.URL+`/"}`); code != http.StatusConflict {
		t.Errorf("POST the fourth again through B: %d, want 409", code)
	}
	added := time.Now()
	testenv.WaitFor(t, 5*time.Second, "B to list the fourth backend", func() bool { return servers(t, B).has(fourth.URL) })
	if d := time.Since(added); d > time.Second {
		t.Errorf("B saw the added backend after %v, want within a second", d)
	}
	for i := range 40 {
		if r := get(t, B.URL+"/n"+strings.Repeat("x", i)); r.StatusCode != 200 {
			t.Fatalf("GET through B: %d", r.StatusCode)
		}
	}
	if fourth.hits.Load() == 0 {
		t.Fatal("B sent the fourth backend nothing in 40 round-robin requests")
	}

	// A restarted instance whose own SWR_UPSTREAM names one backend loads the fleet's four.
	C := startProxy(t, a1.URL, env)
	if v := servers(t, C); len(v.Servers) != 4 || !v.has(fourth.URL) {
		t.Fatalf("a new instance's pool: %+v, want the fleet's four", v)
	}

	// Removed through B (weldr's host/port form): A stops sending it traffic.
	u, _ := url.Parse(fourth.URL)
	if code := deleteServer(t, B, "/_swr/servers/"+u.Hostname()+"/"+u.Port(), secret); code != http.StatusNoContent {
		t.Fatalf("DELETE the fourth through B: %d, want 204", code)
	}
	if code := deleteServer(t, A, "/_swr/servers?url="+url.QueryEscape(fourth.URL), secret); code != http.StatusNotFound {
		t.Errorf("DELETE it again through A: %d, want 404", code)
	}
	testenv.WaitFor(t, 5*time.Second, "A to drop the fourth backend", func() bool { return !servers(t, A).has(fourth.URL) })
	before := fourth.hits.Load()
	for i := range 30 {
		get(t, A.URL+"/after"+strings.Repeat("y", i))
	}
	if n := fourth.hits.Load() - before; n != 0 {
		t.Errorf("A sent %d requests to the removed backend", n)
	}
}
