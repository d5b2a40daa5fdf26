package controlplane

import (
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane/cloud"
	"github.com/tcauth/tcauth/controlplane/controlplanetest/azurite"
)

// The Azure endpoints through the API (Hawk, scopes, routing, replies)
// against a real Azurite: the SAS a caller gets opens what its level says
// and nothing more. The cloud package's tests cover paging and signing.

// azureEnv is a control plane whose cloud configuration has Azurite's
// development account. The cloud backend runs on the real clock (Azurite
// checks SAS times against it); the API keeps the frozen test clock.
func azureEnv(t *testing.T) (*testEnv, azurite.Azurite) {
	t.Helper()
	az := azurite.Start(t)
	e := newEnv(t, func(c *Config) {
		c.Cloud = &cloud.Config{Now: time.Now, Azure: &cloud.AzureConfig{Accounts: map[string]cloud.AzureAccount{
			azurite.DevAccount: {AccessKey: azurite.DevKey, BlobEndpoint: az.Blob, TableEndpoint: az.Table}}}}
	})
	return e, az
}

// sas gets {sas, expiry} from path as the caller and checks the expiry
// (25 minutes from now, on the cloud backend's real clock).
func (e *testEnv) sas(t *testing.T, path string, caller opt) string {
	t.Helper()
	r := e.api("GET", path, caller)
	expectStatus(t, r, 200)
	m := r.json(t)
	exp, err := time.Parse(time.RFC3339, m["expiry"].(string))
	if d := time.Until(exp); err != nil || d < 24*time.Minute || d > 26*time.Minute || len(m) != 2 {
		t.Fatalf("%s: reply %s (expiry in %v)", path, r.body, d)
	}
	return m["sas"].(string)
}

func TestAzureTableEndpointsAzurite(t *testing.T) {
	e, az := azureEnv(t)
	acct := azurite.DevAccount
	e.addClient("rw", "rw-token-0123456789abcdef", "auth:azure-table:read-write:"+acct+"/Table1",
		"auth:azure-table:list-tables:"+acct, "auth:azure-table:list-accounts")
	e.addClient("ro", "ro-token-0123456789abcdef", "auth:azure-table:read-only:"+acct+"/Table1")
	rw, ro := as("rw", "rw-token-0123456789abcdef"), as("ro", "ro-token-0123456789abcdef")

	// A read-write SAS creates the table and can write; read-write scope
	// also gives read-only SAS (AnyOf), read-only scope only read-only.
	sasRW := e.sas(t, "/azure/"+acct+"/table/Table1/read-write", rw)
	if code := azurite.SASCall(t, "POST", az.Table+"/Table1", sasRW, `{"PartitionKey":"p","RowKey":"r1","V":"x"}`, azurite.TableHeaders); code != 201 && code != 204 {
		t.Fatalf("insert with the read-write SAS: %d", code)
	}
	for _, caller := range []opt{ro, rw} {
		sasRO := e.sas(t, "/azure/"+acct+"/table/Table1/read-only", caller)
		if code := azurite.SASCall(t, "GET", az.Table+"/Table1(PartitionKey='p',RowKey='r1')", sasRO, "", azurite.TableHeaders); code != 200 {
			t.Errorf("read with the read-only SAS: %d", code)
		}
		if code := azurite.SASCall(t, "POST", az.Table+"/Table1", sasRO, `{"PartitionKey":"p","RowKey":"r2"}`, azurite.TableHeaders); code != 403 {
			t.Errorf("insert with the read-only SAS: %d, want 403", code)
		}
	}
	if code := azurite.SASCall(t, "POST", az.Table+"/Table2", sasRW, `{"PartitionKey":"p","RowKey":"r2"}`, azurite.TableHeaders); code != 403 {
		t.Errorf("insert into another table: %d, want 403", code)
	}

	r := e.api("GET", "/azure/"+acct+"/tables", rw)
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"tables": []string{"Table1"}})
	r = e.api("GET", "/azure/accounts", rw)
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"accounts": []string{acct}})

	for _, path := range []string{
		"/azure/" + acct + "/table/Table1/read-write", // ro holds only read-only
		"/azure/" + acct + "/table/Table2/read-only",  // another table
		"/azure/" + acct + "/tables",
		"/azure/accounts",
	} {
		expectError(t, e.api("GET", path, ro), 403, "InsufficientScopes")
	}
	expectError(t, e.api("GET", "/azure/"+acct+"/table/Table1/read-only"), 403, "InsufficientScopes")
	expectMessage(t, expectError(t, e.api("GET", "/azure/nope1/table/Table1/read-only", asRoot()), 404, "ResourceNotFound"),
		"Account 'nope1' not found, can't delegate access")
	expectError(t, e.api("GET", "/azure/nope1/tables", asRoot()), 404, "ResourceNotFound")
	expectError(t, e.api("GET", "/azure/"+acct+"/tables?continuationToken=a%26b", asRoot()), 400, "InputError")
}

func TestAzureContainerEndpointsAzurite(t *testing.T) {
	e, az := azureEnv(t)
	acct := azurite.DevAccount
	e.addClient("rw", "rw-token-0123456789abcdef", "auth:azure-container:read-write:"+acct+"/box1",
		"auth:azure-container:list-containers:"+acct)
	e.addClient("ro", "ro-token-0123456789abcdef", "auth:azure-container:read-only:"+acct+"/box1")
	rw, ro := as("rw", "rw-token-0123456789abcdef"), as("ro", "ro-token-0123456789abcdef")

	sasRW := e.sas(t, "/azure/"+acct+"/containers/box1/read-write", rw)
	if code := azurite.SASCall(t, "PUT", az.Blob+"/box1/blob1", sasRW, "hello", azurite.BlobHeaders); code != 201 {
		t.Fatalf("put with the read-write SAS: %d", code)
	}
	sasRO := e.sas(t, "/azure/"+acct+"/containers/box1/read-only", ro)
	if code := azurite.SASCall(t, "GET", az.Blob+"/box1/blob1", sasRO, "", nil); code != 200 {
		t.Errorf("get with the read-only SAS: %d", code)
	}
	for method, u := range map[string]string{"PUT": az.Blob + "/box1/blob2", "DELETE": az.Blob + "/box1/blob1"} {
		if code := azurite.SASCall(t, method, u, sasRO, "x", azurite.BlobHeaders); code != 403 {
			t.Errorf("%s with the read-only SAS: %d, want 403", method, code)
		}
	}
	if code := azurite.SASCall(t, "PUT", az.Blob+"/box2/blob1", sasRW, "x", azurite.BlobHeaders); code != 403 {
		t.Errorf("put into another container: %d, want 403", code)
	}

	r := e.api("GET", "/azure/"+acct+"/containers", rw)
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"containers": []string{"box1"}})

	expectError(t, e.api("GET", "/azure/"+acct+"/containers/box1/read-write", ro), 403, "InsufficientScopes")
	expectError(t, e.api("GET", "/azure/"+acct+"/containers", ro), 403, "InsufficientScopes")
	expectError(t, e.api("GET", "/azure/"+acct+"/containers/box1/read-only"), 403, "InsufficientScopes")
	expectMessage(t, expectError(t, e.api("GET", "/azure/nope1/containers/box1/read-write", asRoot()), 404, "ResourceNotFound"),
		"Account 'nope1' not found, can't delegate access")
	expectError(t, e.api("GET", "/azure/nope1/containers", asRoot()), 404, "ResourceNotFound")
}
