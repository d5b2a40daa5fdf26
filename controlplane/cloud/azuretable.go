package cloud

// A small client of the Azure Table service REST API: list and create
// tables with SharedKeyLite authorization, and table service SAS tokens.
// The Go Table SDK (aztables) is not used: these three operations are all
// the auth API needs. Formats are Microsoft's "Authorize with Shared Key"
// (SharedKeyLite for the Table service), "Create a service SAS" (version
// 2018-11-09 and later, table resource), "Query Tables" and "Create Table"
// reference pages.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// tableAPIVersion is the x-ms-version of our requests and the sv of our
	// SAS tokens: the string-to-sign below is the one of this version.
	tableAPIVersion = "2019-02-02"
	// tableMaxBody bounds what we read of a Table service answer.
	tableMaxBody  = 4 << 20
	sasTimeFormat = "2006-01-02T15:04:05Z"
)

type tableClient struct {
	account  string
	key      []byte
	endpoint string // no trailing slash; may include a path (Azurite: /<account>)
	http     *http.Client
}

// tableError is a non-2xx answer of the Table service.
type tableError struct {
	Status int
	Code   string // the OData error code, e.g. TableAlreadyExists
}

func (e *tableError) Error() string {
	return fmt.Sprintf("table service: %d %s", e.Status, e.Code)
}

// tableSASStringToSign is the string-to-sign of a table service SAS for
// sv=2019-02-02: permissions, start, expiry, canonicalized resource,
// identifier, IP, protocol, version, then the start/end partition and row
// keys (empty here). The resource is /table/<account>/<lower-case table>.
func tableSASStringToSign(account, table, perms string, start, expiry time.Time) string {
	return strings.Join([]string{
		perms,
		start.UTC().Format(sasTimeFormat),
		expiry.UTC().Format(sasTimeFormat),
		"/table/" + account + "/" + strings.ToLower(table),
		"", "", "", // si, sip, spr
		tableAPIVersion,
		"", "", "", "", // spk, srk, epk, erk
	}, "\n")
}

// sas returns the query string (without '?') of a table SAS.
func (c *tableClient) sas(table, perms string, start, expiry time.Time) string {
	sig := hmacSHA256(c.key, tableSASStringToSign(c.account, table, perms, start, expiry))
	v := url.Values{}
	v.Set("sv", tableAPIVersion)
	v.Set("tn", table)
	v.Set("sp", perms)
	v.Set("st", start.UTC().Format(sasTimeFormat))
	v.Set("se", expiry.UTC().Format(sasTimeFormat))
	v.Set("sig", sig)
	return v.Encode()
}

func hmacSHA256(key []byte, s string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// sharedKeyLite signs req: "SharedKeyLite <account>:<sig>" over
// "<x-ms-date>\n<canonicalized resource>", the resource being
// /<account><escaped path> plus ?comp=<v> when the query has comp.
func (c *tableClient) sharedKeyLite(req *http.Request, now time.Time) {
	date := now.UTC().Format(http.TimeFormat)
	req.Header.Set("x-ms-date", date)
	res := "/" + c.account + req.URL.EscapedPath()
	if comp, ok := req.URL.Query()["comp"]; ok && len(comp) > 0 {
		res += "?comp=" + comp[0]
	}
	req.Header.Set("Authorization", "SharedKeyLite "+c.account+":"+hmacSHA256(c.key, date+"\n"+res))
}

func (c *tableClient) do(ctx context.Context, method, path string, query url.Values, body []byte, now time.Time) (*http.Response, []byte, error) {
	u := c.endpoint + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("x-ms-version", tableAPIVersion)
	req.Header.Set("Accept", "application/json;odata=nometadata")
	req.Header.Set("DataServiceVersion", "3.0;NetFx")
	req.Header.Set("MaxDataServiceVersion", "3.0;NetFx")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.sharedKeyLite(req, now)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, tableMaxBody))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode/100 != 2 {
		return resp, data, &tableError{Status: resp.StatusCode, Code: tableErrorCode(data)}
	}
	return resp, data, nil
}

