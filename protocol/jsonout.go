package protocol

import (
	"bytes"
	"encoding/json"
	"regexp"
)

// Every JSON body tcauth writes — API answers and errors of the control
// plane, the sidecar's refusals, the login service, the CLI's output — goes
// through these, so that scopes such as notes:write:<..>/* read as they
// are written, not as notes:write:\u003c..\u003e/*. JSON.stringify, which
// produces the reference service's bodies, escapes none of <, > and &, and
// nothing in a JSON body read by a JSON parser needs it.

// MarshalIndent is JSON.stringify(v, null, 2): two-space indent, no HTML
// escaping.
func MarshalIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return UnescapeHTML(b), nil
}

// Marshal is JSON.stringify(v): compact, no HTML escaping.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return UnescapeHTML(b), nil
}

var htmlEscapes = regexp.MustCompile(`\\+u00(3c|3e|26)`)

// UnescapeHTML undoes encoding/json's \u003c, \u003e and \u0026 in encoded
// JSON. An Encoder with SetEscapeHTML(false) is not enough: the output of
// MarshalJSON methods (this package's types have them) is already escaped
// by the json.Marshal inside them. An escaped backslash followed by the
// text "u003c" is left alone.
func UnescapeHTML(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u00`)) {
		return b
	}
	return htmlEscapes.ReplaceAllFunc(b, func(m []byte) []byte {
		n := bytes.IndexByte(m, 'u') // number of backslashes
		if n%2 == 0 {
			return m
		}
		var ch byte
		switch string(m[len(m)-2:]) {
		case "3c":
			ch = '<'
		case "3e":
			ch = '>'
		default:
			ch = '&'
		}
		out := append([]byte{}, m[:n-1]...)
		return append(out, ch)
	})
}
