// Package docs_test checks that the reference in docs/ and the README cite
// only what exists: the tests, conformance behaviours and Ginkgo specs named
// as proof of a guarantee, the repository paths and the make targets. A
// rename in the code then fails here instead of leaving a page pointing at
// nothing.
package docs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = ".."

var (
	codeSpan    = regexp.MustCompile("`([^`]+)`")
	blockStart  = regexp.MustCompile(`^\s*(?:[-*]|\d+\.)\s|^#|^\|`)
	listMarker  = regexp.MustCompile(`^\s*(?:[-*]|\d+\.)\s+`)
	testName    = regexp.MustCompile(`^(?:Test|Fuzz|Benchmark)[A-Z0-9_]\w*$`)
	subtestName = regexp.MustCompile(`^[A-Z][A-Za-z0-9]+$`)
	// A repository path: after a space, bracket, quote, '=', '@', "./" or
	// "../", up to a character no path of this repository contains.
	repoPath = regexp.MustCompile(
		"(?:^|[\\s(`\"'=@]|\\.\\./|\\./)((?:api|cmd|config|docs|hack|internal|test)/[^\\s`()\"'<>{},;:#*]*)")

	testFunc       = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)\w*)\(`)
	suiteBehaviour = regexp.MustCompile(`\{\s*"([A-Z]\w*)",|t\.Run\("([A-Z]\w*)"`)
	ginkgoNode     = regexp.MustCompile(`\b(Describe|Context|It)\(\s*("(?:[^"\\]|\\.)*")`)
	makeTarget     = regexp.MustCompile(`(?m)^([A-Za-z0-9_.-]+):`)
	makeWord       = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

// page is one Markdown file of the reference, split into blocks: a
// paragraph, a list item, a heading, a table row, or one line of a fenced
// code block.
type page struct {
	name   string
	blocks []block
}

type block struct {
	line int // of the block's first line, from 1
	text string
	code bool // a line of a fenced code block
}

func (b block) String() string { return strconv.Itoa(b.line) }

// spans returns the block's code spans, their whitespace collapsed (a span
// may wrap over lines).
func (b block) spans() []string {
	matches := codeSpan.FindAllStringSubmatch(b.text, -1)
	out := make([]string, 0, len(matches))
	for _, m := range matches {
		out = append(out, strings.Join(strings.Fields(m[1]), " "))
	}
	return out
}

// prose is the block's text without its code spans.
func (b block) prose() string { return codeSpan.ReplaceAllString(b.text, "") }

// startsWith reports whether the block, without its list marker, starts
// with prefix.
func (b block) startsWith(prefix string) bool {
	return strings.HasPrefix(listMarker.ReplaceAllString(b.text, ""), prefix)
}

// pages reads docs/*.md and the README.
func pages(t *testing.T) []page {
	t.Helper()
	names, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	names = append(names, filepath.Join(repoRoot, "README.md"))
	out := make([]page, 0, len(names))
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page{name: name, blocks: splitBlocks(string(data))})
	}
	return out
}

func splitBlocks(text string) []block {
	var (
		out    []block
		cur    *block
		fenced bool
	)
	end := func() {
		if cur != nil {
			out = append(out, *cur)
			cur = nil
		}
	}
	for i, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "```"):
			end()
			fenced = !fenced
		case fenced:
			out = append(out, block{line: i + 1, text: line, code: true})
		case strings.TrimSpace(line) == "":
			end()
		case cur == nil || blockStart.MatchString(line):
			end()
			cur = &block{line: i + 1, text: line}
		default:
			cur.text += "\n" + line
		}
	}
	end()
	return out
}

// repo is what the repository defines that the pages may cite.
type repo struct {
	tests  map[string]bool            // Test, Fuzz and Benchmark functions
	suites map[string]map[string]bool // conformance suite package -> its behaviours (subtests)
	specs  map[string]bool            // Ginkgo specs: "It" and "Describe It"
	suite  *regexp.Regexp             // a suite package's name, as a word
}

