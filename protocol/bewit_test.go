package protocol

import (
	"encoding/base64"
	"testing"
)

func TestHasBewit(t *testing.T) {
	cases := map[string]bool{
		"/x?bewit=abc":        true,
		"/x?a=1&bewit=":       true,
		"/x?abewit=1":         false,
		"/x?a=bewit=1":        false,
		"x?bewit=abc":         false,
		"?bewit=abc":          false,
		"/?bewit=":            true,
		"/x\n?bewit=abc":      false, // JavaScript's . stops at line terminators
		"/x?bewit=a\n":        true,
		"/x\u2028?bewit=abc":  false,
		"/x/bewit=?bewit=abc": true,
		"":                    false,
	}
	for res, want := range cases {
		if got := HasBewit(res); got != want {
			t.Errorf("HasBewit(%q) = %v, want %v", res, got, want)
		}
	}
}

func TestParseBewit(t *testing.T) {
	tok := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	good := tok(`id\123\mac\ext`)
	cases := []struct {
		name, method, resource string
		want                   Bewit
		url                    string
		err                    error
	}{
		{"only param", "GET", "/x?bewit=" + good, Bewit{"id", "123", "mac", "ext"}, "/x", nil},
		{"head", "head", "/x?bewit=" + good, Bewit{"id", "123", "mac", "ext"}, "/x", nil},
		{"first of several", "GET", "/x?bewit=" + good + "&a=1&b=2", Bewit{"id", "123", "mac", "ext"}, "/x?a=1&b=2", nil},
		{"middle", "GET", "/x?a=1&bewit=" + good + "&b=2", Bewit{"id", "123", "mac", "ext"}, "/x?a=1&b=2", nil},
		{"last", "GET", "/x?a=1&bewit=" + good, Bewit{"id", "123", "mac", "ext"}, "/x?a=1", nil},
		{"last occurrence wins", "GET", "/x?bewit=" + tok(`a\1\m\`) + "&bewit=" + good, Bewit{"id", "123", "mac", "ext"}, "/x?bewit=" + tok(`a\1\m\`), nil},
		{"empty ext", "GET", "/x?bewit=" + tok(`id\1\m\`), Bewit{"id", "1", "m", ""}, "/x", nil},
		{"padding is not in the alphabet", "GET", "/x?bewit=" + base64.URLEncoding.EncodeToString([]byte(`id\1\m\e`)), Bewit{}, "", ErrInvalidBewitEncode},

		{"too long", "GET", "/x?bewit=" + good + "&p=" + string(make([]byte, MaxHeaderLength)), Bewit{}, "", ErrResourceTooLong},
		{"empty", "GET", "/x?bewit=", Bewit{}, "", ErrEmptyBewit},
		{"empty then more", "GET", "/x?bewit=&a=1", Bewit{}, "", ErrEmptyBewit},
		{"post", "POST", "/x?bewit=" + good, Bewit{}, "", ErrInvalidMethod},
		{"bad chars", "GET", "/x?bewit=ab+c", Bewit{}, "", ErrInvalidBewitEncode},
		{"3 parts", "GET", "/x?bewit=" + tok(`a\b\c`), Bewit{}, "", ErrInvalidBewitStruct},
		{"5 parts", "GET", "/x?bewit=" + tok(`a\b\c\d\e`), Bewit{}, "", ErrInvalidBewitStruct},
		{"missing id", "GET", "/x?bewit=" + tok(`\1\m\`), Bewit{}, "", ErrMissingBewitAttrs},
		{"missing exp", "GET", "/x?bewit=" + tok(`a\\m\`), Bewit{}, "", ErrMissingBewitAttrs},
		{"missing mac", "GET", "/x?bewit=" + tok(`a\1\\`), Bewit{}, "", ErrMissingBewitAttrs},
		{"dollar ends value: no match", "GET", "/x?bewit=abc$", Bewit{}, "", ErrUnauthorized},
		{"dangling ampersand: no match", "GET", "/x?bewit=" + good + "&", Bewit{}, "", ErrUnauthorized},
		{"not a path", "GET", "x?bewit=" + good, Bewit{}, "", ErrUnauthorized},
		{"earlier bewit used when the last cannot match", "GET", "/x?bewit=" + good + "&a=1&bewit=zz$", Bewit{"id", "123", "mac", "ext"}, "/x?a=1&bewit=zz$", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, u, err := ParseBewit(c.method, c.resource)
			if err != c.err || b != c.want || u != c.url {
				t.Errorf("got %+v %q %v; want %+v %q %v", b, u, err, c.want, c.url, c.err)
			}
		})
	}
}

func TestDecodeBase64Lenient(t *testing.T) {
	cases := map[string]string{
		"e30=":     "{}",
		"e30":      "{}",
		"e3 0=":    "{}",
		"e30=garb": "{}",
		"YQ":       "a",
		"Y":        "",
		"-_8":      "\xfb\xff",
		"+/8":      "\xfb\xff",
	}
	for in, want := range cases {
		if got := string(decodeBase64Lenient(nil, in)); got != want {
			t.Errorf("decode(%q) = %q, want %q", in, got, want)
		}
	}
}
