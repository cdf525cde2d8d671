package site

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ussync/ussync/client"
)

// pageData is what templates/page.html shows.
type pageData struct {
	Site     Spec
	Family   []navSite
	Mode     string
	CSRF     string
	Visitor  visitor
	Notice   *notice
	Error    string
	Sessions []sessionRow
	// Reach is, per site, whether the user is logged in there as far as the
	// store knows: an active synced session counts everywhere, a local one
	// (unverified e-mail) on its own site only.
	Reach  []navSite
	Users  []User
	Frames []string // iframe mode, right after login: the sync URLs
	Items  []item
	// HopMinutes is sync.hop_interval in minutes (lazy mode's explanation).
	HopMinutes int
}

// navSite is a site of the family in the navigation.
type navSite struct {
	Spec
	Current bool
	Alive   bool // the node lists it as an alive member
	On      bool // Reach: the user is logged in there
}

// sessionRow is one line of the sessions table.
type sessionRow struct {
	client.SessionInfo
	SiteTitle string
	This      bool // this browser's session
}

// notice is a message left for the next page (a flash).
type notice struct {
	Kind string // ok, info, warn
	Text string
}

// item is a piece of the site's own content.
type item struct {
	Title, Meta, Body string
}

// content is each site's own (static) content: it makes the three sites
// look like three different businesses.
var content = map[string][]item{
	"shop": {
		{"Darjeeling first flush, 100 g", "€ 8.50", "Loose-leaf, light and floral. Ships in a tin."},
		{"Brass pocket compass", "€ 24.00", "Liquid-damped, with a lid that clicks shut."},
		{"Linen tote bag", "€ 12.00", "Natural linen, long handles, an inside pocket."},
	},
	"blog": {
		{"Reading isobars on a Sunday morning", "12 March · 6 min read", "Why the lines bunch up before a windy afternoon, and what the barometer in the hall is telling you."},
		{"The night train to Vienna, revisited", "2 March · 9 min read", "Couchettes, a dining car and a timetable that has not changed since 1994."},
		{"Ordnance maps I keep coming back to", "18 February · 4 min read", "Three sheets, three walks, and the contour lines that made them memorable."},
	},
	"forum": {
		{"Kettle clicks off after ten seconds — thermostat?", "Repairs · 14 replies", "Last reply by marta, 2 hours ago"},
		{"Best glue for a cracked ceramic mug handle", "Materials · 31 replies", "Last reply by joe_k, yesterday"},
		{"Show us your bicycle restorations (2024 thread)", "Show and tell · 208 replies", "Last reply by ines, 3 days ago"},
	},
}

