package crypto

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBinding(t *testing.T) {
	n, err := NewNonce()
	if err != nil || !ValidNonce(n) {
		t.Fatalf("nonce %q: %v", n, err)
	}
	m, _ := NewNonce()
	b := BindingOf("shop", n)
	switch {
	case !b.Matches("shop", n):
		t.Error("a binding does not match its nonce")
	case b.Matches("shop", m):
		t.Error("a binding matches another nonce")
	case b.Matches("blog", n):
		t.Error("a binding matches the same nonce set by another site")
	}
	back, err := ParseBinding(b.String())
	if err != nil || back != b || len(b.String()) != 11 {
		t.Errorf("round trip %q: %v %v", b.String(), back, err)
	}
	for _, bad := range []string{"", "AAAA", b.String() + "A", strings.Repeat("=", 11), "AAAAAAAAAA+"} {
		if _, err := ParseBinding(bad); err == nil {
			t.Errorf("ParseBinding(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "abc", n + "A", strings.Repeat("+", 43), n[:42] + "="} {
		if ValidNonce(bad) {
			t.Errorf("ValidNonce(%q)", bad)
		}
	}
}

func TestTicket_Bindings(t *testing.T) {
	k := NewKeyring(testSecret(1))
	tk := sampleTicket()
	tk.Token = ""
	tk.Target, tk.Route = "", []string{"shop", "blog"}
	tk.Bindings = []Binding{BindingOf("shop", "n1"), BindingOf("blog", "n2")}
	s, err := k.SealTicket(tk)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.OpenTicket(s, ticketNow)
	if err != nil {
		t.Fatal(err)
	}
	tk.ID = got.ID
	assertSameTicket(t, got, tk)
	t.Run("one per target", func(t *testing.T) {
		for _, c := range []Ticket{
			{Route: []string{"shop", "blog"}, Bindings: []Binding{{}}},
			{Target: "shop", Bindings: []Binding{{}, {}}},
			{Route: []string{"shop"}, Bindings: []Binding{{}, {}}},
		} {
			c.IssuedAt, c.ExpiresAt = ticketNow, ticketNow.Add(time.Minute)
			if _, err := k.SealTicket(c); !errors.Is(err, ErrTicketInvalid) {
				t.Errorf("sealed %d bindings for %v %q: %v", len(c.Bindings), c.Route, c.Target, err)
			}
		}
	})
	t.Run("cut short", func(t *testing.T) {
		one := Ticket{Target: "shop", Bindings: []Binding{BindingOf("shop", "n")}, IssuedAt: ticketNow, ExpiresAt: ticketNow.Add(time.Minute)}
		raw := appendTicket(nil, &one)
		// flags, id (string), target (string), then the binding: cut it.
		if _, err := decodeTicket(raw[:1+1+1+1+len("shop")+3]); err == nil {
			t.Error("a ticket with a truncated binding decoded")
		}
	})
}
