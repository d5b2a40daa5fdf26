package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The ext attribute is base64(JSON) and the reference inspects it with
// JavaScript's loose typing (typeof, truthiness, instanceof). encoding/json
// into map[string]any would cost dozens of allocations per request, so a
// small JSON reader here validates the whole text like JSON.parse and
// hands out JavaScript-typed views of the few members we read. Strings
// without escapes are substrings of the decoded text: decoding an ext
// costs one allocation plus one per scope array.

type jsKind uint8

const (
	kindAbsent jsKind = iota // key not present (JavaScript undefined)
	kindNull
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// jsValue is one JSON value as JavaScript would see it.
type jsValue struct {
	kind jsKind
	b    bool
	num  float64
	str  string // unescaped value of a string
	raw  string // JSON text of an array or object
}

// truthy is JavaScript's ToBoolean.
func (v jsValue) truthy() bool {
	switch v.kind {
	case kindBool:
		return v.b
	case kindNumber:
		return v.num != 0 && !math.IsNaN(v.num)
	case kindString:
		return v.str != ""
	case kindArray, kindObject:
		return true
	}
	return false
}

// maxJSONDepth bounds nesting; ext texts are bounded by the 4096-byte
// header anyway, this only keeps the recursion obviously finite.
const maxJSONDepth = 512

type jsonReader struct {
	s     string
	i     int
	depth int
}

func (r *jsonReader) ws() {
	for r.i < len(r.s) {
		switch r.s[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// value reads one JSON value at r.i (after whitespace). Arrays and objects
// are validated in full and returned as raw text.
func (r *jsonReader) value() (jsValue, bool) {
	r.ws()
	if r.i >= len(r.s) {
		return jsValue{}, false
	}
	switch c := r.s[r.i]; {
	case c == '"':
		s, ok := r.str()
		return jsValue{kind: kindString, str: s}, ok
	case c == '{':
		start := r.i
		ok := r.object(r.skipValue)
		return jsValue{kind: kindObject, raw: r.s[start:r.i]}, ok
	case c == '[':
		start := r.i
		ok := r.array(func() bool { return r.skipValue("") })
		return jsValue{kind: kindArray, raw: r.s[start:r.i]}, ok
	case c == '-' || c >= '0' && c <= '9':
		return r.number()
	case strings.HasPrefix(r.s[r.i:], "true"):
		r.i += 4
		return jsValue{kind: kindBool, b: true}, true
	case strings.HasPrefix(r.s[r.i:], "false"):
		r.i += 5
		return jsValue{kind: kindBool}, true
	case strings.HasPrefix(r.s[r.i:], "null"):
		r.i += 4
		return jsValue{kind: kindNull}, true
	}
	return jsValue{}, false
}

// object reads the object at r.i ('{'), validating it, and calls visit
// for each member with r positioned at the member's value; visit must read
// exactly that value. This lets decodeExt pick members out while it
// validates, in a single pass.
func (r *jsonReader) object(visit func(key string) bool) bool {
	if empty, ok := r.open('}'); empty || !ok {
		return ok
	}
	for {
		r.ws()
		if r.i >= len(r.s) || r.s[r.i] != '"' {
			return false
		}
		key, ok := r.str()
		if !ok {
			return false
		}
		r.ws()
		if r.i >= len(r.s) || r.s[r.i] != ':' {
			return false
		}
		r.i++
		if !visit(key) {
			return false
		}
		if more, ok := r.separator('}'); !more {
			if ok {
				r.depth--
			}
			return ok
		}
	}
}

// open steps into an object or array (r.i is at its opening bracket);
// empty reports that it closed at once.
func (r *jsonReader) open(closing byte) (empty, ok bool) {
	if r.depth++; r.depth > maxJSONDepth {
		return false, false
	}
	r.i++
	r.ws()
	if r.i < len(r.s) && r.s[r.i] == closing {
		r.i++
		r.depth--
		return true, true
	}
	return false, true
}

// separator reads what follows a member or element: ',' (more follow) or
// the closing bracket (done); anything else is invalid.
func (r *jsonReader) separator(closing byte) (more, ok bool) {
	r.ws()
	if r.i < len(r.s) {
		switch r.s[r.i] {
		case ',':
			r.i++
			return true, true
		case closing:
			r.i++
			return false, true
		}
	}
	return false, false
}

func (r *jsonReader) skipValue(string) bool {
	_, ok := r.value()
	return ok
}

// array reads the array at r.i ('['), validating it, and calls visit for
// each element with r positioned at it; visit must read exactly that
// element.
func (r *jsonReader) array(visit func() bool) bool {
	if empty, ok := r.open(']'); empty || !ok {
		return ok
	}
	for {
		if !visit() {
			return false
		}
		if more, ok := r.separator(']'); !more {
			if ok {
				r.depth--
			}
			return ok
		}
	}
}

func (r *jsonReader) number() (jsValue, bool) {
	start := r.i
	s := r.s
	if s[r.i] == '-' {
		r.i++
	}
	digits := func() int {
		n := 0
		for r.i < len(s) && s[r.i] >= '0' && s[r.i] <= '9' {
			r.i++
			n++
		}
		return n
	}
	switch {
	case r.i < len(s) && s[r.i] == '0':
		r.i++
	case digits() == 0:
		return jsValue{}, false
	}
	if r.i < len(s) && s[r.i] == '.' {
		r.i++
		if digits() == 0 {
			return jsValue{}, false
		}
	}
	if r.i < len(s) && (s[r.i] == 'e' || s[r.i] == 'E') {
		r.i++
		if r.i < len(s) && (s[r.i] == '+' || s[r.i] == '-') {
			r.i++
		}
		if digits() == 0 {
			return jsValue{}, false
		}
	}
	f, err := strconv.ParseFloat(s[start:r.i], 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) { // out of range = ±Infinity or 0, as in JavaScript
		return jsValue{}, false
	}
	return jsValue{kind: kindNumber, num: f}, true
}

// str reads a JSON string at r.i and returns its value: a substring when
// there are no escapes. Lone surrogates in \u escapes become U+FFFD (what
// Node's UTF-8 encoder makes of them when hashing). Raw bytes that are not
// valid UTF-8 are rejected — [quirk] rejected: Node would have replaced
// them with U+FFFD and carried on; no client produces them.
func (r *jsonReader) str() (string, bool) {
	r.i++ // opening quote
	start := r.i
	s := r.s
	for r.i < len(s) {
		r.i += plainPrefix(s[r.i:])
		if r.i >= len(s) {
			break
		}
		c := s[r.i]
		switch {
		case c == '"':
			v := s[start:r.i]
			r.i++
			return v, true
		case c == '\\':
			return r.strSlow(start)
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			r.i++
		default:
			ru, n := utf8.DecodeRuneInString(s[r.i:])
			if ru == utf8.RuneError && n <= 1 {
				return "", false
			}
			r.i += n
		}
	}
	return "", false
}

func (r *jsonReader) strSlow(start int) (string, bool) {
	s := r.s
	b := make([]byte, 0, r.i-start+16)
	b = append(b, s[start:r.i]...)
	for r.i < len(s) {
		c := s[r.i]
		switch {
		case c == '"':
			r.i++
			return string(b), true
		case c < 0x20:
			return "", false
		case c == '\\':
			if r.i+1 >= len(s) {
				return "", false
			}
			r.i += 2
			switch s[r.i-1] {
			case '"', '\\', '/':
				b = append(b, s[r.i-1])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				u, ok := r.hex4()
				if !ok {
					return "", false
				}
				ru := rune(u)
				if utf16.IsSurrogate(ru) && ru < 0xdc00 && strings.HasPrefix(s[r.i:], `\u`) {
					save := r.i
					r.i += 2
					if lo, ok := r.hex4(); ok && lo >= 0xdc00 && lo <= 0xdfff {
						ru = utf16.DecodeRune(ru, rune(lo))
					} else {
						r.i = save
					}
				}
				b = utf8.AppendRune(b, ru) // lone surrogates append U+FFFD
			default:
				return "", false
			}
		case c < utf8.RuneSelf:
			b = append(b, c)
			r.i++
		default:
			ru, n := utf8.DecodeRuneInString(s[r.i:])
			if ru == utf8.RuneError && n <= 1 {
				return "", false
			}
			b = append(b, s[r.i:r.i+n]...)
			r.i += n
		}
	}
	return "", false
}

func (r *jsonReader) hex4() (uint16, bool) {
	if r.i+4 > len(r.s) {
		return 0, false
	}
	var v uint16
	for _, c := range []byte(r.s[r.i : r.i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint16(c)
	}
	r.i += 4
	return v, true
}

// scopeArray returns the elements of a validated array text and whether
// every one is a string that is a valid scope. One pass, one allocation.
func scopeArray(raw string) ([]string, bool) {
	var small [16]string
	got := small[:0]
	ok := true
	forEachElement(raw, func(v jsValue) {
		if v.kind != kindString || !ValidScope(v.str) {
			ok = false
		}
		got = append(got, v.str)
	})
	out := make([]string, len(got))
	copy(out, got)
	return out, ok
}

// forEachElement calls visit for each element of a validated array text.
func forEachElement(raw string, visit func(v jsValue)) {
	r := jsonReader{s: raw}
	r.array(func() bool {
		v, ok := r.value()
		visit(v)
		return ok
	})
}

// extData is a decoded ext attribute: the two members the reference reads.
type extData struct {
	certificate      jsValue
	cert             certFields // filled when certificate is an object
	authorizedScopes jsValue
}

// certFields are the certificate members, JavaScript-typed; kindAbsent
// means the key is not there.
type certFields struct {
	version, scopes, start, expiry, seed, signature, issuer jsValue
	hasClientID                                             bool
}

// decodeExt parses an ext attribute like the reference's parseExt:
// base64-decode leniently, JSON.parse the UTF-8 text. Any failure is
// "Failed to parse ext". A JSON value that is not an object (number,
// string, array, …) carries no members and is a no-op, as in the reference
// — except null: JavaScript throws a TypeError reading a member of null;
// we fail it with "Failed to parse ext" too [quirk: message differs].
func decodeExt(ext string) (extData, error) {
	var d extData
	var stack [3072]byte
	text := string(decodeBase64Lenient(stack[:0], ext))
	r := jsonReader{s: text}
	r.ws()
	var top jsValue
	var ok bool
	if r.i < len(text) && text[r.i] == '{' {
		top.kind = kindObject
		ok = r.object(func(key string) bool {
			var ok bool
			switch key {
			case "certificate":
				d.cert = certFields{} // a later duplicate key replaces the earlier value
				r.ws()
				if r.i < len(text) && text[r.i] == '{' {
					start := r.i
					ok = r.object(func(k string) bool {
						v, ok := r.value()
						d.cert.set(k, v)
						return ok
					})
					d.certificate = jsValue{kind: kindObject, raw: text[start:r.i]}
					return ok
				}
				d.certificate, ok = r.value()
			case "authorizedScopes":
				d.authorizedScopes, ok = r.value()
			default:
				_, ok = r.value()
			}
			return ok
		})
	} else {
		top, ok = r.value()
	}
	if ok {
		r.ws()
		ok = r.i == len(text)
	}
	if !ok || top.kind == kindNull {
		return extData{}, ErrFailedToParseExt
	}
	if top.kind != kindObject {
		return extData{}, nil
	}
	return d, nil
}

var certMemberNames = [...]string{"version", "scopes", "start", "expiry", "seed", "signature", "issuer"}

func (c *certFields) set(key string, v jsValue) {
	if key == "clientId" {
		c.hasClientID = true
		return
	}
	for i, n := range certMemberNames {
		if n == key {
			*[...]*jsValue{&c.version, &c.scopes, &c.start, &c.expiry, &c.seed, &c.signature, &c.issuer}[i] = v
			return
		}
	}
}

// appendJSNumber appends JavaScript's Number::toString of f, which is how
// the reference renders start/expiry into the signed text.
func appendJSNumber(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	case f == 0:
		return append(b, '0')
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'e', -1, 64)
	// Go writes e+21 / e-07; JavaScript writes e+21 / e-7.
	e := bytes.IndexByte(b[start:], 'e') + start
	if e+2 < len(b) && b[e+2] == '0' {
		b = append(b[:e+2], b[e+3:]...)
	}
	return b
}

// utf16Len is JavaScript's String length.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

// Ext returns the ext attribute the official clients send for c:
// base64(JSON.stringify({certificate: <object>, authorizedScopes: […]})),
// or "" when there is neither. The certificate text must be a JSON object;
// its member order is kept. The result is read back with the verifier's
// own reader (decodeExt), so text that encoding/json tolerates but a
// verifier refuses (invalid UTF-8, nesting past maxJSONDepth) is an
// ErrSignExt here rather than a 401 later.
func (c Credentials) Ext() (string, error) {
	if c.Certificate == "" && c.AuthorizedScopes == nil {
		return "", nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	if c.Certificate != "" {
		cert := strings.TrimSpace(c.Certificate)
		if !strings.HasPrefix(cert, "{") || !json.Valid([]byte(cert)) {
			return "", refuse(ErrSignExt, "the certificate is not a JSON object")
		}
		b.WriteString(`"certificate":`)
		if err := json.Compact(&b, []byte(cert)); err != nil {
			return "", refuse(ErrSignExt, err.Error())
		}
	}
	if c.AuthorizedScopes != nil {
		if c.Certificate != "" {
			b.WriteByte(',')
		}
		b.WriteString(`"authorizedScopes":`)
		if err := appendScopesJSON(&b, c.AuthorizedScopes); err != nil {
			return "", err
		}
	}
	b.WriteByte('}')
	ext := base64.StdEncoding.EncodeToString(b.Bytes())
	if _, err := decodeExt(ext); err != nil {
		return "", refuse(ErrSignExt, "the certificate is not valid UTF-8 or nests deeper than "+strconv.Itoa(maxJSONDepth-1)+" levels")
	}
	return ext, nil
}

// appendScopesJSON writes a scope list as JSON.stringify does (scopes are
// printable ASCII, so only '"' and '\' need escaping).
func appendScopesJSON(b *bytes.Buffer, scopes []string) error {
	b.WriteByte('[')
	for i, s := range scopes {
		if !ValidScope(s) {
			return refuse(ErrSignExt, "invalid authorizedScopes scope "+quoteForError(s))
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := 0; j < len(s); j++ {
			if s[j] == '"' || s[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte(']')
	return nil
}