// tableErrorCode extracts odata.error.code from a JSON error answer.
func tableErrorCode(body []byte) string {
	var e struct {
		Err struct {
			Code string `json:"code"`
		} `json:"odata.error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Err.Code == "" {
		return "UnknownError"
	}
	return e.Err.Code
}

// listTables queries one page of tables from next ("" = first); top > 0
// limits the page size.
func (c *tableClient) listTables(ctx context.Context, next string, top int, now time.Time) ([]string, string, error) {
	q := url.Values{}
	if next != "" {
		q.Set("NextTableName", next)
	}
	if top > 0 {
		q.Set("$top", strconv.Itoa(top))
	}
	resp, body, err := c.do(ctx, http.MethodGet, "/Tables", q, nil, now)
	if err != nil {
		return nil, "", err
	}
	return parseTableList(resp.Header.Get("x-ms-continuation-NextTableName"), body)
}

// parseTableList decodes a Query Tables answer: {"value":[{"TableName":…}]}
// and the continuation header.
func parseTableList(nextHeader string, body []byte) ([]string, string, error) {
	var r struct {
		Value []struct {
			TableName string `json:"TableName"`
		} `json:"value"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, "", fmt.Errorf("table service: malformed table list: %w", err)
	}
	tables := make([]string, 0, len(r.Value))
	for _, t := range r.Value {
		if t.TableName == "" {
			return nil, "", fmt.Errorf("table service: table list entry without TableName")
		}
		tables = append(tables, t.TableName)
	}
	if checkAzureToken(nextHeader) != nil {
		return nil, "", fmt.Errorf("table service: malformed continuation %q", nextHeader)
	}
	return tables, nextHeader, nil
}

// createTable creates table; an existing table is not an error.
func (c *tableClient) createTable(ctx context.Context, table string, now time.Time) error {
	body, _ := json.Marshal(map[string]string{"TableName": table})
	_, _, err := c.do(ctx, http.MethodPost, "/Tables", nil, body, now)
	if te, ok := err.(*tableError); ok && te.Status == http.StatusConflict && te.Code == "TableAlreadyExists" {
		return nil
	}
	return err
}

// AzureTables lists one page of the account's tables from
// continuationToken ("" = first page) and returns the next token ("" on
// the last page).
func (s *Service) AzureTables(ctx context.Context, account, continuationToken string) ([]string, string, error) {
	a, st, err := s.azureLookup(account)
	if err != nil {
		return nil, "", err
	}
	if err := checkAzureToken(continuationToken); err != nil {
		return nil, "", err
	}
	tables, next, err := a.table.listTables(ctx, continuationToken, int(st.listPageSize), st.now())
	if err != nil {
		return nil, "", s.azureUpstream("list tables", account, err)
	}
	return tables, next, nil
}

// AzureTableSAS returns a table SAS (the query string, without '?') and
// its expiry. Read-only grants query ("r"); read-write also add, update
// and delete ("raud") and creates the table if missing.
func (s *Service) AzureTableSAS(ctx context.Context, account, table string, readOnly bool) (string, time.Time, error) {
	a, st, err := s.azureLookup(account)
	if err != nil {
		return "", time.Time{}, err
	}
	if !azureTableRe.MatchString(table) {
		return "", time.Time{}, newErr(ErrInput, "Table name '%s' is not a valid Azure table name", table)
	}
	perms := "r"
	if !readOnly {
		perms = "raud"
		key := "t/" + account + "/" + table
		if st.shouldCreate(key) {
			if err := a.table.createTable(ctx, table, st.now()); err != nil {
				return "", time.Time{}, s.azureUpstream("create table", account, err)
			}
			st.markCreated(key)
		}
	}
	start, expiry := st.sasWindow()
	return a.table.sas(table, perms, start, expiry), expiry, nil
}
