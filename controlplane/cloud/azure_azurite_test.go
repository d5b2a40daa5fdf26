package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

// azurite is a running Azurite (Microsoft's Azure Storage emulator) with
// its blob and table endpoints for the development account.
type azurite struct {
	blob, table string // http://127.0.0.1:<port>/devstoreaccount1
}

// startAzurite runs the program named by TCAUTH_AZURITE (the `azurite`
// executable of npm azurite@3.35.0, see `make deps-azurite`) on private
// ports and an in-memory store, stopped at the end of the test.
func startAzurite(t *testing.T) azurite {
	t.Helper()
	bin := os.Getenv("TCAUTH_AZURITE")
	if bin == "" {
		msg := "TCAUTH_AZURITE is not set (path of the azurite executable: npm install --prefix DIR azurite@3.35.0, then DIR/node_modules/.bin/azurite)"
		if os.Getenv("TCAUTH_REQUIRE_PEERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ports := freePorts(t, 3)
	// Azurite 3.35 refuses --location together with --inMemoryPersistence;
	// the working directory is a temporary one in case it writes anything.
	cmd := exec.Command(bin, "--disableTelemetry", "--skipApiVersionCheck", "--inMemoryPersistence",
		"--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
		"--blobPort", ports[0], "--queuePort", ports[1], "--tablePort", ports[2])
	logf, err := os.Create(t.TempDir() + "/azurite.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("azurite output:\n%s", b)
		}
	})
	for _, p := range []string{ports[0], ports[2]} {
		waitListening(t, "127.0.0.1:"+p, exited, 30*time.Second)
	}
	return azurite{
		blob:  "http://127.0.0.1:" + ports[0] + "/" + devAccount,
		table: "http://127.0.0.1:" + ports[2] + "/" + devAccount,
	}
}

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func waitListening(t *testing.T, addr string, exited <-chan struct{}, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatal("azurite exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("azurite did not listen on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func azuriteService(t *testing.T, az azurite, key string) *Service {
	t.Helper()
	s, err := New(Config{Azure: &AzureConfig{Accounts: map[string]AzureAccount{
		devAccount: {AccessKey: key, BlobEndpoint: az.blob, TableEndpoint: az.table},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sasRequest sends one request authorized only by the SAS and returns the
// status code.
func sasRequest(t *testing.T, method, u, sas string, body string, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, u+"?"+sas, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Logf("%s %s: %d %s", method, u, resp.StatusCode, b)
	}
	return resp.StatusCode
}

var tableHeaders = map[string]string{"Content-Type": "application/json", "Accept": "application/json;odata=nometadata",
	"x-ms-version": tableAPIVersion, "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx"}

func TestAzuriteTableSAS(t *testing.T) {
	az := startAzurite(t)
	s := azuriteService(t, az, devKey)
	ctx := context.Background()

	rw, _, err := s.AzureTableSAS(ctx, devAccount, "TestTable1", false)
	if err != nil {
		t.Fatal(err)
	}
	entity := `{"PartitionKey":"p","RowKey":"r1","Value":"x"}`
	if code := sasRequest(t, "POST", az.table+"/TestTable1", rw, entity, tableHeaders); code != 201 && code != 204 {
		t.Fatalf("insert with read-write SAS: %d", code)
	}
	ro, _, err := s.AzureTableSAS(ctx, devAccount, "TestTable1", true)
	if err != nil {
		t.Fatal(err)
	}
	if code := sasRequest(t, "GET", az.table+"/TestTable1(PartitionKey='p',RowKey='r1')", ro, "", tableHeaders); code != 200 {
		t.Fatalf("read with read-only SAS: %d", code)
	}
	entity2 := `{"PartitionKey":"p","RowKey":"r2"}`
	if code := sasRequest(t, "POST", az.table+"/TestTable1", ro, entity2, tableHeaders); code != 403 {
		t.Fatalf("insert with read-only SAS: %d, want 403", code)
	}
	// A SAS for one table does not open another.
	if code := sasRequest(t, "POST", az.table+"/OtherTable", rw, entity2, tableHeaders); code != 403 {
		t.Fatalf("insert into another table: %d, want 403", code)
	}
}

func TestAzuriteContainerSAS(t *testing.T) {
	az := startAzurite(t)
	s := azuriteService(t, az, devKey)
	ctx := context.Background()
	put := map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-version": "2021-12-02"}

	rw, _, err := s.AzureContainerSAS(ctx, devAccount, "container1", false)
	if err != nil {
		t.Fatal(err)
	}
	if code := sasRequest(t, "PUT", az.blob+"/container1/blob1", rw, "hello", put); code != 201 {
		t.Fatalf("put with read-write SAS: %d", code)
	}
	ro, _, err := s.AzureContainerSAS(ctx, devAccount, "container1", true)
	if err != nil {
		t.Fatal(err)
	}
	if code := sasRequest(t, "GET", az.blob+"/container1/blob1", ro, "", nil); code != 200 {
		t.Fatalf("get with read-only SAS: %d", code)
	}
	if code := sasRequest(t, "PUT", az.blob+"/container1/blob2", ro, "x", put); code != 403 {
		t.Fatalf("put with read-only SAS: %d, want 403", code)
	}
	if code := sasRequest(t, "DELETE", az.blob+"/container1/blob1", ro, "", nil); code != 403 {
		t.Fatalf("delete with read-only SAS: %d, want 403", code)
	}
}

// Listing with a page size of 2 over 5 tables and 5 containers must
// visit all of them, across several pages, through the returned tokens.
func TestAzuriteListing(t *testing.T) {
	az := startAzurite(t)
	s := azuriteService(t, az, devKey)
	s.cfg.Azure.state.listPageSize = 2
	ctx := context.Background()
	var wantTables, wantContainers []string
	for i := range 5 {
		tb, ct := fmt.Sprintf("Table%d", i), fmt.Sprintf("container%d", i)
		if _, _, err := s.AzureTableSAS(ctx, devAccount, tb, false); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.AzureContainerSAS(ctx, devAccount, ct, false); err != nil {
			t.Fatal(err)
		}
		wantTables, wantContainers = append(wantTables, tb), append(wantContainers, ct)
	}
	for name, list := range map[string]func(string) ([]string, string, error){
		"tables":     func(tok string) ([]string, string, error) { return s.AzureTables(ctx, devAccount, tok) },
		"containers": func(tok string) ([]string, string, error) { return s.AzureContainers(ctx, devAccount, tok) },
	} {
		var all []string
		pages, tok := 0, ""
		for {
			names, next, err := list(tok)
			if err != nil {
				t.Fatalf("%s page %d: %v", name, pages, err)
			}
			pages++
			all = append(all, names...)
			if next == "" || pages > 10 {
				break
			}
			tok = next
		}
		want := map[string][]string{"tables": wantTables, "containers": wantContainers}[name]
		sort.Strings(all)
		if strings.Join(all, ",") != strings.Join(want, ",") || pages < 3 {
			t.Errorf("%s: %d pages, %v; want %v in 3 pages", name, pages, all, want)
		}
	}
}

// A wrong account key is refused by Azurite (so it does check our
// SharedKeyLite and SharedKey signatures) and reported as ErrUpstream
// without the key.
func TestAzuriteWrongKey(t *testing.T) {
	az := startAzurite(t)
	wrong := "AAAA" + devKey[4:]
	s := azuriteService(t, az, wrong)
	ctx := context.Background()
	_, _, errT := s.AzureTables(ctx, devAccount, "")
	_, _, errC := s.AzureContainers(ctx, devAccount, "")
	for _, err := range []error{errT, errC} {
		if !errors.Is(err, ErrUpstream) || !strings.Contains(Message(err), "403") || strings.Contains(err.Error(), wrong) {
			t.Errorf("wrong key: %v", err)
		}
	}
}
