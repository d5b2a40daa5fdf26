package protocol

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestDifferentialAgainstHawk compares our hand-written parsers with the
// reference's own code on random inputs: hawk 9's parseAuthorizationHeader
// (+ its required-attributes check), its bewit regexp, Node's lenient
// base64 + JSON.parse for ext, Number#toString and String#length. It needs
// node and the npm packages of integration/node (make deps-node).
func TestDifferentialAgainstHawk(t *testing.T) {
	hawkUtils, _ := filepath.Abs("../integration/node/node_modules/hawk/lib/utils.js")
	if _, err := os.Stat(hawkUtils); err != nil {
		t.Skip("hawk 9 not installed (run make deps-node); skipping the differential test")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed; skipping the differential test")
	}
	dir := t.TempDir()
	inFile, outFile := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
	rng := rand.New(rand.NewSource(1))
	pieces := []string{"Hawk", "hawk", "Bearer", " ", "  ", "\t", "\n", "\u00a0", "\u2028", "id", "ts", "nonce", "mac", "ext", "hash", "app", "dlg", "foo",
		"=", "\"", ",", ", ", "\\", "a", "1", "é", "x-", "$", "_", "+/=", "\"a\"", "=\"v\"", "id=\"a\"", "ts=\"1\"", "nonce=\"n\"", "mac=\"m\"", "id=\"é\"", "ts=\"\"", "ext=\"a b\"", "app=\"p\"", "dlg=\"<>\"", "hash=\"\\\"", "\u3000", "\r"}
	var headers []string
	for i := 0; i < 20000; i++ {
		var b strings.Builder
		if rng.Intn(3) > 0 {
			b.WriteString("Hawk ")
			for _, a := range []string{`id="a"`, `ts="1"`, `nonce="n"`, `mac="m"`} {
				if rng.Intn(6) > 0 {
					b.WriteString(a + ", ")
				}
			}
		}
		for n := rng.Intn(12); n > 0; n-- {
			b.WriteString(pieces[rng.Intn(len(pieces))])
		}
		headers = append(headers, b.String())
	}
	rpieces := []string{"/", "x", "?", "&", "bewit=", "bewit", "=", "$", "\n", "\u2028", "a", "%2F", "abc", "-_", "&b=2"}
	var resources []string
	for i := 0; i < 20000; i++ {
		var b strings.Builder
		if rng.Intn(4) > 0 {
			b.WriteString("/")
		}
		for n := rng.Intn(10); n > 0; n-- {
			b.WriteString(rpieces[rng.Intn(len(rpieces))])
		}
		resources = append(resources, b.String())
	}
	jpieces := []string{"{", "}", "[", "]", ":", ",", `"a"`, `"certificate"`, "1", "-0", "1.5e3", "null", "true", " ", "\n", `"\u00e9"`, `"\ud800"`, "\xff", "é", `"x\"y"`, "0", "01", "e", "."}
	var exts []string
	for i := 0; i < 20000; i++ {
		var b strings.Builder
		for n := rng.Intn(10); n > 0; n-- {
			b.WriteString(jpieces[rng.Intn(len(jpieces))])
		}
		e := base64.StdEncoding.EncodeToString([]byte(b.String()))
		if rng.Intn(4) == 0 {
			e = strings.TrimRight(e, "=")
		}
		exts = append(exts, e)
	}
	var numbers []float64
	for i := 0; i < 5000; i++ {
		f := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		if i%3 == 0 {
			f = math.Trunc(rng.Float64() * math.Pow(10, float64(rng.Intn(25))))
		}
		numbers = append(numbers, f)
	}
	strs := []string{"a", "é", "😀", "\ufffd", strings.Repeat("😀a", 7)}
	in, _ := json.Marshal(map[string]any{"headers": headers, "resources": resources, "exts": exts, "numbers": numbers, "strings": strs})
	if err := os.WriteFile(inFile, in, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("node", "testdata/hawkdiff.js", inFile, outFile, hawkUtils).CombinedOutput(); err != nil {
		t.Fatalf("node: %v %s", err, out)
	}
	var res struct {
		Headers []struct {
			Err   string
			Attrs map[string]string
		}
		Bewits []struct {
			Has, Match bool
			Value, URL string
		}
		Exts    []struct{ OK, IsNull bool }
		Numbers []string
		Lengths []int
	}
	data, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i, h := range headers {
		got, err := ParseHeader(h)
		want := res.Headers[i]
		if want.Err != "" {
			if err == nil || err.Error() != want.Err {
				if bad++; bad < 15 {
					t.Errorf("header %q: got %+v %v, want %q", h, got, err, want.Err)
				}
			}
			continue
		}
		w := Header{ID: want.Attrs["id"], TS: want.Attrs["ts"], Nonce: want.Attrs["nonce"], Hash: want.Attrs["hash"], Ext: want.Attrs["ext"], MAC: want.Attrs["mac"], App: want.Attrs["app"], Dlg: want.Attrs["dlg"]}
		if err != nil || got != w {
			if bad++; bad < 15 {
				t.Errorf("header %q: got %+v %v, want %+v", h, got, err, w)
			}
		}
	}
	for i, r := range resources {
		want := res.Bewits[i]
		if HasBewit(r) != want.Has {
			bad++
			t.Errorf("HasBewit(%q) = %v", r, !want.Has)
		}
		k, e, ok := matchBewit(r)
		if ok != want.Match {
			bad++
			t.Errorf("matchBewit(%q) = %v, want %v", r, ok, want.Match)
			continue
		}
		if ok {
			url := r[:k]
			if e < len(r) {
				url += r[k:k+1] + r[e+1:]
			}
			if v := r[k+7 : e]; v != want.Value || url != want.URL {
				t.Errorf("matchBewit(%q) = %q %q, want %q %q", r, v, url, want.Value, want.URL)
			}
		}
	}
	for i, x := range exts {
		_, err := decodeExt(x)
		want := res.Exts[i]
		dec, _ := base64.StdEncoding.DecodeString(x + strings.Repeat("=", (4-len(x)%4)%4))
		if (err == nil) != (want.OK && !want.IsNull) {
			if want.OK && !utf8.Valid(dec) {
				continue // documented: invalid UTF-8 rejected
			}
			t.Errorf("decodeExt(%q = %q): err %v, node ok=%v null=%v", x, dec, err, want.OK, want.IsNull)
		}
	}
	for i, f := range numbers {
		if got := string(appendJSNumber(nil, f)); got != res.Numbers[i] {
			t.Errorf("number %v: got %s, want %s", f, got, res.Numbers[i])
		}
	}
	for i, s := range strs {
		if utf16Len(s) != res.Lengths[i] {
			t.Errorf("utf16Len(%q) = %d, want %d", s, utf16Len(s), res.Lengths[i])
		}
	}
}
