package strictjson

import (
	"strings"
	"testing"
)

func TestDecodeIsStrict(t *testing.T) {
	type body struct {
		URL string `json:"url"`
	}
	var ok body
	if err := Decode([]byte(` {"url":"x"} `), &ok, "x"); err != nil || ok.URL != "x" {
		t.Fatalf("a good body: %+v, %v", ok, err)
	}
	for in, says := range map[string]string{
		``:                    "empty body: send a JSON object",
		`{"url":1}`:           "invalid JSON",
		`{"url":"x","y":1}`:   "unknown field",
		`{"url":"x"}{}`:       "more than one value",
		`{"url":"x"} garbage`: "more than one value",
		`{"url":"x"`:          "invalid JSON",
	} {
		var b body
		if err := Decode([]byte(in), &b, "a JSON object"); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("Decode(%q) = %v, want an error saying %q", in, err, says)
		}
	}
}
