package cloud

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// AzureConfig is the `azure` section: the storage accounts whose tables
// and containers callers may get SAS tokens for (the reference's
// `azureAccounts: {<account>: <accessKey>}`).
type AzureConfig struct {
	// Accounts by storage-account name (3–24 lower-case letters and digits).
	Accounts map[string]AzureAccount `yaml:"accounts"`

	state *azureState // resolved by checkAzure; never from YAML
}

// AzureAccount is one storage account. Exactly one of AccessKey and
// AccessKeyFile is set; the key is the base64 account key.
type AzureAccount struct {
	AccessKey     string `yaml:"accessKey"`
	AccessKeyFile string `yaml:"accessKeyFile"`
	// BlobEndpoint is the Blob service URL. Default
	// https://<account>.blob.core.windows.net. For Azurite (path-style):
	// http://127.0.0.1:10000/<account>.
	BlobEndpoint string `yaml:"blobEndpoint"`
	// TableEndpoint is the Table service URL. Default
	// https://<account>.table.core.windows.net. For Azurite:
	// http://127.0.0.1:10002/<account>.
	TableEndpoint string `yaml:"tableEndpoint"`
}

// Reference behaviour: a SAS is valid from 15 min ago (clock skew between
// us, the caller and Azure) to 25 min from now, and read-write requests
// create the table or container at most once per 6 h per process.
const (
	azureSASSkew       = 15 * time.Minute
	azureSASLifetime   = 25 * time.Minute
	azureCreateRefresh = 6 * time.Hour
	// azureMaxToken bounds a continuation token passed back to Azure.
	azureMaxToken = 1024
)

