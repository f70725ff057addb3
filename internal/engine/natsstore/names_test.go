package natsstore

import (
	"strings"
	"testing"
)

func TestTokenIsASubjectTokenAndComesBackUnchanged(t *testing.T) {
	for _, s := range []string{"", "orders", "shop/orders", "a.b*c>d", "x_y", "_", "__", "ключ", "sp ace\t", "-", "A-Z~"} {
		tok := token(s)
		if tok == "" || strings.ContainsAny(tok, ".*> \t/\\") {
			t.Errorf("token(%q) = %q: not one subject token", s, tok)
		}
		back, ok := untoken(tok)
		if !ok || back != s {
			t.Errorf("untoken(token(%q)) = %q, %v", s, back, ok)
		}
	}
	if a, b := token("a_b"), token("a/b"); a == b {
		t.Errorf("token(a_b) = token(a/b) = %q", a)
	}
}

func TestUntokenRefusesWhatTokenNeverMakes(t *testing.T) {
	for _, tok := range []string{"a_", "a_4", "a_zz", "_4g"} {
		if s, ok := untoken(tok); ok {
			t.Errorf("untoken(%q) = %q, want refused", tok, s)
		}
	}
}
