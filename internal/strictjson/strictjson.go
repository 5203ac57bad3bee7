// Package strictjson decodes the JSON bodies of swrproxy's private endpoints strictly: one value,
// no unknown field, nothing after it. A lenient decoder would let a typo (a misspelt field) pass
// as "nothing asked", and trailing bytes hide a second request.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Decode decodes body, one JSON value, into v. An empty body, invalid JSON, an unknown field, a
// second value or trailing garbage is an error saying so; want describes what to send, for the
// empty-body error (e.g. `a JSON object such as {"url": "http://host:port"}`).
func Decode(body []byte, v any, want string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty body: send " + want)
		}
		return fmt.Errorf("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON: more than one value in the body")
	}
	return nil
}
