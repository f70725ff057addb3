// Package dashboard checks a Grafana dashboard against what the manager
// exports: every metric and label its queries name must be in a scrape of
// /metrics, so that a renamed metric or a typo shows as a failing test, not
// as an empty panel.
//
// PromQL is read by a small extractor rather than Prometheus' own parser
// (github.com/prometheus/prometheus/promql/parser), whose module requires a
// newer Go patch release than go.mod's and some two hundred modules. The
// extractor knows enough of the grammar to find names: a metric is an
// identifier that is not a keyword and not followed by "(" (a function or
// an aggregation, nor by "by" or "without"); labels are those of {...} matchers and of by, without,
// on, ignoring, group_left and group_right clauses.
package dashboard

import (
	"fmt"
	"regexp"
	"strings"
)

// Selector is one vector selector of a query: a metric and the labels its
// matchers name.
type Selector struct {
	Metric string
	Labels []string
}

// Refs is what a query names.
type Refs struct {
	Selectors []Selector
	// Grouping holds the labels of by, without, on, ignoring, group_left
	// and group_right clauses.
	Grouping []string
}

// grouping are the keywords followed by a parenthesised label list.
var grouping = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// keywords are identifiers that are neither metrics nor calls.
var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"inf": true, "nan": true,
}

// Grafana's variables: $__rate_interval and friends stand for durations;
// $name, ${name}, ${name:format} and [[name]] for values, which the
// dashboard puts in strings.
var (
	grafanaInterval = regexp.MustCompile(`\$__[A-Za-z_]+|\$\{__[A-Za-z_]+\}`)
	grafanaVariable = regexp.MustCompile(`\$\{[A-Za-z0-9_]+(:[A-Za-z]+)?\}|\$[A-Za-z0-9_]+|\[\[[A-Za-z0-9_]+\]\]`)
)

// ParseQuery returns the metrics and labels a PromQL query of a dashboard
// names, its Grafana variables replaced first. It fails on what it cannot
// read (an unterminated string, unbalanced brackets, a malformed matcher),
// so that a query it misreads does not pass unchecked.
func ParseQuery(query string) (Refs, error) {
	query = grafanaInterval.ReplaceAllString(query, "5m")
	query = grafanaVariable.ReplaceAllString(query, "var")
	toks, err := tokenize(query)
	if err != nil {
		return Refs{}, err
	}
	var refs Refs
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == identToken:
			name := strings.ToLower(t.text)
			next := peek(toks, i+1)
			switch {
			case grouping[name]:
				if next.text != "(" {
					continue // group_left without a label list
				}
				labels, end, err := labelList(toks, i+2)
				if err != nil {
					return Refs{}, err
				}
				refs.Grouping = append(refs.Grouping, labels...)
				i = end
			case next.kind == punctToken && next.text == "(":
				// A function or an aggregation: its arguments follow.
			case next.kind == identToken && (strings.EqualFold(next.text, "by") || strings.EqualFold(next.text, "without")):
				// An aggregation whose grouping comes first: sum by (a) (...).
			case keywords[name]:
			default:
				sel := Selector{Metric: t.text}
				if next.kind == punctToken && next.text == "{" {
					labels, end, err := matchers(toks, i+2)
					if err != nil {
						return Refs{}, err
					}
					sel.Labels, i = labels, end
				}
				refs.Selectors = append(refs.Selectors, sel)
			}
		case t.kind == punctToken && t.text == "{":
			return Refs{}, fmt.Errorf("query %q: a selector without a metric name before its braces cannot be checked", query)
		case t.kind == punctToken && t.text == "[":
			end, err := closing(toks, i, "[", "]")
			if err != nil {
				return Refs{}, err
			}
			i = end // a range or subquery: durations only
		case t.kind == punctToken && (t.text == "}" || t.text == "]"):
			return Refs{}, fmt.Errorf("query %q: unbalanced %q", query, t.text)
		}
	}
	if depth := parenDepth(toks); depth != 0 {
		return Refs{}, fmt.Errorf("query %q: unbalanced parentheses", query)
	}
	return refs, nil
}

