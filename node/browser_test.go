package node

import (
	"slices"
	"strings"
	"testing"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// FuzzDecodeBindState exercises the decoder of a chain's bind state (a
// ticket payload every site of a route opens and seals again): it must
// never panic, and what it accepts must hold one commitment (or "") per
// distinct site name and encode back to the same state.
func FuzzDecodeBindState(f *testing.F) {
	b := crypto.BindingOf("site-b", "nonce").String()
	for _, p := range []ticketPayload{
		{Kind: ticketKindBind, Route: []string{"site-b", "site-c"}, Bound: []string{"", ""}, Return: "http://a.example/"},
		{Kind: ticketKindBind, Route: []string{"site-b"}, Bound: []string{b}},
		{Kind: ticketKindBind, Route: []string{strings.Repeat("s", 300)}, Bound: []string{""}, Return: strings.Repeat("r", 2000)},
		{Kind: ticketKindBind, Route: []string{"site-b"}, Bound: []string{""}, Return: "http://a.example/", After: "site-b"},
		{Kind: ticketKindBind, Return: "http://a.example/", After: "site-b"}, // a continuation (legs)
	} {
		enc, err := encodePayload(&p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	for _, s := range []string{"", "{}", `{"k":"bind"}`, `{"k":"bind","o":["a","a"],"b":["",""]}`, `{"k":"bind","o":["a"],"b":["AAAA"]}`,
		`{"k":"bind","o":["a"],"b":[""],"s":{}}`, `{"k":"hop","o":["a"],"b":[""]}`, "\x01\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var p ticketPayload
		if err := decodeBindState(raw, &p); err != nil {
			return
		}
		if p.Kind != ticketKindBind || (len(p.Route) == 0 && p.After == "") || len(p.After) > session.MaxSiteNameBytes ||
			len(p.Route) != len(p.Bound) || p.Session != nil || p.User != nil {
			t.Fatalf("accepted %+v", p)
		}
		seen := map[string]bool{}
		for i, name := range p.Route {
			if name == "" || seen[name] {
				t.Fatalf("accepted route %q", p.Route)
			}
			seen[name] = true
			if p.Bound[i] != "" {
				if _, err := crypto.ParseBinding(p.Bound[i]); err != nil {
					t.Fatalf("accepted commitment %q", p.Bound[i])
				}
			}
		}
		enc, err := encodePayload(&p)
		if err != nil {
			t.Fatal(err)
		}
		var again ticketPayload
		if err := decodeBindState(enc, &again); err != nil || !slices.Equal(again.Route, p.Route) || !slices.Equal(again.Bound, p.Bound) || again.Return != p.Return {
			t.Fatalf("re-encoded state %+v: %v", again, err)
		}
	})
}
