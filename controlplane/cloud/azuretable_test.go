package cloud

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The storage emulator's well-known development account (Microsoft's
// "Use the Azurite emulator" page); not a secret.
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// The expected signatures were computed outside Go, with OpenSSL, from
// the string-to-sign written out by hand from Microsoft's "Create a
// service SAS" (table, version 2018-11-09 and later) and "Authorize with
// Shared Key" (SharedKeyLite, Table service) pages:
//
//	HEX=$(printf %s "$devKey" | base64 -d | xxd -p -c 256)
//	printf 'raud\n2023-11-14T21:58:20Z\n2023-11-14T22:38:20Z\n/table/devstoreaccount1/mytable\n\n\n\n2019-02-02\n\n\n\n' |
//	  openssl dgst -sha256 -mac HMAC -macopt hexkey:$HEX -binary | base64
//	printf 'Tue, 14 Nov 2023 22:13:20 GMT\n/devstoreaccount1/devstoreaccount1/Tables' | openssl … (same)
//
// Azurite accepting these signatures is checked in azure_azurite_test.go.
func TestTableSASVector(t *testing.T) {
	start := time.Date(2023, 11, 14, 21, 58, 20, 0, time.UTC)
	expiry := start.Add(40 * time.Minute)
	c := devTableClient(t, "http://unused")
	for _, tc := range []struct{ perms, sig string }{
		{"raud", "cUI8zbENhrlOlTgLQ8sL44yHUBqJ4O0glJsWM3EYf+E="},
		{"r", "87yaiWgP9QIvuACkhb01NZ62B6khSEJJ7DraPi07YDE="},
	} {
		// The table name is mixed-case: the canonical resource lower-cases it.
		q, err := url.ParseQuery(c.sas("MyTable", tc.perms, start, expiry))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"sv": "2019-02-02", "tn": "MyTable", "sp": tc.perms,
			"st": "2023-11-14T21:58:20Z", "se": "2023-11-14T22:38:20Z", "sig": tc.sig}
		for k, v := range want {
			if got := q.Get(k); got != v {
				t.Errorf("perms %s: %s = %q, want %q", tc.perms, k, got, v)
			}
		}
		if len(q) != len(want) {
			t.Errorf("perms %s: unexpected parameters in %v", tc.perms, q)
		}
	}
}

func devTableClient(t *testing.T, endpoint string) *tableClient {
	t.Helper()
	a, err := newAzureAccount(devAccount, AzureAccount{AccessKey: devKey, TableEndpoint: endpoint}, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	return a.table
}

// fakeTableService checks SharedKeyLite against the OpenSSL vector above.
func TestSharedKeyLiteVector(t *testing.T) {
	now := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	var got http.Header
	fakeTableService := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		if r.URL.Path != "/devstoreaccount1/Tables" {
			t.Errorf("path %q", r.URL.Path)
		}
		w.Header().Set("x-ms-continuation-NextTableName", "1!8!dGFibGUy")
		w.Write([]byte(`{"value":[{"TableName":"table1"}]}`))
	}))
	defer fakeTableService.Close()
	c := devTableClient(t, fakeTableService.URL+"/devstoreaccount1")
	tables, next, err := c.listTables(context.Background(), "", 0, now)
	if err != nil || len(tables) != 1 || tables[0] != "table1" || next != "1!8!dGFibGUy" {
		t.Fatalf("listTables = %v %q %v", tables, next, err)
	}
	if a := got.Get("Authorization"); a != "SharedKeyLite devstoreaccount1:fiMBLHU9mGa2ttBxTHkXfRLoUiMSI/tczVWmRt8c8Fk=" {
		t.Errorf("Authorization %q", a)
	}
	if d := got.Get("x-ms-date"); d != "Tue, 14 Nov 2023 22:13:20 GMT" {
		t.Errorf("x-ms-date %q", d)
	}
	if v := got.Get("x-ms-version"); v != tableAPIVersion {
		t.Errorf("x-ms-version %q", v)
	}
}

