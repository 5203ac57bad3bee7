package invalidate

import (
	"encoding/json"
	"strings"
	"testing"
)

var decodeTests = []struct {
	body string
	ok   bool
	mode Mode
}{
	{`{"keys":["/a"]}`, true, Auto},
	{`{"keys":["/a"],"prefixes":["/b/"],"tags":["t"],"mode":"clear"}`, true, Clear},
	{`{"all":true,"mode":"refresh"}`, true, Refresh},
	{`{"all":false}`, false, ""},
	{`{}`, false, ""},
	{``, false, ""},
	{`[]`, false, ""},
	{`{"keys":"/a"}`, false, ""},
	{`{"keys":["/a"],"extra":1}`, false, ""},
	{`{"keys":["/a"]}{"keys":["/b"]}`, false, ""},
	{`{"tags":["a b"]}`, false, ""},
	{`{"keys":["/a\n"]}`, false, ""},
	{`{"keys":["/a"],"mode":"CLEAR"}`, false, ""},
}

func TestDecodeRequest(t *testing.T) {
	for _, tt := range decodeTests {
		r, err := decodeRequest([]byte(tt.body))
		if (err == nil) != tt.ok {
			t.Errorf("decodeRequest(%q) error = %v, want ok=%v", tt.body, err, tt.ok)
			continue
		}
		if tt.ok && r.Mode != tt.mode {
			t.Errorf("decodeRequest(%q).Mode = %q, want %q", tt.body, r.Mode, tt.mode)
		}
	}
}

func TestDecodeRequestRejectsTooManyItems(t *testing.T) {
	keys := make([]string, MaxItems+1)
	for i := range keys {
		keys[i] = "/k"
	}
	b, _ := json.Marshal(Request{Keys: keys})
	if _, err := decodeRequest(b); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("error = %v, want a limit error", err)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, tt := range decodeTests {
		f.Add(tt.body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r, err := decodeRequest([]byte(body)) // must not panic
		if err != nil {
			return
		}
		if len(r.Keys)+len(r.Prefixes)+len(r.Tags) == 0 && !r.All {
			t.Fatalf("accepted an empty selection: %q", body)
		}
		if r.Mode != Clear && r.Mode != Refresh && r.Mode != Auto {
			t.Fatalf("accepted mode %q", r.Mode)
		}
	})
}
