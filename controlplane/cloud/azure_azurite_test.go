package cloud

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/controlplane/controlplanetest/azurite"
)

func azuriteService(t *testing.T, az azurite.Azurite, key string) *Service {
	t.Helper()
	s, err := New(Config{Azure: &AzureConfig{Accounts: map[string]AzureAccount{
		devAccount: {AccessKey: key, BlobEndpoint: az.Blob, TableEndpoint: az.Table},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAzuriteTableSAS(t *testing.T) {
	az := azurite.Start(t)
	s := azuriteService(t, az, devKey)
	ctx := context.Background()

	rw, _, err := s.AzureTableSAS(ctx, devAccount, "TestTable1", false)
	if err != nil {
		t.Fatal(err)
	}
	entity := `{"PartitionKey":"p","RowKey":"r1","Value":"x"}`
	if code := azurite.SASCall(t, "POST", az.Table+"/TestTable1", rw, entity, azurite.TableHeaders); code != 201 && code != 204 {
		t.Fatalf("insert with read-write SAS: %d", code)
	}
	ro, _, err := s.AzureTableSAS(ctx, devAccount, "TestTable1", true)
	if err != nil {
		t.Fatal(err)
	}
	if code := azurite.SASCall(t, "GET", az.Table+"/TestTable1(PartitionKey='p',RowKey='r1')", ro, "", azurite.TableHeaders); code != 200 {
		t.Fatalf("read with read-only SAS: %d", code)
	}
	entity2 := `{"PartitionKey":"p","RowKey":"r2"}`
	if code := azurite.SASCall(t, "POST", az.Table+"/TestTable1", ro, entity2, azurite.TableHeaders); code != 403 {
		t.Fatalf("insert with read-only SAS: %d, want 403", code)
	}
	// A SAS for one table does not open another.
	if code := azurite.SASCall(t, "POST", az.Table+"/OtherTable", rw, entity2, azurite.TableHeaders); code != 403 {
		t.Fatalf("insert into another table: %d, want 403", code)
	}
}

func TestAzuriteContainerSAS(t *testing.T) {
	az := azurite.Start(t)
	s := azuriteService(t, az, devKey)
	ctx := context.Background()
	put := map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-version": "2021-12-02"}

	rw, _, err := s.AzureContainerSAS(ctx, devAccount, "container1", false)
	if err != nil {
		t.Fatal(err)
	}
	if code := azurite.SASCall(t, "PUT", az.Blob+"/container1/blob1", rw, "hello", put); code != 201 {
		t.Fatalf("put with read-write SAS: %d", code)
	}
	ro, _, err := s.AzureContainerSAS(ctx, devAccount, "container1", true)
	if err != nil {
		t.Fatal(err)
	}
	if code := azurite.SASCall(t, "GET", az.Blob+"/container1/blob1", ro, "", nil); code != 200 {
		t.Fatalf("get with read-only SAS: %d", code)
	}
	if code := azurite.SASCall(t, "PUT", az.Blob+"/container1/blob2", ro, "x", put); code != 403 {
		t.Fatalf("put with read-only SAS: %d, want 403", code)
	}
	if code := azurite.SASCall(t, "DELETE", az.Blob+"/container1/blob1", ro, "", nil); code != 403 {
		t.Fatalf("delete with read-only SAS: %d, want 403", code)
	}
}

// Listing with a page size of 2 over 5 tables and 5 containers must
// visit all of them, across several pages, through the returned tokens.
func TestAzuriteListing(t *testing.T) {
	az := azurite.Start(t)
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
	az := azurite.Start(t)
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