func TestParseTableList(t *testing.T) {
	for _, tc := range []struct {
		name, header, body string
		want               []string
		next               string
		ok                 bool
	}{
		{"empty", "", `{"value":[]}`, []string{}, "", true},
		{"no value", "", `{}`, []string{}, "", true},
		{"page", "1!48!bXl0YWJsZQ--", `{"value":[{"TableName":"a1b"},{"TableName":"c2d"}]}`, []string{"a1b", "c2d"}, "1!48!bXl0YWJsZQ--", true},
		{"not json", "", `<xml/>`, nil, "", false},
		{"no name", "", `{"value":[{}]}`, nil, "", false},
		{"bad continuation", "a&b=c", `{"value":[]}`, nil, "", false},
		{"long continuation", strings.Repeat("a", azureMaxToken+1), `{"value":[]}`, nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, next, err := parseTableList(tc.header, []byte(tc.body))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (strings.Join(got, ",") != strings.Join(tc.want, ",") || next != tc.next) {
				t.Errorf("got %v %q, want %v %q", got, next, tc.want, tc.next)
			}
		})
	}
}

func FuzzParseTableList(f *testing.F) {
	f.Add("", []byte(`{"value":[{"TableName":"abc"}]}`))
	f.Add("1!48!bXl0YWJsZQ--", []byte(`{"value":[]}`))
	f.Add("a\nb", []byte(`{"value":[{"TableName":""}]}`))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		tables, next, err := parseTableList(header, body)
		if err != nil {
			return
		}
		// Whatever we accept must be safe to hand back as a token.
		if checkAzureToken(next) != nil {
			t.Fatalf("accepted continuation %q", next)
		}
		for _, tb := range tables {
			if tb == "" {
				t.Fatal("empty table name accepted")
			}
		}
	})
}

func TestAzureConfigCheck(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(devKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		acct string
		a    AzureAccount
		bad  string // substring of the error; "" = valid
	}{
		{"inline key", "devstoreaccount1", AzureAccount{AccessKey: devKey}, ""},
		{"key file", "acct1", AzureAccount{AccessKeyFile: keyFile}, ""},
		{"endpoints", "acct1", AzureAccount{AccessKey: devKey, BlobEndpoint: "http://127.0.0.1:10000/acct1", TableEndpoint: "http://127.0.0.1:10002/acct1/"}, ""},
		{"no key", "acct1", AzureAccount{}, "accessKey or accessKeyFile is required"},
		{"both keys", "acct1", AzureAccount{AccessKey: devKey, AccessKeyFile: keyFile}, "only one"},
		{"missing file", "acct1", AzureAccount{AccessKeyFile: filepath.Join(dir, "nope")}, "accessKeyFile"},
		{"not base64", "acct1", AzureAccount{AccessKey: "not base64!"}, "base64"},
		{"upper-case name", "Acct1", AzureAccount{AccessKey: devKey}, "lower-case"},
		{"short name", "ab", AzureAccount{AccessKey: devKey}, "lower-case"},
		{"bad endpoint", "acct1", AzureAccount{AccessKey: devKey, TableEndpoint: "ftp://x"}, "tableEndpoint"},
		{"endpoint query", "acct1", AzureAccount{AccessKey: devKey, BlobEndpoint: "https://x/?a=b"}, "blobEndpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Azure: &AzureConfig{Accounts: map[string]AzureAccount{tc.acct: tc.a}}})
			if tc.bad == "" && err != nil {
				t.Fatal(err)
			}
			if tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.bad)
			}
			if err != nil && strings.Contains(err.Error(), devKey) {
				t.Fatal("the key leaked into the error")
			}
		})
	}
}