// notices are the flash messages, by code.
func (s *Site) notice(code string) *notice {
	others := s.otherTitles()
	switch {
	case code == "loggedin":
		switch s.Mode {
		case client.ModeChain:
			return &notice{"ok", "Logged in. Your browser just went through " + others + " and back: you are logged in there too."}
		case client.ModeIframe:
			return &notice{"ok", "Logged in. Hidden iframes on this page are taking the session to " + others + " — if this browser allows third-party cookies."}
		default:
			return &notice{"ok", "Logged in. " + others + " will ask this site for the session the first time you open them."}
		}
	case code == "unverified":
		return &notice{"warn", "Logged in here only: this e-mail address is not verified, so the session stays on " + s.Title + " and never reaches " + others + "."}
	case code == "notbound":
		return &notice{"warn", "Logged in here only: " + s.Title + " has not proved this address itself (a code sent from here), so the session stays on " + s.Title + "."}
	case code == "loggedout":
		return &notice{"info", "Logged out — on every site: the session ended in the store, and every site's next check sees it."}
	case strings.HasPrefix(code, "everywhere."):
		n, _ := strconv.Atoi(strings.TrimPrefix(code, "everywhere."))
		return &notice{"info", fmt.Sprintf("Logged out everywhere: %d session%s ended, in every browser, on every site.", n, plural(n))}
	case code == client.CodeSessionEnded:
		return &notice{"info", "Your session ended (you logged out here or on another site)."}
	case code == client.CodeSessionRevoked:
		return &notice{"info", "You were logged out everywhere."}
	case code == client.CodeSessionExpired:
		return &notice{"info", "Your session expired."}
	case code != "":
		return &notice{"info", "Your session is not known here any more."}
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (s *Site) otherTitles() string {
	var t []string
	for i, f := range s.Family {
		if i != s.Index {
			t = append(t, f.Title)
		}
	}
	return strings.Join(t, " and ")
}

// render writes the page with status, for visitor v, with an error message
// (a form's) if not empty.
func (s *Site) render(w http.ResponseWriter, r *http.Request, status int, v visitor, errMsg string) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	d := pageData{
		Site:       s.Spec,
		Mode:       s.Mode,
		CSRF:       s.csrfToken(w, r),
		Visitor:    v,
		Error:      errMsg,
		Users:      s.Users,
		Items:      content[s.Name],
		HopMinutes: max(1, int(s.HopInterval.Round(time.Minute).Minutes())),
	}
	if c, err := r.Cookie(flashCookie); err == nil {
		d.Notice = s.notice(c.Value)
		s.setCookie(w, flashCookie, "", -1)
	} else if v.Ended != "" {
		d.Notice = s.notice(v.Ended)
	}
	if v.NewMember && d.Notice == nil {
		d.Notice = &notice{"ok", "Welcome to " + s.Title + ": this site had no account for " + v.User.Email + ", so it added you as a subscriber."}
	}

	alive := map[string]bool{}
	for _, m := range s.members(ctx) {
		alive[m.Name] = m.State == client.MemberAlive
	}
	titles := map[string]string{}
	for i, f := range s.Family {
		titles[f.Name] = f.Title
		d.Family = append(d.Family, navSite{Spec: f, Current: i == s.Index, Alive: alive[f.Name]})
	}

	if v.Session != nil {
		sessions, err := userSessions(ctx, s.API, v.Session.Email)
		if err != nil {
			s.nodeDown(w, err)
			return
		}
		for _, sv := range sessions {
			t := titles[sv.Site]
			if t == "" {
				t = sv.Site
			}
			d.Sessions = append(d.Sessions, sessionRow{SessionInfo: sv, SiteTitle: t, This: sv.ID == v.Session.ID})
		}
		for _, f := range d.Family {
			for _, sv := range sessions {
				if sv.Active && (sv.Synced || sv.Site == f.Name) {
					f.On = true
				}
			}
			d.Reach = append(d.Reach, f)
		}
		if s.Mode == client.ModeIframe {
			d.Frames = s.takePending(v.Session.ID)
		}
	}

	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, &d); err != nil {
		s.Log.Error("render page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", s.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// when formats a time for the sessions table, in the local zone.
func when(t any) string {
	var tm time.Time
	switch v := t.(type) {
	case time.Time:
		tm = v
	case *time.Time:
		if v == nil {
			return ""
		}
		tm = *v
	}
	if tm.IsZero() {
		return ""
	}
	tm = tm.Local()
	if y, m, d := tm.Date(); y == time.Now().Year() && m == time.Now().Month() && d == time.Now().Day() {
		return tm.Format("15:04:05")
	}
	return tm.Format("2 Jan 15:04")
}

var (
	// reBrowsers are tried in order: an Edge user agent also names Chrome
	// and Safari, a Chrome one Safari.
	reBrowsers = []struct {
		re   *regexp.Regexp
		name string
	}{
		{regexp.MustCompile(`Edg/(\d+)`), "Edge"},
		{regexp.MustCompile(`OPR/(\d+)`), "Opera"},
		{regexp.MustCompile(`Firefox/(\d+)`), "Firefox"},
		{regexp.MustCompile(`HeadlessChrome/(\d+)`), "HeadlessChrome"},
		{regexp.MustCompile(`Chrome/(\d+)`), "Chrome"},
		{regexp.MustCompile(`Version/(\d+)[^ ]* (Mobile/\S+ )?Safari/`), "Safari"},
	}
	// systems are tried in order: an Android user agent also says Linux.
	systems = []string{"Android", "iPhone", "iPad", "Windows", "CrOS", "Mac OS X", "Linux"}
)

// agentSummary names the browser and system of a user agent string, e.g.
// "HeadlessChrome 156 · Linux"; the full string is the cell's title.
func agentSummary(ua string) string {
	if ua == "" {
		return "—"
	}
	var parts []string
	for _, b := range reBrowsers {
		if m := b.re.FindStringSubmatch(ua); m != nil {
			parts = append(parts, b.name+" "+m[1])
			break
		}
	}
	for _, sys := range systems {
		if strings.Contains(ua, sys) {
			parts = append(parts, strings.Replace(sys, "Mac OS X", "macOS", 1))
			break
		}
	}
	if len(parts) == 0 {
		return ua[:min(len(ua), 40)]
	}
	return strings.Join(parts, " · ")
}
