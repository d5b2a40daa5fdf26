package login

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// The login service's answers and errors keep <, > and & as written.
func TestWriteJSONNotHTMLEscaped(t *testing.T) {
	for _, v := range []any{
		map[string]any{"scopes": []string{"notes:write:<..>/*", "a&b"}},
		protocol.NewAPIError("InputError", "scope notes:write:<..>/* & more").Body("oidcCredentials", nil, nil, time.Unix(1700000000, 0)),
	} {
		rec := httptest.NewRecorder()
		writeJSON(rec, 200, v)
		body := rec.Body.String()
		if strings.Contains(body, `\u00`) || !strings.Contains(body, "notes:write:<..>/*") || !strings.Contains(body, "&") {
			t.Errorf("%s", body)
		}
	}
}