// labelList reads "a, b)" from toks[i:], returning the labels and the
// index of ")".
func labelList(toks []token, i int) ([]string, int, error) {
	var labels []string
	for ; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == punctToken && t.text == ")":
			return labels, i, nil
		case t.kind == punctToken && t.text == ",":
		case t.kind == identToken:
			labels = append(labels, t.text)
		default:
			return nil, 0, fmt.Errorf("unexpected %q in a label list", t.text)
		}
	}
	return nil, 0, fmt.Errorf("unterminated label list")
}

// matchers reads `label op "value", ...}` from toks[i:], returning the
// labels and the index of "}".
func matchers(toks []token, i int) ([]string, int, error) {
	var labels []string
	for i < len(toks) {
		t := toks[i]
		if t.kind == punctToken && t.text == "}" {
			return labels, i, nil
		}
		if t.kind != identToken {
			return nil, 0, fmt.Errorf("want a label name in a matcher, got %q", t.text)
		}
		op, value := peek(toks, i+1), peek(toks, i+2)
		if op.kind != punctToken || !matchOps[op.text] {
			return nil, 0, fmt.Errorf("want =, !=, =~ or !~ after label %q, got %q", t.text, op.text)
		}
		if value.kind != stringToken {
			return nil, 0, fmt.Errorf("want a quoted value for label %q, got %q", t.text, value.text)
		}
		labels = append(labels, t.text)
		i += 3
		if sep := peek(toks, i); sep.kind == punctToken && sep.text == "," {
			i++
		}
	}
	return nil, 0, fmt.Errorf("unterminated {")
}

var matchOps = map[string]bool{"=": true, "!=": true, "=~": true, "!~": true}

// closing returns the index of the token that closes toks[i] (opener).
func closing(toks []token, i int, opener, closer string) (int, error) {
	depth := 0
	for j := i; j < len(toks); j++ {
		if toks[j].kind != punctToken {
			continue
		}
		switch toks[j].text {
		case opener:
			depth++
		case closer:
			depth--
			if depth == 0 {
				return j, nil
			}
		}
	}
	return 0, fmt.Errorf("unterminated %s", opener)
}

func parenDepth(toks []token) int {
	depth := 0
	for _, t := range toks {
		if t.kind != punctToken {
			continue
		}
		switch t.text {
		case "(":
			depth++
		case ")":
			depth--
			if depth < 0 {
				return depth
			}
		}
	}
	return depth
}

func peek(toks []token, i int) token {
	if i < len(toks) {
		return toks[i]
	}
	return token{}
}

type tokenKind int

const (
	noToken tokenKind = iota
	identToken
	stringToken
	numberToken
	punctToken
)

type token struct {
	kind tokenKind
	text string
}

// twoCharOps are the operators of two characters; any other punctuation
// is a token of one.
var twoCharOps = map[string]bool{"=~": true, "!~": true, "!=": true, "==": true, "<=": true, ">=": true}

func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#': // a comment, to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			end, err := stringEnd(s, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{stringToken, s[i+1 : end]})
			i = end + 1
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && (isIdentStart(s[j]) || isDigit(s[j])) {
				j++
			}
			toks = append(toks, token{identToken, s[i:j]})
			i = j
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			j := numberEnd(s, i)
			toks = append(toks, token{numberToken, s[i:j]})
			i = j
		case i+1 < len(s) && twoCharOps[s[i:i+2]]:
			toks = append(toks, token{punctToken, s[i : i+2]})
			i += 2
		default:
			toks = append(toks, token{punctToken, s[i : i+1]})
			i++
		}
	}
	return toks, nil
}

// stringEnd returns the index of the quote that ends the string starting
// at s[i]; backquoted strings have no escapes.
func stringEnd(s string, i int) (int, error) {
	quote := s[i]
	j := i + 1
	for j < len(s) && s[j] != quote {
		if s[j] == '\\' && quote != '`' {
			j++
		}
		j++
	}
	if j >= len(s) {
		return 0, fmt.Errorf("query %q: unterminated string", s)
	}
	return j, nil
}

// numberEnd returns the end of the number starting at s[i]: decimals,
// hex, exponents and durations (5m, 1h30m).
func numberEnd(s string, i int) int {
	j := i + 1
	for j < len(s) && (isDigit(s[j]) || isIdentStart(s[j]) || s[j] == '.' ||
		((s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E'))) {
		j++
	}
	return j
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