func TestAzureErrors(t *testing.T) {
	ctx := context.Background()
	unconfigured, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := unconfigured.AzureAccounts(); got == nil || len(got) != 0 {
		t.Errorf("unconfigured accounts = %#v, want []", got)
	}
	_, _, err = unconfigured.AzureTableSAS(ctx, "acct1", "table1", true)
	if !errors.Is(err, ErrNotConfigured) || !strings.HasPrefix(Message(err), "Account 'acct1' not found, can't delegate access") {
		t.Errorf("unconfigured: %v", err)
	}
	cfg := &AzureConfig{Accounts: map[string]AzureAccount{"zacct": {AccessKey: devKey}, "acct1": {AccessKey: devKey}}}
	s, err := New(Config{Azure: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.state != nil {
		t.Error("New modified the caller's configuration")
	}
	if got := strings.Join(s.AzureAccounts(), ","); got != "acct1,zacct" {
		t.Errorf("accounts = %s", got)
	}
	calls := map[string]func() error{
		"tables":        func() error { _, _, err := s.AzureTables(ctx, "other", ""); return err },
		"containers":    func() error { _, _, err := s.AzureContainers(ctx, "other", ""); return err },
		"table SAS":     func() error { _, _, err := s.AzureTableSAS(ctx, "other", "table1", false); return err },
		"container SAS": func() error { _, _, err := s.AzureContainerSAS(ctx, "other", "c1c", true); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrNotFound) || Message(err) != "Account 'other' not found, can't delegate access" {
			t.Errorf("%s: %v", name, err)
		}
	}
	inputs := map[string]func() error{
		"table name":      func() error { _, _, err := s.AzureTableSAS(ctx, "acct1", "1table", true); return err },
		"container name":  func() error { _, _, err := s.AzureContainerSAS(ctx, "acct1", "Upper", true); return err },
		"container dash":  func() error { _, _, err := s.AzureContainerSAS(ctx, "acct1", "a--b", true); return err },
		"table token":     func() error { _, _, err := s.AzureTables(ctx, "acct1", "a&b"); return err },
		"container token": func() error { _, _, err := s.AzureContainers(ctx, "acct1", "a b"); return err },
	}
	for name, call := range inputs {
		if err := call(); !errors.Is(err, ErrInput) {
			t.Errorf("%s: %v, want ErrInput", name, err)
		}
	}
}

// A read-only SAS needs no request to Azure; its window is the reference's.
func TestAzureSASWindow(t *testing.T) {
	now := time.Date(2023, 11, 14, 22, 13, 20, 500e6, time.UTC)
	s, err := New(Config{Now: func() time.Time { return now },
		Azure: &AzureConfig{Accounts: map[string]AzureAccount{"acct1": {AccessKey: devKey}}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, sign := range map[string]func() (string, time.Time, error){
		"table": func() (string, time.Time, error) {
			return s.AzureTableSAS(context.Background(), "acct1", "table1", true)
		},
		"container": func() (string, time.Time, error) {
			return s.AzureContainerSAS(context.Background(), "acct1", "c1c", true)
		},
	} {
		sas, exp, err := sign()
		if err != nil {
			t.Fatal(name, err)
		}
		q, _ := url.ParseQuery(sas)
		if want := now.Truncate(time.Second).Add(25 * time.Minute); !exp.Equal(want) || q.Get("se") != "2023-11-14T22:38:20Z" || q.Get("st") != "2023-11-14T21:58:20Z" {
			t.Errorf("%s: expiry %v, se %s st %s", name, exp, q.Get("se"), q.Get("st"))
		}
		wantPerms := map[string]string{"table": "r", "container": "rl"}[name]
		if q.Get("sp") != wantPerms {
			t.Errorf("%s: sp = %q, want %q", name, q.Get("sp"), wantPerms)
		}
	}
}

// Read-write creates the table once per 6 h per process; read-only never.
func TestAzureTableCreateCache(t *testing.T) {
	creates := 0
	fakeTableService := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/acct1/Tables" {
			creates++
			w.WriteHeader(http.StatusConflict) // already exists: not an error
			w.Write([]byte(`{"odata.error":{"code":"TableAlreadyExists"}}`))
			return
		}
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer fakeTableService.Close()
	now := time.Date(2023, 11, 14, 0, 0, 0, 0, time.UTC)
	s, err := New(Config{Now: func() time.Time { return now }, Azure: &AzureConfig{Accounts: map[string]AzureAccount{
		"acct1": {AccessKey: devKey, TableEndpoint: fakeTableService.URL + "/acct1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		advance  time.Duration
		readOnly bool
		want     int
	}{{0, true, 0}, {0, false, 1}, {time.Hour, false, 1}, {5*time.Hour + time.Second, false, 2}, {time.Hour, true, 2}}
	for i, st := range steps {
		now = now.Add(st.advance)
		if _, _, err := s.AzureTableSAS(ctx, "acct1", "table1", st.readOnly); err != nil {
			t.Fatal(i, err)
		}
		if creates != st.want {
			t.Fatalf("step %d: %d creates, want %d", i, creates, st.want)
		}
	}
}
