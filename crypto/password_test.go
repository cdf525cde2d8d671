package crypto

import (
	"fmt"
	"strings"
	"testing"
)

func TestPassword_HashAndCheck(t *testing.T) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !h.Check("correct horse battery staple") {
		t.Fatal("the password does not match its own hash")
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple"} {
		if h.Check(wrong) {
			t.Fatalf("%q matches", wrong)
		}
	}
	p, err := ParsePasswordHash("admin:" + h.String() + "\n")
	if err != nil {
		t.Fatalf("parse the htpasswd form of a hash: %v", err)
	}
	if !p.Check("correct horse battery staple") {
		t.Fatal("a parsed hash does not match")
	}
	if s := fmt.Sprintf("%v %s %+v", h, h, h); strings.Contains(s, "$2") {
		t.Fatalf("a hash prints: %s", s)
	}
	if (PasswordHash{}).Check("") {
		t.Fatal("the zero hash matches the empty password")
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); err == nil {
		t.Fatal("a password over bcrypt's 72 bytes was hashed (cut)")
	}
}

func TestPassword_ParseRefusesNonHashes(t *testing.T) {
	for _, s := range []string{"", "secret", "$1$abc$def", "$2a$04$short"} {
		if _, err := ParsePasswordHash(s); err == nil {
			t.Fatalf("%q parsed as a hash", s)
		} else if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("the error repeats the input: %v", err)
		}
	}
	// htpasswd -B writes $2y$: accepted.
	if _, err := ParsePasswordHash("$2y$05$W1jH3ZNaSmu1Vh2qUKCKyeZ5aG9RP1P8QQ8MwItC5i/JAWOkBcBNK"); err != nil {
		t.Fatalf("a $2y$ hash: %v", err)
	}
}
