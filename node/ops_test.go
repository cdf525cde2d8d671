package node

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// sessionJSON and userJSON decode the views as a client sees them.
type sessionJSON struct {
	ID        string     `json:"id"`
	Email     string     `json:"email"`
	Site      string     `json:"site"`
	IP        string     `json:"ip"`
	UserAgent string     `json:"user_agent"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	EndedAt   *time.Time `json:"ended_at"`
	EndReason string     `json:"end_reason"`
	Active    bool       `json:"active"`
	Synced    bool       `json:"synced"`
}

type userJSON struct {
	Email         string     `json:"email"`
	Login         string     `json:"login"`
	DisplayName   string     `json:"display_name"`
	Verified      bool       `json:"verified"`
	VerifiedVia   string     `json:"verified_via"`
	VerifiedAt    *time.Time `json:"verified_at"`
	RevokedBefore *time.Time `json:"revoked_before"`
	CreatedAt     *time.Time `json:"created_at"`
	Bound         bool       `json:"bound"`
}

type loginJSON struct {
	Session sessionJSON `json:"session"`
	Token   string      `json:"token"`
	Synced  bool        `json:"synced"`
	Reason  *string     `json:"reason"`
	Sync    *struct {
		URLs  []map[string]string `json:"urls"`
		Chain *string             `json:"chain"`
	} `json:"sync"`
}

type sessionBody struct {
	Session sessionJSON `json:"session"`
}

// login creates a session for email (verified or not first) and returns the answer.
func (e *apiEnv) login(t testing.TB, email string, verified bool) loginJSON {
	t.Helper()
	via := ""
	if verified {
		via = session.VerifiedRegistration
	}
	e.do("PUT", "/v1/users/"+email, map[string]string{"verified_via": via}).want(t, http.StatusOK, nil)
	var l loginJSON
	e.do("POST", "/v1/sessions", map[string]string{"email": email, "ip": "192.0.2.7", "user_agent": "test/1.0"}).
		want(t, http.StatusCreated, &l)
	return l
}

// checkSession asks GET /v1/sessions/{id} and returns status, error code and view.
func (e *apiEnv) checkSession(t testing.TB, id string) (int, string, sessionJSON) {
	t.Helper()
	r := e.do("GET", "/v1/sessions/"+id, nil)
	if r.Status == http.StatusOK {
		var b sessionBody
		r.want(t, http.StatusOK, &b)
		return r.Status, "", b.Session
	}
	var ea errorAnswer
	r.want(t, r.Status, &ea)
	var v sessionJSON
	if ea.Session != nil {
		v = *ea.Session
	}
	return r.Status, ea.Error.Code, v
}

func publishedKeys(recs []session.Record) []string {
	var keys []string
	for _, r := range recs {
		keys = append(keys, r.Key())
	}
	return keys
}

func TestAPI_PutUser(t *testing.T) {
	e := newAPIEnv(t)
	t0 := e.clock.Now()

	t.Run("create", func(t *testing.T) {
		var u userJSON
		e.do("PUT", "/v1/users/Alice@Example.COM", `{"login":"alice","display_name":"Alice A."}`).want(t, http.StatusOK, &u)
		if u.Email != "alice@example.com" || u.Login != "alice" || u.DisplayName != "Alice A." || u.Verified ||
			u.VerifiedVia != "" || u.VerifiedAt != nil || u.RevokedBefore != nil || u.CreatedAt == nil || !u.CreatedAt.Equal(t0) {
			t.Errorf("user %+v", u)
		}
		pub := e.pub.take()
		if len(pub) != 1 || pub[0].User == nil || pub[0].User.Login.V != "alice" || pub[0].User.Login.By != "site-a" {
			t.Fatalf("published %v", publishedKeys(pub))
		}
	})
	t.Run("update one field", func(t *testing.T) {
		e.clock.Add(time.Second)
		var u userJSON
		e.do("PUT", "/v1/users/alice@example.com", `{"display_name":"Alice B."}`).want(t, http.StatusOK, &u)
		if u.Login != "alice" || u.DisplayName != "Alice B." || !u.CreatedAt.Equal(t0) {
			t.Errorf("user %+v", u)
		}
		stored, err := e.store.User("alice@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if stored.DisplayName.At.Time() != t0.Add(time.Second) || stored.Login.At.Time() != t0 {
			t.Errorf("register times: display %v login %v", stored.DisplayName.At, stored.Login.At)
		}
		if pub := e.pub.take(); len(pub) != 1 {
			t.Errorf("published %v", publishedKeys(pub))
		}
	})
	t.Run("same values publish nothing", func(t *testing.T) {
		e.do("PUT", "/v1/users/alice@example.com", `{"login":"alice","display_name":"Alice B.","verified_via":""}`).want(t, http.StatusOK, nil)
		if pub := e.pub.take(); len(pub) != 0 {
			t.Errorf("published %v", publishedKeys(pub))
		}
	})
	t.Run("verify", func(t *testing.T) {
		// The first verification is kept (who proved the mailbox first,
		// and how); a later one binds its site all the same.
		for _, via := range []string{session.VerifiedRegistration, session.VerifiedAdmin} {
			var u userJSON
			e.do("PUT", "/v1/users/alice@example.com", map[string]string{"verified_via": via}).want(t, http.StatusOK, &u)
			if !u.Verified || u.VerifiedVia != session.VerifiedRegistration || u.VerifiedAt == nil || !u.Bound {
				t.Errorf("user %+v", u)
			}
		}
	})
	t.Run("same email in the body", func(t *testing.T) {
		e.do("PUT", "/v1/users/alice@example.com", `{"email":" ALICE@example.com ","login":"alice"}`).want(t, http.StatusOK, nil)
	})
	t.Run("email change refused", func(t *testing.T) {
		e.do("PUT", "/v1/users/alice@example.com", `{"email":"bob@example.com","login":"bob"}`).
			wantError(t, http.StatusConflict, client.CodeEmailImmutable)
		var u userJSON
		e.do("GET", "/v1/users/alice@example.com", nil).want(t, http.StatusOK, &u)
		if u.Login != "alice" {
			t.Errorf("a refused PUT changed the user: %+v", u)
		}
		if _, err := e.store.User("bob@example.com"); err == nil {
			t.Error("a refused PUT created bob")
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			name, path, body, code, field string
		}{
			{"invalid path email", "/v1/users/not-an-address", `{}`, client.CodeInvalidEmail, ""},
			{"display name in path", "/v1/users/Alice%20%3Calice@example.com%3E", `{}`, client.CodeInvalidEmail, ""},
			{"too long path email", "/v1/users/" + strings.Repeat("a", 250) + "@example.com", `{}`, client.CodeInvalidEmail, ""},
			{"invalid body email", "/v1/users/alice@example.com", `{"email":"nope"}`, client.CodeInvalidEmail, "email"},
			{"unknown verification", "/v1/users/alice@example.com", `{"verified_via":"code"}`, client.CodeInvalidField, "verified_via"},
			{"login too long", "/v1/users/alice@example.com", `{"login":"` + strings.Repeat("x", 257) + `"}`, client.CodeInvalidField, "login"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ea := e.do("PUT", tc.path, tc.body).wantError(t, http.StatusBadRequest, tc.code)
				if tc.field != "" && !strings.Contains(ea.Error.Message, `"`+tc.field+`"`) {
					t.Errorf("message %q does not name %q", ea.Error.Message, tc.field)
				}
			})
		}
	})
}

func TestAPI_GetUser(t *testing.T) {
	e := newAPIEnv(t)
	e.do("GET", "/v1/users/nobody@example.com", nil).wantError(t, http.StatusNotFound, client.CodeNotFound)
	e.do("GET", "/v1/users/nobody", nil).wantError(t, http.StatusBadRequest, client.CodeInvalidEmail)
	e.do("PUT", "/v1/users/a@example.com", `{"login":"a","verified_via":"admin"}`).want(t, http.StatusOK, nil)
	var u userJSON
	e.do("GET", "/v1/users/A@example.com", nil).want(t, http.StatusOK, &u)
	if u.Email != "a@example.com" || u.Login != "a" || !u.Verified || u.VerifiedVia != "admin" {
		t.Errorf("user %+v", u)
	}
}

func TestAPI_CreateSession(t *testing.T) {
	t.Run("verified user", func(t *testing.T) {
		e := newAPIEnv(t)
		e.do("PUT", "/v1/users/a@example.com", `{"verified_via":"registration"}`).want(t, http.StatusOK, nil)
		e.pub.take()
		now := e.clock.Now()
		var l loginJSON
		e.do("POST", "/v1/sessions", `{"email":"A@Example.com","login":"a","display_name":"A","ip":"2001:DB8::1","user_agent":"Firefox","ttl":"2h"}`).
			want(t, http.StatusCreated, &l)
		s := l.Session
		if s.ID != crypto.SessionID(l.Token) || !crypto.ValidSessionID(s.ID) {
			t.Errorf("id %q is not the hash of the token", s.ID)
		}
		if s.Email != "a@example.com" || s.Site != "site-a" || s.IP != "2001:db8::1" || s.UserAgent != "Firefox" ||
			!s.CreatedAt.Equal(now) || !s.ExpiresAt.Equal(now.Add(2*time.Hour)) || s.EndedAt != nil || s.EndReason != "" ||
			!s.Active || !s.Synced {
			t.Errorf("session %+v", s)
		}
		if !l.Synced || l.Reason != nil {
			t.Errorf("synced %v reason %v", l.Synced, l.Reason)
		}
		if l.Sync == nil || l.Sync.URLs == nil || len(l.Sync.URLs) != 0 || l.Sync.Chain == nil {
			t.Errorf("sync shape %+v", l.Sync)
		}
		// The login also set the user's names; the session and the user
		// went out in one publication.
		if got := strings.Join(publishedKeys(e.pub.take()), " "); got != "ua@example.com s"+s.ID {
			t.Errorf("published %s", got)
		}
		var u userJSON
		e.do("GET", "/v1/users/a@example.com", nil).want(t, http.StatusOK, &u)
		if u.Login != "a" || u.DisplayName != "A" {
			t.Errorf("user %+v", u)
		}
		if strings.Contains(e.logs.String(), l.Token) {
			t.Error("the token was logged")
		}
		stored, err := e.store.Session(s.ID)
		if err != nil || stored.Local {
			t.Errorf("stored %+v, %v", stored, err)
		}
	})
	t.Run("new user", func(t *testing.T) {
		e := newAPIEnv(t, func(w *testWiring) { w.svc.TTL = 3 * time.Hour })
		var l loginJSON
		e.do("POST", "/v1/sessions", `{"email":"new@example.com","login":"newbie"}`).want(t, http.StatusCreated, &l)
		if !l.Session.ExpiresAt.Equal(e.clock.Now().Add(3 * time.Hour)) {
			t.Errorf("expires %v, want the default ttl", l.Session.ExpiresAt)
		}
		var u userJSON
		e.do("GET", "/v1/users/new@example.com", nil).want(t, http.StatusOK, &u)
		if u.Login != "newbie" || u.CreatedAt == nil || u.Verified {
			t.Errorf("user %+v", u)
		}
	})
	t.Run("unverified user stays local", func(t *testing.T) {
		e := newAPIEnv(t)
		l := e.login(t, "u@example.com", false)
		if l.Synced || l.Session.Synced || l.Reason == nil || *l.Reason != session.ReasonNotVerified {
			t.Errorf("synced %v/%v reason %v", l.Synced, l.Session.Synced, l.Reason)
		}
		for _, rec := range e.pub.take() {
			if rec.Session != nil {
				t.Errorf("a local session was published: %+v", rec.Session)
			}
		}
		stored, err := e.store.Session(l.Session.ID)
		if err != nil || !stored.Local {
			t.Errorf("stored %+v, %v", stored, err)
		}
		status, _, v := e.checkSession(t, l.Session.ID)
		if status != http.StatusOK || v.Synced {
			t.Errorf("check: %d %+v", status, v)
		}
		// Ending it publishes nothing either.
		e.do("DELETE", "/v1/sessions/"+l.Session.ID, nil).want(t, http.StatusOK, nil)
		if pub := e.pub.take(); len(pub) != 0 {
			t.Errorf("published %v", publishedKeys(pub))
		}
	})
	t.Run("unverified user synced when not required", func(t *testing.T) {
		e := newAPIEnv(t, func(w *testWiring) { w.svc.RequireVerified = false })
		l := e.login(t, "u@example.com", false)
		if !l.Synced || l.Reason != nil {
			t.Errorf("synced %v reason %v", l.Synced, l.Reason)
		}
		found := false
		for _, rec := range e.pub.take() {
			found = found || (rec.Session != nil && rec.Session.ID == l.Session.ID)
		}
		if !found {
			t.Error("the session was not published")
		}
	})
	t.Run("bad input", func(t *testing.T) {
		e := newAPIEnv(t)
		for _, tc := range []struct {
			name, body, code, field string
		}{
			{"no email", `{"ttl":"1h"}`, client.CodeInvalidEmail, "email"},
			{"invalid email", `{"email":"a@"}`, client.CodeInvalidEmail, "email"},
			{"ttl not a duration", `{"email":"a@example.com","ttl":"a day"}`, client.CodeInvalidField, "ttl"},
			{"ttl zero", `{"email":"a@example.com","ttl":"0s"}`, client.CodeInvalidField, "ttl"},
			{"ttl negative", `{"email":"a@example.com","ttl":"-1h"}`, client.CodeInvalidField, "ttl"},
			{"ttl over a year", `{"email":"a@example.com","ttl":"8761h"}`, client.CodeInvalidField, "ttl"},
			{"ttl as a number", `{"email":"a@example.com","ttl":3600}`, client.CodeInvalidField, "ttl"},
			{"ip", `{"email":"a@example.com","ip":"300.1.1.1"}`, client.CodeInvalidField, "ip"},
			{"user agent too long", `{"email":"a@example.com","user_agent":"` + strings.Repeat("x", 513) + `"}`, client.CodeInvalidField, "user_agent"},
			{"unknown field", `{"email":"a@example.com","verified_via":"admin"}`, client.CodeUnknownField, "verified_via"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ea := e.do("POST", "/v1/sessions", tc.body).wantError(t, http.StatusBadRequest, tc.code)
				if !strings.Contains(ea.Error.Message, `"`+tc.field+`"`) {
					t.Errorf("message %q does not name %q", ea.Error.Message, tc.field)
				}
			})
		}
		if users, sessions := e.store.Counts(); users+sessions != 0 {
			t.Errorf("refused logins stored %d users, %d sessions", users, sessions)
		}
		if pub := e.pub.take(); len(pub) != 0 {
			t.Errorf("published %v", publishedKeys(pub))
		}
	})
	t.Run("a year is allowed", func(t *testing.T) {
		e := newAPIEnv(t)
		e.do("POST", "/v1/sessions", `{"email":"a@example.com","ttl":"8760h"}`).want(t, http.StatusCreated, nil)
	})
}

func TestAPI_CheckSession(t *testing.T) {
	e := newAPIEnv(t)
	t.Run("active", func(t *testing.T) {
		l := e.login(t, "a@example.com", true)
		status, _, v := e.checkSession(t, l.Session.ID)
		if status != http.StatusOK || v != l.Session {
			t.Errorf("check: %d %+v, want %+v", status, v, l.Session)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		e.do("GET", "/v1/sessions/"+crypto.SessionID("never issued"), nil).wantError(t, http.StatusNotFound, client.CodeNotFound)
	})
	t.Run("bad id", func(t *testing.T) {
		for _, id := range []string{"abc", strings.Repeat("A", 64), strings.Repeat("g", 64), strings.Repeat("a", 65), "..%2f..%2fetc"} {
			e.do("GET", "/v1/sessions/"+id, nil).wantError(t, http.StatusBadRequest, client.CodeInvalidID)
		}
	})
	t.Run("ended", func(t *testing.T) {
		l := e.login(t, "b@example.com", true)
		e.clock.Add(time.Minute)
		e.do("DELETE", "/v1/sessions/"+l.Session.ID, nil).want(t, http.StatusOK, nil)
		status, code, v := e.checkSession(t, l.Session.ID)
		if status != http.StatusGone || code != client.CodeSessionEnded || v.ID != l.Session.ID || v.Active ||
			v.EndReason != session.EndLogout || v.EndedAt == nil || !v.EndedAt.Equal(e.clock.Now()) {
			t.Errorf("check: %d %s %+v", status, code, v)
		}
	})
	t.Run("expired", func(t *testing.T) {
		var l loginJSON
		e.do("POST", "/v1/sessions", `{"email":"c@example.com","ttl":"1m"}`).want(t, http.StatusCreated, &l)
		e.clock.Add(59 * time.Second)
		if status, _, _ := e.checkSession(t, l.Session.ID); status != http.StatusOK {
			t.Fatalf("check before expiry: %d", status)
		}
		e.clock.Add(time.Second)
		status, code, v := e.checkSession(t, l.Session.ID)
		if status != http.StatusGone || code != client.CodeSessionExpired || v.EndReason != session.EndExpired ||
			v.EndedAt == nil || !v.EndedAt.Equal(l.Session.ExpiresAt) || v.Active {
			t.Errorf("check: %d %s %+v", status, code, v)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		// A login made before a "log out everywhere" that reaches this node
		// only afterwards (late gossip) is revoked, not active.
		e.login(t, "d@example.com", true)
		e.clock.Add(time.Second)
		e.do("POST", "/v1/users/d@example.com/logout-everywhere", nil).want(t, http.StatusOK, nil)
		var u userJSON
		e.do("GET", "/v1/users/d@example.com", nil).want(t, http.StatusOK, &u)
		late := session.Session{
			ID:        crypto.SessionID("late login elsewhere"),
			Email:     "d@example.com",
			Site:      "site-b",
			Created:   session.MakeHLC(u.RevokedBefore.UnixMilli()-500, 0),
			ExpiresAt: e.clock.Now().Add(time.Hour).UnixMilli(),
		}
		if _, err := e.store.Apply(session.Record{Session: &late}); err != nil {
			t.Fatal(err)
		}
		status, code, v := e.checkSession(t, late.ID)
		if status != http.StatusGone || code != client.CodeSessionRevoked || v.EndReason != session.EndLogoutEverywhere ||
			v.EndedAt == nil || !v.EndedAt.Equal(*u.RevokedBefore) || v.Site != "site-b" {
			t.Errorf("check: %d %s %+v", status, code, v)
		}
	})
	t.Run("session whose user is unknown here", func(t *testing.T) {
		s := session.Session{
			ID:        crypto.SessionID("gossip got here first"),
			Email:     "e@example.com",
			Site:      "site-b",
			Created:   e.store.Clock().Now(),
			ExpiresAt: e.clock.Now().Add(time.Hour).UnixMilli(),
		}
		if _, err := e.store.Apply(session.Record{Session: &s}); err != nil {
			t.Fatal(err)
		}
		if status, _, v := e.checkSession(t, s.ID); status != http.StatusOK || !v.Active {
			t.Errorf("check: %d %+v", status, v)
		}
	})
}

func TestAPI_EndSession(t *testing.T) {
	e := newAPIEnv(t)
	l := e.login(t, "a@example.com", true)
	e.pub.take()
	e.clock.Add(time.Minute)
	end := e.clock.Now()

	var first sessionBody
	firstRaw := e.do("DELETE", "/v1/sessions/"+l.Session.ID, nil)
	firstRaw.want(t, http.StatusOK, &first)
	if first.Session.Active || first.Session.EndReason != session.EndLogout || first.Session.EndedAt == nil ||
		!first.Session.EndedAt.Equal(end) {
		t.Errorf("session %+v", first.Session)
	}
	pub := e.pub.take()
	if len(pub) != 1 || pub[0].Session == nil || pub[0].Session.ID != l.Session.ID || pub[0].Session.EndReason != session.EndLogout {
		t.Errorf("published %v", publishedKeys(pub))
	}

	t.Run("idempotent", func(t *testing.T) {
		e.clock.Add(time.Minute)
		again := e.do("DELETE", "/v1/sessions/"+l.Session.ID, nil)
		again.want(t, http.StatusOK, nil)
		if string(again.Body) != string(firstRaw.Body) {
			t.Errorf("second delete %s, first %s", again.Body, firstRaw.Body)
		}
		if pub := e.pub.take(); len(pub) != 0 {
			t.Errorf("published %v", publishedKeys(pub))
		}
	})
	t.Run("expired session keeps its cause", func(t *testing.T) {
		var l loginJSON
		e.do("POST", "/v1/sessions", `{"email":"a@example.com","ttl":"1m"}`).want(t, http.StatusCreated, &l)
		e.clock.Add(2 * time.Minute)
		var b sessionBody
		e.do("DELETE", "/v1/sessions/"+l.Session.ID, nil).want(t, http.StatusOK, &b)
		if b.Session.EndReason != session.EndExpired || !b.Session.EndedAt.Equal(l.Session.ExpiresAt) {
			t.Errorf("session %+v", b.Session)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		e.do("DELETE", "/v1/sessions/"+crypto.SessionID("x"), nil).wantError(t, http.StatusNotFound, client.CodeNotFound)
	})
	t.Run("bad id", func(t *testing.T) {
		e.do("DELETE", "/v1/sessions/xyz", nil).wantError(t, http.StatusBadRequest, client.CodeInvalidID)
	})
	t.Run("a body must be empty JSON", func(t *testing.T) {
		e.do("DELETE", "/v1/sessions/"+l.Session.ID, `{}`).want(t, http.StatusOK, nil)
		e.do("DELETE", "/v1/sessions/"+l.Session.ID, `{"reason":"admin"}`).wantError(t, http.StatusBadRequest, client.CodeUnknownField)
	})
}

func TestAPI_LogoutEverywhere(t *testing.T) {
	e := newAPIEnv(t)
	var ids []string
	for range 3 {
		ids = append(ids, e.login(t, "a@example.com", true).Session.ID)
		e.clock.Add(time.Second)
	}
	other := e.login(t, "b@example.com", true)
	// An already ended session is not counted again.
	ended := e.login(t, "a@example.com", true).Session.ID
	e.do("DELETE", "/v1/sessions/"+ended, nil).want(t, http.StatusOK, nil)
	e.pub.take()
	e.clock.Add(time.Second)
	at := e.clock.Now()

	var out struct{ Ended int }
	e.do("POST", "/v1/users/A@example.com/logout-everywhere", nil).want(t, http.StatusOK, &out)
	if out.Ended != 3 {
		t.Errorf("ended %d, want 3", out.Ended)
	}
	for _, id := range ids {
		status, code, v := e.checkSession(t, id)
		if status != http.StatusGone || code != client.CodeSessionEnded || v.EndReason != session.EndLogoutEverywhere ||
			v.EndedAt == nil || !v.EndedAt.Equal(at) {
			t.Errorf("session %s: %d %s %+v", id, status, code, v)
		}
	}
	if status, _, _ := e.checkSession(t, other.Session.ID); status != http.StatusOK {
		t.Errorf("another user's session: %d", status)
	}
	var u userJSON
	e.do("GET", "/v1/users/a@example.com", nil).want(t, http.StatusOK, &u)
	if u.RevokedBefore == nil || !u.RevokedBefore.Equal(at) {
		t.Errorf("revoked_before %v, want %v", u.RevokedBefore, at)
	}
	pub := e.pub.take()
	want := map[string]bool{"ua@example.com": true}
	for _, id := range ids {
		want["s"+id] = true
	}
	got := map[string]bool{}
	for _, k := range publishedKeys(pub) {
		got[k] = true
	}
	if len(got) != len(want) || len(pub) != len(want) {
		t.Errorf("published %v, want %v", publishedKeys(pub), want)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("%s not published", k)
		}
	}

	t.Run("a later login stays active", func(t *testing.T) {
		l := e.login(t, "a@example.com", true)
		if status, _, v := e.checkSession(t, l.Session.ID); status != http.StatusOK || !v.Active {
			t.Errorf("check: %d %+v", status, v)
		}
		var out struct{ Ended int }
		e.do("POST", "/v1/users/a@example.com/logout-everywhere", `{}`).want(t, http.StatusOK, &out)
		if out.Ended != 1 {
			t.Errorf("ended %d, want 1", out.Ended)
		}
	})
	t.Run("local sessions end too", func(t *testing.T) {
		l := e.login(t, "local@example.com", false)
		e.pub.take()
		var out struct{ Ended int }
		e.do("POST", "/v1/users/local@example.com/logout-everywhere", nil).want(t, http.StatusOK, &out)
		if out.Ended != 1 {
			t.Errorf("ended %d, want 1", out.Ended)
		}
		if status, code, _ := e.checkSession(t, l.Session.ID); status != http.StatusGone || code != client.CodeSessionEnded {
			t.Errorf("check: %d %s", status, code)
		}
		if got := publishedKeys(e.pub.take()); len(got) != 1 || got[0] != "ulocal@example.com" {
			t.Errorf("published %v, want only the user", got)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		e.do("POST", "/v1/users/nobody@example.com/logout-everywhere", nil).wantError(t, http.StatusNotFound, client.CodeNotFound)
		e.do("POST", "/v1/users/nobody/logout-everywhere", nil).wantError(t, http.StatusBadRequest, client.CodeInvalidEmail)
	})
	t.Run("sessions of a user not heard of yet", func(t *testing.T) {
		s := session.Session{
			ID:        crypto.SessionID("gossip got here first"),
			Email:     "early@example.com",
			Site:      "site-b",
			Created:   e.store.Clock().Now(),
			ExpiresAt: e.clock.Now().Add(time.Hour).UnixMilli(),
		}
		if _, err := e.store.Apply(session.Record{Session: &s}); err != nil {
			t.Fatal(err)
		}
		var out struct{ Ended int }
		e.do("POST", "/v1/users/early@example.com/logout-everywhere", nil).want(t, http.StatusOK, &out)
		if status, code, _ := e.checkSession(t, s.ID); out.Ended != 1 || status != http.StatusGone || code != client.CodeSessionEnded {
			t.Errorf("ended %d; check %d %s", out.Ended, status, code)
		}
	})
}

func TestAPI_UserSessions(t *testing.T) {
	e := newAPIEnv(t)
	var ids []string // oldest first
	for range 4 {
		ids = append(ids, e.login(t, "a@example.com", true).Session.ID)
		e.clock.Add(time.Second)
	}
	e.do("DELETE", "/v1/sessions/"+ids[1], nil).want(t, http.StatusOK, nil)

	list := func(query string) []sessionJSON {
		t.Helper()
		var b struct{ Sessions []sessionJSON }
		e.do("GET", "/v1/users/a@example.com/sessions"+query, nil).want(t, http.StatusOK, &b)
		return b.Sessions
	}
	idsOf := func(ss []sessionJSON) string {
		var out []string
		for _, s := range ss {
			out = append(out, s.ID[:6])
		}
		return strings.Join(out, " ")
	}
	short := func(ids ...string) string {
		var out []string
		for _, id := range ids {
			out = append(out, id[:6])
		}
		return strings.Join(out, " ")
	}

	t.Run("active by default, newest first", func(t *testing.T) {
		want := short(ids[3], ids[2], ids[0])
		if got := idsOf(list("")); got != want {
			t.Errorf("sessions %s, want %s", got, want)
		}
		if got := idsOf(list("?state=active")); got != want {
			t.Errorf("state=active: %s, want %s", got, want)
		}
	})
	t.Run("all includes history, newest first", func(t *testing.T) {
		all := list("?state=all")
		if got, want := idsOf(all), short(ids[3], ids[2], ids[1], ids[0]); got != want {
			t.Fatalf("sessions %s, want %s", got, want)
		}
		if all[2].Active || all[2].EndReason != session.EndLogout || !all[0].Active {
			t.Errorf("states: %+v", all)
		}
	})
	t.Run("empty list is an array", func(t *testing.T) {
		e.do("PUT", "/v1/users/quiet@example.com", `{}`).want(t, http.StatusOK, nil)
		r := e.do("GET", "/v1/users/quiet@example.com/sessions", nil)
		r.want(t, http.StatusOK, nil)
		if got := strings.TrimSpace(string(r.Body)); got != `{"sessions":[]}` {
			t.Errorf("body %s", got)
		}
	})
	t.Run("bad state", func(t *testing.T) {
		ea := e.do("GET", "/v1/users/a@example.com/sessions?state=ended", nil).wantError(t, http.StatusBadRequest, client.CodeInvalidField)
		if !strings.Contains(ea.Error.Message, `"state"`) {
			t.Errorf("message %q", ea.Error.Message)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		e.do("GET", "/v1/users/nobody@example.com/sessions", nil).wantError(t, http.StatusNotFound, client.CodeNotFound)
		e.do("GET", "/v1/users/nobody/sessions", nil).wantError(t, http.StatusBadRequest, client.CodeInvalidEmail)
	})
}
