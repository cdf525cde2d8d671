//go:build unix

package wordpress

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/internal/eventually"
)

// TestWordPress_CheckAheadIsAHint: the session check the plugin sends as
// soon as it loads, for a browser holding WordPress's logged-in cookie and a
// session cookie (Ussync_Auth::check_ahead), is a hint only. A browser with
// Ivy's WordPress cookies and Jo's session cookie is checked on the session
// Ivy's WordPress session holds: it shows Ivy; once Ivy is logged out
// everywhere (Jo still logged in), it shows a visitor.
//
// The node counts the checks it answers: Jo's browser, whose cookie and
// WordPress session agree, costs one check a page view (the one sent ahead
// is the one read, not asked again); Ivy's costs two (Jo's sent ahead and
// discarded, then Ivy's), which shows that the check was sent ahead.
func TestWordPress_CheckAheadIsAHint(t *testing.T) {
	tb := theBed(t)
	a := tb.sites[0]
	tb.settings(t, map[string]any{"mode": "lazy"}) // no chain pending on the next page view
	t.Cleanup(func() { tb.defaults(t) })
	ivyPass := tb.user(t, a, "ivy", "ivy@example.com", "subscriber")
	joPass := tb.user(t, a, "jo", "jo@example.com", "subscriber")
	ivy, _ := clientLogin(t, a, "ivy", ivyPass, nil)
	jo, _ := clientLogin(t, a, "jo", joPass, nil)
	u, _ := url.Parse(a.url)
	token := func(c *http.Client) string {
		for _, ck := range c.Jar.Cookies(u) {
			if ck.Name == "ussync_session" {
				return ck.Value
			}
		}
		t.Fatal("the login left no session cookie")
		return ""
	}
	if token(ivy) == token(jo) {
		t.Fatal("two logins, one session")
	}
	shows := func(c *http.Client, want string) {
		t.Helper()
		resp, body := get(t, c, "GET", a.url, nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `data-user="`+want+`"`) {
			t.Fatalf("the page (%d) does not show user %q: %s", resp.StatusCode, want, truncate(body[max(0, strings.Index(body, "<body")):], 300))
		}
	}
	// checksBy waits until the node has answered want more checks than
	// before, then says whether it answered more than that.
	checksBy := func(before, want int, what string) {
		t.Helper()
		eventually.DoneEvery(t, 30*time.Second, 100*time.Millisecond, what, func() string {
			if n := tb.checksAnswered(t, a); n < before+want {
				return fmt.Sprintf("%d checks answered", n-before)
			}
			return ""
		})
		if n := tb.checksAnswered(t, a); n != before+want {
			t.Fatalf("%s: the node answered %d checks, want %d", what, n-before, want)
		}
	}

	const views = 5
	n0 := tb.checksAnswered(t, a)
	for range views {
		shows(jo, "jo@example.com")
	}
	checksBy(n0, views, "one check a page view for Jo")

	ivy.Jar.SetCookies(u, []*http.Cookie{{Name: "ussync_session", Value: token(jo), Path: "/"}})
	n0 = tb.checksAnswered(t, a)
	shows(ivy, "ivy@example.com")
	checksBy(n0, 2, "Jo's session sent ahead and Ivy's asked")

	if code, err := tb.nodeCall(a, "POST", "/v1/users/"+url.PathEscape("ivy@example.com")+"/logout-everywhere", nil, nil); err != nil || code != 200 {
		t.Fatalf("log Ivy out everywhere: %d %v", code, err)
	}
	shows(ivy, "") // the answer about Jo's active session did not keep Ivy in
	shows(jo, "jo@example.com")
}

// reChecks reads the session checks a node answered from its metrics.
var reChecks = regexp.MustCompile(`(?m)^ussync_api_requests_total\{code="\d+",route="GET /v1/sessions/\{id\}"\} (\d+)$`)

// checksAnswered is the number of session checks (GET /v1/sessions/{id})
// site s's node has answered, every status together (its /metrics).
func (tb *testbed) checksAnswered(t *testing.T, s *site) int {
	t.Helper()
	base, c := apiOf(s)
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+tb.token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, truncate(string(b), 300))
	}
	n := 0
	for _, m := range reChecks.FindAllStringSubmatch(string(b), -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}
