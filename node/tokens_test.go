package node_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/node/nodetest"
)

type tokensAnswer struct {
	Tokens []client.TokenInfo `json:"tokens"`
}

type activityAnswer struct {
	Activity []client.ActivityEntry `json:"activity"`
}

type errorAnswer struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// hasActivity reports whether list holds an entry of actor, action and
// subject.
func hasActivity(list []client.ActivityEntry, actor, action, subject string) bool {
	return slices.ContainsFunc(list, func(e client.ActivityEntry) bool {
		return e.Actor == actor && e.Action == action && e.Subject == subject
	})
}

// TestTokens_CreateUseRevoke: named tokens made through the API work at
// once, are named in the activity history and the status, survive a
// restart, and stop working the moment they are revoked; the
// configuration's token cannot be removed that way.
func TestTokens_CreateUseRevoke(t *testing.T) {
	c := nodetest.NewCluster(t, 1)
	m := c.Members[0]
	const ann = "ann@example.com"

	var wp client.NewToken
	if code := m.Call("POST", "/v1/tokens", map[string]string{"name": "wordpress"}, &wp); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	if wp.Token.Name != "wordpress" || wp.Token.Source != client.TokenAPI || wp.Token.CreatedBy != "config" ||
		len(wp.Secret) < 40 || wp.Token.Fingerprint == "" || strings.Contains(wp.Secret, wp.Token.Fingerprint) {
		t.Fatalf("new token: %+v", wp)
	}

	// The new token works at once, and its changes carry its name.
	if code := m.CallAs(wp.Secret, "PUT", "/v1/users/"+ann, map[string]any{"login": "ann", "verified_via": "registration"}, nil); code != http.StatusOK {
		t.Fatalf("PUT with the new token: %d", code)
	}
	var act activityAnswer
	if code := m.Call("GET", "/v1/activity", nil, &act); code != http.StatusOK {
		t.Fatalf("activity: %d", code)
	}
	if !hasActivity(act.Activity, "wordpress", "user.update", ann) || !hasActivity(act.Activity, "config", "token.create", "wordpress") {
		t.Errorf("activity: %+v", act.Activity)
	}
	if len(act.Activity) < 2 || act.Activity[0].Action != "user.update" {
		t.Errorf("activity is not newest first: %+v", act.Activity)
	}
	// A login is everyday traffic: not in the history.
	login(t, m, ann)
	var st client.Status
	m.Call("GET", "/v1/status", nil, &st)
	if len(st.Activity) != 2 {
		t.Errorf("status activity after a login: %+v", st.Activity)
	}
	i := slices.IndexFunc(st.Tokens, func(ti client.TokenInfo) bool { return ti.Name == "wordpress" })
	if len(st.Tokens) != 2 || st.Tokens[0].Name != "config" || i < 0 || st.Tokens[i].LastUsed == nil || st.Tokens[i].Fingerprint != wp.Token.Fingerprint {
		t.Errorf("status tokens: %+v", st.Tokens)
	}

	// Refusals.
	for _, tc := range []struct {
		name string
		body any
		code int
		ec   string
	}{
		{"a name in use", map[string]string{"name": "wordpress"}, http.StatusConflict, client.CodeTokenExists},
		{"the configuration's name", map[string]string{"name": "config"}, http.StatusConflict, client.CodeTokenExists},
		{"a bad name", map[string]string{"name": "word press"}, http.StatusBadRequest, client.CodeInvalidField},
		{"no name", map[string]string{}, http.StatusBadRequest, client.CodeInvalidField},
	} {
		var e errorAnswer
		if code := m.Call("POST", "/v1/tokens", tc.body, &e); code != tc.code || e.Error.Code != tc.ec {
			t.Errorf("%s: %d %+v, want %d %s", tc.name, code, e, tc.code, tc.ec)
		}
	}
	var e errorAnswer
	if code := m.Call("DELETE", "/v1/tokens/config", nil, &e); code != http.StatusConflict || e.Error.Code != client.CodeTokenConfig {
		t.Errorf("revoke config: %d %+v", code, e)
	}
	if code := m.Call("DELETE", "/v1/tokens/nobody", nil, &e); code != http.StatusNotFound {
		t.Errorf("revoke unknown: %d %+v", code, e)
	}

	// One more, then a restart: both survive it.
	var ops client.NewToken
	if code := m.CallAs(wp.Secret, "POST", "/v1/tokens", map[string]string{"name": "ops"}, &ops); code != http.StatusCreated || ops.Token.CreatedBy != "wordpress" {
		t.Fatalf("create ops: %d %+v", code, ops)
	}
	m.Kill()
	c.Restart(0)
	for _, tok := range []string{wp.Secret, ops.Secret, c.Token} {
		if code := m.CallAs(tok, "GET", "/v1/users/"+ann, nil, nil); code != http.StatusOK {
			t.Errorf("after a restart, a token answers %d", code)
		}
	}

	// Revoked: refused from the answer on, even by itself.
	if code := m.CallAs(wp.Secret, "DELETE", "/v1/tokens/wordpress", nil, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	if code := m.CallAs(wp.Secret, "GET", "/v1/users/"+ann, nil, &e); code != http.StatusUnauthorized || e.Error.Code != client.CodeUnauthorized {
		t.Errorf("the revoked token answers %d %+v", code, e)
	}
	m.Call("GET", "/v1/activity", nil, &act)
	if !hasActivity(act.Activity, "wordpress", "token.revoke", "wordpress") || !hasActivity(act.Activity, "wordpress", "token.create", "ops") {
		t.Errorf("activity after the restart: %+v", act.Activity)
	}
	m.Kill()
	c.Restart(0)
	if code := m.CallAs(wp.Secret, "GET", "/v1/users/"+ann, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("the revoked token answers %d after a restart", code)
	}
	var list tokensAnswer
	m.Call("GET", "/v1/tokens", nil, &list)
	if len(list.Tokens) != 2 || list.Tokens[1].Name != "ops" {
		t.Errorf("tokens: %+v", list.Tokens)
	}
}

// TestTokens_AdminPageNamesTheActor: an administrator logged in with a
// named token or the password is recorded as such on the Activity page.
func TestTokens_AdminPageNamesTheActor(t *testing.T) {
	c := nodetest.NewCluster(t, 1)
	m := c.Members[0]
	const bob = "bob@example.com"
	if code := m.Call("PUT", "/v1/users/"+bob, map[string]any{"login": "bob"}, nil); code != http.StatusOK {
		t.Fatal(code)
	}
	var ops client.NewToken
	if code := m.Call("POST", "/v1/tokens", map[string]string{"name": "ops-laptop"}, &ops); code != http.StatusCreated {
		t.Fatal(code)
	}
	b := adminOpen(t, m)
	b.login(ops.Secret)
	page := b.get("/admin/users/" + url.PathEscape(bob))
	ans := b.post("/admin/users/"+url.PathEscape(bob)+"/verify", url.Values{"csrf": {b.csrf(page)}})
	if ans.Status != http.StatusSeeOther {
		t.Fatalf("verify: %d %s", ans.Status, ans.Body)
	}
	act := b.get("/admin/activity")
	if act.Status != http.StatusOK {
		t.Fatalf("activity page: %d", act.Status)
	}
	for _, want := range []string{
		`data-actor="admin:ops-laptop" data-action="user.verify"`,
		`data-actor="config" data-action="token.create"`,
		`data-actor="config" data-action="user.update"`,
		`aria-current="page">Activity</a>`,
	} {
		if !strings.Contains(act.Body, want) {
			t.Errorf("the activity page lacks %s:\n%s", want, act.Body)
		}
	}
	if strings.Contains(act.Body, ops.Secret) {
		t.Error("the activity page shows a token")
	}
	// The same in the API's history, newest first.
	var list activityAnswer
	m.Call("GET", "/v1/activity?limit=1", nil, &list)
	if len(list.Activity) != 1 || list.Activity[0].Actor != "admin:ops-laptop" || list.Activity[0].Subject != bob {
		t.Errorf("activity: %+v", list.Activity)
	}
	var e errorAnswer
	if code := m.Call("GET", "/v1/activity?limit=0", nil, &e); code != http.StatusBadRequest {
		t.Errorf("limit=0: %d %+v", code, e)
	}
}