func readRepo(t *testing.T) repo {
	t.Helper()
	r := repo{tests: map[string]bool{}, suites: map[string]map[string]bool{}, specs: map[string]bool{}}
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != repoRoot && (strings.HasPrefix(name, ".") ||
				slices.Contains([]string{"bin", "dist", "node_modules", "testdata"}, name)) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		src := string(data)
		if strings.HasSuffix(path, "_test.go") {
			for _, m := range testFunc.FindAllStringSubmatch(src, -1) {
				r.tests[m[1]] = true
			}
			addSpecs(t, r.specs, path, src)
			return nil
		}
		// A conformance suite: a ...test package whose Run every backend calls.
		if pkg := filepath.Base(filepath.Dir(path)); strings.HasSuffix(pkg, "test") {
			if r.suites[pkg] == nil {
				r.suites[pkg] = map[string]bool{}
			}
			for _, m := range suiteBehaviour.FindAllStringSubmatch(src, -1) {
				r.suites[pkg][m[1]+m[2]] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for pkg, behaviours := range r.suites {
		if len(behaviours) == 0 {
			delete(r.suites, pkg) // a helper package, such as enginetest
			continue
		}
		names = append(names, regexp.QuoteMeta(pkg))
	}
	r.suite = regexp.MustCompile(`\b(` + strings.Join(names, "|") + `)\b`)
	return r
}

// addSpecs adds the Ginkgo specs of one test file: each It alone, and after
// each Describe or Context of the file.
func addSpecs(t *testing.T, specs map[string]bool, path, src string) {
	t.Helper()
	var containers, its []string
	for _, m := range ginkgoNode.FindAllStringSubmatch(src, -1) {
		text, err := strconv.Unquote(m[2])
		if err != nil {
			t.Fatalf("%s: %s(%s): %v", path, m[1], m[2], err)
		}
		if m[1] == "It" {
			its = append(its, text)
		} else {
			containers = append(containers, text)
		}
	}
	for _, it := range its {
		specs[it] = true
		for _, c := range containers {
			specs[c+" "+it] = true
		}
	}
}

func TestEveryTestTheDocsCiteExists(t *testing.T) {
	r := readRepo(t)
	cited := map[string]int{} // kind -> citations checked in guarantees.md
	for _, p := range pages(t) {
		for _, b := range p.blocks {
			// A block cites behaviours of the suites its prose names:
			// "eventstoretest `AppendIsIdempotentByEventID`".
			suites := r.suite.FindAllString(b.prose(), -1)
			isSpec := b.startsWith("e2e:") || b.startsWith("envtest:")
			for _, s := range b.spans() {
				kind := ""
				switch {
				case testName.MatchString(s):
					kind = "test"
					if !r.tests[s] {
						t.Errorf("%s:%s cites %s, which no _test.go file defines", p.name, b, s)
					}
				case isSpec:
					kind = "spec"
					if !r.specs[s] {
						t.Errorf("%s:%s cites the spec %q, which no Ginkgo It (after its Describe) names", p.name, b, s)
					}
				case len(suites) > 0 && subtestName.MatchString(s):
					kind = "behaviour"
					if !slices.ContainsFunc(suites, func(suite string) bool { return r.suites[suite][s] }) {
						t.Errorf("%s:%s cites %s, which is no behaviour of %s", p.name, b, s, strings.Join(suites, " or "))
					}
				}
				if kind != "" && p.name == "guarantees.md" {
					cited[kind]++
				}
			}
		}
	}
	// The patterns must still find what guarantees.md cites, or this test
	// would pass by checking nothing.
	for _, kind := range []string{"test", "behaviour", "spec"} {
		if cited[kind] == 0 {
			t.Errorf("guarantees.md: found no %s cited; the patterns of this test no longer match the page", kind)
		}
	}
}

func TestEveryRepositoryPathTheDocsCiteExists(t *testing.T) {
	checked := 0
	for _, p := range pages(t) {
		for _, b := range p.blocks {
			for _, m := range repoPath.FindAllStringSubmatch(b.text, -1) {
				path := m[1]
				for trimmed := ""; trimmed != path; {
					trimmed = path
					path = strings.TrimSuffix(strings.TrimRight(path, "./"), "...")
				}
				checked++
				if _, err := os.Stat(filepath.Join(repoRoot, path)); err != nil {
					t.Errorf("%s:%s cites %s, which the repository does not have", p.name, b, m[1])
				}
			}
		}
	}
	if checked == 0 {
		t.Error("found no repository path in the docs; the pattern of this test no longer matches them")
	}
}

func TestEveryMakeTargetTheDocsCiteExists(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range makeTarget.FindAllStringSubmatch(string(makefile), -1) {
		targets[m[1]] = true
	}
	checked := 0
	for _, p := range pages(t) {
		for _, b := range p.blocks {
			commands := b.spans()
			if b.code {
				commands = []string{strings.TrimSpace(b.text)}
			}
			for _, c := range commands {
				words := strings.Fields(c)
				if len(words) == 0 || words[0] != "make" {
					continue
				}
				// The targets: the words after make up to the first
				// variable, comment or other argument.
				for _, w := range words[1:] {
					if !makeWord.MatchString(w) {
						break
					}
					checked++
					if !targets[w] {
						t.Errorf("%s:%s runs make %s, which the Makefile does not define", p.name, b, w)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Error("found no make command in the docs; the pattern of this test no longer matches them")
	}
}
