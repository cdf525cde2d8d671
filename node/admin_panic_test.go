package node

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// TestAdmin_PanicAnswers500: the admin page is mounted beside the API, not
// behind its recover; a panicking admin handler is answered 500 all the
// same, and the server goes on.
func TestAdmin_PanicAnswers500(t *testing.T) {
	st, err := session.Open(session.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := newService(serviceConfig{Store: st, Name: "site-a", TTL: time.Hour})
	a, err := newAdmin(adminConfig{Service: svc, Tokens: newAPITokens(st, time.Now, nil, crypto.TokenHash{})})
	if err != nil {
		t.Fatal(err)
	}
	a.mux.HandleFunc("GET /admin/panic", func(http.ResponseWriter, *http.Request) { panic("planted") })
	w := httptest.NewRecorder()
	a.ServeHTTP(w, httptest.NewRequest("GET", "/admin/panic", nil))
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "Internal error") {
		t.Fatalf("a panicking admin handler answered %d %q", w.Code, w.Body.String())
	}
}
