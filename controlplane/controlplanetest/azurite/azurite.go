// Package azurite runs Azurite, Microsoft's Azure Storage emulator, for
// tests: the `azurite` executable of npm azurite@3.35.0 (the last that runs
// on Node 20; `make deps-azurite` installs it) named by TCAUTH_AZURITE.
// Without the variable a test skips, or fails when TCAUTH_REQUIRE_PEERS=1.
// It imports nothing of tcauth, so any package's tests can use it.
package azurite

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane/controlplanetest/peers"
)

// Azurite's well-known development account (public: it is in Azurite's
// documentation and only opens an emulator).
const (
	DevAccount = "devstoreaccount1"
	DevKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Azurite is a running emulator: the blob and table service URLs of the
// development account (path-style, http://127.0.0.1:<port>/devstoreaccount1).
type Azurite struct {
	Blob, Table string
}

// Start runs Azurite on private ports with an in-memory store; it stops
// when the test ends (its output is logged if the test failed).
func Start(t testing.TB) Azurite {
	t.Helper()
	bin := peers.Need(t, "TCAUTH_AZURITE", "path of the azurite executable: npm install --prefix DIR azurite@3.35.0, then DIR/node_modules/.bin/azurite; or make deps-azurite")
	ports := peers.FreePorts(t, 3)
	// Azurite 3.35 refuses --location together with --inMemoryPersistence;
	// the working directory is a temporary one in case it writes anything.
	cmd := exec.Command(bin, "--disableTelemetry", "--skipApiVersionCheck", "--inMemoryPersistence",
		"--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
		"--blobPort", ports[0], "--queuePort", ports[1], "--tablePort", ports[2])
	cmd.Dir = t.TempDir()
	exited := peers.Run(t, "azurite", cmd)
	for _, p := range []string{ports[0], ports[2]} {
		peers.WaitListening(t, "azurite", "127.0.0.1:"+p, exited, 30*time.Second)
	}
	return Azurite{
		Blob:  "http://127.0.0.1:" + ports[0] + "/" + DevAccount,
		Table: "http://127.0.0.1:" + ports[2] + "/" + DevAccount,
	}
}

// Headers that Azure's Table and Blob services require of a request
// authorized by a SAS alone (for SASCall).
var (
	TableHeaders = map[string]string{"Content-Type": "application/json", "Accept": "application/json;odata=nometadata",
		"x-ms-version": "2019-02-02", "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx"}
	BlobHeaders = map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-version": "2021-12-02"}
)

// SASCall sends one request authorized only by sas (a query string
// without "?") and returns the status code, logging the body of a non-2xx
// answer.
func SASCall(t testing.TB, method, u, sas, body string, hdr map[string]string) int {
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
