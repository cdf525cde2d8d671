package client_test

import (
	"strings"
	"testing"

	"github.com/ussync/ussync/client"
)

func TestSafeNext(t *testing.T) {
	t.Run("this site's pages are kept", func(t *testing.T) {
		for _, next := range []string{
			"/",
			"/account",
			"/account?tab=orders&x=%2F%2F",
			"/a/b/../c",
			"/blog/2024/caf%C3%A9#comments",
			"/search?q=a+b&next=//evil.example", // what follows the path is not where the browser goes
			"/" + strings.Repeat("a", 2047),
		} {
			if got := client.SafeNext(next); got != next {
				t.Errorf("SafeNext(%q) = %q, want it kept", next, got)
			}
		}
	})

	t.Run("anything else is the home page", func(t *testing.T) {
		for _, next := range []string{
			"",
			"account",         // relative
			"./account",       // relative
			"//evil.example/", // scheme-relative: another host
			"///evil.example", // the same, to a browser
			"/\\evil.example", // "\" is "/" to a browser
			"\\/evil.example",
			"/a\\b",            // a backslash anywhere
			"/\t/evil.example", // browsers drop the tab: //evil.example
			"/\n/evil.example", // and line breaks
			"/\r\n/evil.example",
			"/\x00/evil.example",
			"/\x7f",
			"/account\r\nSet-Cookie: a=b", // a header injected
			" /evil.example",              // not a path
			"http://evil.example/",
			"https:/evil.example",
			"HTTPS://evil.example",
			"javascript:alert(1)",
			"JavaScript:alert(1)",
			"data:text/html,<script>",
			"/%2F%2Fevil.example", // decoded once more: //evil.example
			"/%2f/evil.example",
			"/%5Cevil.example",              // decoded: /\evil.example
			"/%09/evil.example",             // decoded: a tab
			"/%0d%0aSet-Cookie:%20a=b",      // decoded: a line break
			"/%zz",                          // not a URL
			"/" + strings.Repeat("a", 2048), // longer than any page's address
		} {
			if got := client.SafeNext(next); got != "/" {
				t.Errorf("SafeNext(%q) = %q, want \"/\"", next, got)
			}
		}
	})
}