// Azure's naming rules (Naming and Referencing Containers, Blobs, and
// Metadata; Understanding the Table Service Data Model).
var (
	azureAccountRe   = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	azureTableRe     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{2,62}$`)
	azureContainerRe = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)
	// Continuation tokens are opaque; Azure's are base64-ish with '!', '/'
	// and '-'. Anything else (control characters, '&', spaces) is refused
	// rather than forwarded.
	azureTokenRe = regexp.MustCompile(`^[A-Za-z0-9!/_.~=+*-]+$`)
)

type azureAccount struct {
	name  string
	cred  *service.SharedKeyCredential
	blob  *service.Client
	table *tableClient
}

type azureState struct {
	accounts map[string]*azureAccount
	now      func() time.Time

	mu      sync.Mutex
	created map[string]time.Time // "t/<account>/<table>" or "c/<account>/<container>"

	listPageSize int32 // 0 = the service's default; tests set it to page
}

// checkAzure validates the azure section and resolves keys and clients.
// It stores them in a private copy of the section, so the caller's Config
// is never modified.
func (s *Service) checkAzure() error {
	if s.cfg.Azure == nil {
		return nil
	}
	st := &azureState{accounts: map[string]*azureAccount{}, now: s.cfg.Now, created: map[string]time.Time{}}
	for name, a := range s.cfg.Azure.Accounts {
		acct, err := newAzureAccount(name, a, s.cfg.HTTPClient)
		if err != nil {
			return fmt.Errorf("azure: account %q: %w", name, err)
		}
		st.accounts[name] = acct
	}
	c := *s.cfg.Azure
	c.state = st
	s.cfg.Azure = &c
	return nil
}

func newAzureAccount(name string, a AzureAccount, hc *http.Client) (*azureAccount, error) {
	if !azureAccountRe.MatchString(name) {
		return nil, errors.New("the name must be 3-24 lower-case letters and digits")
	}
	keyText, err := azureSecret(a.AccessKey, a.AccessKeyFile, "accessKey")
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(keyText)
	if err != nil || len(key) == 0 {
		return nil, errors.New("accessKey is not a base64 storage account key")
	}
	blobEP, err := azureEndpoint(a.BlobEndpoint, "https://"+name+".blob.core.windows.net")
	if err != nil {
		return nil, fmt.Errorf("blobEndpoint: %w", err)
	}
	tableEP, err := azureEndpoint(a.TableEndpoint, "https://"+name+".table.core.windows.net")
	if err != nil {
		return nil, fmt.Errorf("tableEndpoint: %w", err)
	}
	cred, err := service.NewSharedKeyCredential(name, keyText)
	if err != nil {
		return nil, errors.New("accessKey is not a base64 storage account key")
	}
	opts := &service.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: hc,
		// Azurite and private endpoints may be plain HTTP; production
		// configuration uses the https defaults.
		InsecureAllowCredentialWithHTTP: strings.HasPrefix(blobEP, "http:"),
		Retry:                           policy.RetryOptions{MaxRetries: 2},
		Telemetry:                       policy.TelemetryOptions{Disabled: true},
	}}
	blob, err := service.NewClientWithSharedKeyCredential(blobEP+"/", cred, opts)
	if err != nil {
		return nil, fmt.Errorf("blob client: %w", err)
	}
	return &azureAccount{name: name, cred: cred, blob: blob,
		table: &tableClient{account: name, key: key, endpoint: tableEP, http: hc}}, nil
}

// azureSecret returns the inline value or the trimmed content of the
// file; exactly one must be given.
func azureSecret(inline, file, what string) (string, error) {
	switch {
	case inline != "" && file != "":
		return "", fmt.Errorf("set only one of %s and %sFile", what, what)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%sFile: %w", what, err)
		}
		return strings.TrimSpace(string(b)), nil
	case inline != "":
		return inline, nil
	}
	return "", fmt.Errorf("%s or %sFile is required", what, what)
}

func azureEndpoint(v, def string) (string, error) {
	if v == "" {
		return def, nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q is not an http(s) URL without query", v)
	}
	return strings.TrimRight(v, "/"), nil
}

// azureLookup returns the account or the reference's 404.
func (s *Service) azureLookup(account string) (*azureAccount, *azureState, error) {
	if s.cfg.Azure == nil || s.cfg.Azure.state == nil {
		return nil, nil, newErr(ErrNotConfigured, "Account '%s' not found, can't delegate access (no azure section in the cloud configuration)", account)
	}
	st := s.cfg.Azure.state
	a, ok := st.accounts[account]
	if !ok {
		return nil, nil, newErr(ErrNotFound, "Account '%s' not found, can't delegate access", account)
	}
	return a, st, nil
}

// AzureAccounts lists the configured account names, sorted; empty (not
// nil) when Azure is not configured, as the reference answers.
func (s *Service) AzureAccounts() []string {
	names := []string{}
	if s.cfg.Azure != nil && s.cfg.Azure.state != nil {
		for n := range s.cfg.Azure.state.accounts {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

func checkAzureToken(token string) error {
	if token == "" {
		return nil
	}
	if len(token) > azureMaxToken || !azureTokenRe.MatchString(token) {
		return newErr(ErrInput, "continuationToken is not a token this endpoint returned")
	}
	return nil
}

// azureUpstream logs the provider's error (never a key: requests are
// signed in headers we do not log) and returns a generic ErrUpstream.
func (s *Service) azureUpstream(op, account string, err error) error {
	s.log.Warn("azure storage request failed", "op", op, "account", account, "err", err)
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return newErr(ErrUpstream, "Azure Storage answered %d %s to %s", re.StatusCode, re.ErrorCode, op)
	}
	var te *tableError
	if errors.As(err, &te) {
		return newErr(ErrUpstream, "Azure Storage answered %d %s to %s", te.Status, te.Code, op)
	}
	return newErr(ErrUpstream, "Azure Storage is unreachable (%s)", op)
}

// shouldCreate reports whether key was not created within
// azureCreateRefresh; markCreated records a success.
func (st *azureState) shouldCreate(key string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	t, ok := st.created[key]
	return !ok || st.now().Sub(t) > azureCreateRefresh
}

func (st *azureState) markCreated(key string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.created[key] = st.now()
}

// sasWindow is the validity of a SAS issued now, whole seconds because
// SAS times are.
func (st *azureState) sasWindow() (start, expiry time.Time) {
	now := st.now().UTC().Truncate(time.Second)
	return now.Add(-azureSASSkew), now.Add(azureSASLifetime)
}

// AzureContainers lists one page of the account's containers from
// continuationToken (Azure's marker; "" for the first page) and returns
// the next token ("" on the last page).
func (s *Service) AzureContainers(ctx context.Context, account, continuationToken string) ([]string, string, error) {
	a, st, err := s.azureLookup(account)
	if err != nil {
		return nil, "", err
	}
	if err := checkAzureToken(continuationToken); err != nil {
		return nil, "", err
	}
	opts := &service.ListContainersOptions{}
	if continuationToken != "" {
		opts.Marker = &continuationToken
	}
	if st.listPageSize > 0 {
		opts.MaxResults = &st.listPageSize
	}
	page, err := a.blob.NewListContainersPager(opts).NextPage(ctx)
	if err != nil {
		return nil, "", s.azureUpstream("list containers", account, err)
	}
	names := []string{}
	for _, c := range page.ContainerItems {
		if c != nil && c.Name != nil {
			names = append(names, *c.Name)
		}
	}
	next := ""
	if page.NextMarker != nil {
		next = *page.NextMarker
	}
	return names, next, nil
}

// AzureContainerSAS returns a container SAS (the query string, without
// '?') and its expiry. Read-only grants read and list; read-write also
// add, create, write and delete, and creates the container if missing.
func (s *Service) AzureContainerSAS(ctx context.Context, account, container string, readOnly bool) (string, time.Time, error) {
	a, st, err := s.azureLookup(account)
	if err != nil {
		return "", time.Time{}, err
	}
	if !azureContainerRe.MatchString(container) {
		return "", time.Time{}, newErr(ErrInput, "Container name '%s' is not a valid Azure container name", container)
	}
	if !readOnly {
		if err := s.azureCreateContainer(ctx, a, st, container); err != nil {
			return "", time.Time{}, err
		}
	}
	perms := sas.ContainerPermissions{Read: true, List: true}
	if !readOnly {
		perms.Add, perms.Create, perms.Write, perms.Delete = true, true, true, true
	}
	start, expiry := st.sasWindow()
	qp, err := sas.BlobSignatureValues{
		StartTime:     start,
		ExpiryTime:    expiry,
		Permissions:   perms.String(),
		ContainerName: container,
	}.SignWithSharedKey(a.cred)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("azure: signing container SAS: %w", err)
	}
	return qp.Encode(), expiry, nil
}

func (s *Service) azureCreateContainer(ctx context.Context, a *azureAccount, st *azureState, container string) error {
	key := "c/" + a.name + "/" + container
	if !st.shouldCreate(key) {
		return nil
	}
	_, err := a.blob.CreateContainer(ctx, container, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return s.azureUpstream("create container", a.name, err)
	}
	st.markCreated(key)
	return nil
}
