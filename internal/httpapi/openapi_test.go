package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
)

const openAPIPath = "/v1/openapi.json"

// openAPIDoc is the part of an OpenAPI document the tests look at; raw
// keeps all of it for resolving references.
type openAPIDoc struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
	raw     any
}

// operations are a path item's keys that name HTTP methods.
var operations = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func fetchOpenAPI(t *testing.T, a *api) openAPIDoc {
	t.Helper()
	r := a.get(openAPIPath)
	expectStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var doc openAPIDoc
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("the OpenAPI document is not JSON: %v", err)
	}
	must(t, json.Unmarshal(r.body, &doc.raw))
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	return doc
}

// documented is every "METHOD /path" the document describes.
func (d openAPIDoc) documented() []string {
	var out []string
	for path, item := range d.Paths {
		for _, m := range operations {
			if _, ok := item[m]; ok {
				out = append(out, strings.ToUpper(m)+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}

// servedAPIRoutes is every "METHOD /path" the handler serves under /v1/,
// with its ServeMux wildcards written as OpenAPI templates. Routes outside
// /v1/ (the console) are not part of the API the document describes.
func servedAPIRoutes(t *testing.T) []string {
	t.Helper()
	e, err := core.New(core.Config{})
	must(t, err)
	t.Cleanup(func() { _ = e.Close() })
	h, err := httpapi.NewHandler(httpapi.Config{Engine: e, Log: logr.Discard()})
	must(t, err)
	var out []string
	for pattern, methods := range httpapi.Routes(h) {
		if !strings.HasPrefix(pattern, "/v1/") {
			continue
		}
		for _, m := range methods {
			out = append(out, m+" "+strings.ReplaceAll(pattern, "...}", "}"))
		}
	}
	slices.Sort(out)
	return out
}

func TestOpenAPIDescribesEveryRouteAndNothingElse(t *testing.T) {
	doc := fetchOpenAPI(t, newAPI(t, apiOptions{}))
	served, documented := servedAPIRoutes(t), doc.documented()
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("the handler serves %s, the OpenAPI document does not describe it", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("the OpenAPI document describes %s, the handler does not serve it", r)
		}
	}
}

// Each documented path answers its documented methods and refuses the
// others with a 405 that allows exactly the documented ones.
func TestOpenAPIPathsAnswerTheirMethodsAndOnlyThose(t *testing.T) {
	a := newAPI(t, apiOptions{})
	doc := fetchOpenAPI(t, a)
	template := regexp.MustCompile(`\{[^}]+\}`)
	values := map[string]string{
		"{namespace}": ns, "{stream}": "items-events", "{projection}": "items", "{reactor}": "shipper", "{key}": "k",
	}
	for path, item := range doc.Paths {
		url := template.ReplaceAllStringFunc(path, func(p string) string { return values[p] })
		var allowed []string
		for _, m := range operations {
			if _, ok := item[m]; ok {
				allowed = append(allowed, strings.ToUpper(m))
			}
		}
		if slices.Contains(allowed, http.MethodGet) {
			allowed = append(allowed, http.MethodHead) // HEAD goes with every GET
		}
		slices.Sort(allowed)
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			r := a.do(m, url, "", nil)
			if slices.Contains(allowed, m) {
				if r.status == http.StatusMethodNotAllowed || strings.Contains(string(r.body), "no such path") {
					t.Errorf("%s %s is documented, got %d %s", m, url, r.status, r.body)
				}
				continue
			}
			if r.status != http.StatusMethodNotAllowed {
				t.Errorf("%s %s is not documented, got %d, want 405", m, url, r.status)
			} else if got := strings.Split(r.header.Get("Allow"), ", "); !slices.Equal(slices.Sorted(slices.Values(got)), allowed) {
				t.Errorf("%s %s: Allow %q, want the documented methods %q", m, url, got, allowed)
			}
		}
	}
}

func TestOpenAPIReferencesResolveAndPathParametersAreDeclared(t *testing.T) {
	doc := fetchOpenAPI(t, newAPI(t, apiOptions{}))
	var refs []string
	collectRefs(doc.raw, &refs)
	if len(refs) == 0 {
		t.Fatal("the document has no $ref: the check below would prove nothing")
	}
	for _, ref := range refs {
		if _, err := resolve(doc.raw, ref); err != nil {
			t.Errorf("$ref %s: %v", ref, err)
		}
	}
	template := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths {
		for _, m := range operations {
			opRaw, ok := item[m]
			if !ok {
				continue
			}
			declared := map[string]bool{}
			for _, params := range []json.RawMessage{item["parameters"], paramsOf(t, opRaw)} {
				for _, p := range decodeParams(t, doc, params) {
					if p.In == "path" {
						declared[p.Name] = true
					}
				}
			}
			for _, match := range template.FindAllStringSubmatch(path, -1) {
				if !declared[match[1]] {
					t.Errorf("%s %s: path parameter %s is not declared", m, path, match[1])
				}
			}
		}
	}
}

// Every error answer is documented as a problem document.
func TestOpenAPIErrorsAreProblemDocuments(t *testing.T) {
	doc := fetchOpenAPI(t, newAPI(t, apiOptions{}))
	for path, item := range doc.Paths {
		for _, m := range operations {
			opRaw, ok := item[m]
			if !ok {
				continue
			}
			var op struct {
				Responses map[string]json.RawMessage `json:"responses"`
			}
			must(t, json.Unmarshal(opRaw, &op))
			if len(op.Responses) == 0 {
				t.Errorf("%s %s documents no response", m, path)
			}
			for status, resp := range op.Responses {
				if status < "400" {
					continue
				}
				var r struct {
					Content map[string]any `json:"content"`
				}
				must(t, json.Unmarshal(resolveRaw(t, doc, resp), &r))
				if _, ok := r.Content["application/problem+json"]; !ok || len(r.Content) != 1 {
					t.Errorf("%s %s: the %s answer is %v, want application/problem+json", m, path, status, r.Content)
				}
			}
		}
	}
}

type parameter struct {
	Name string `json:"name"`
	In   string `json:"in"`
}

func paramsOf(t *testing.T, op json.RawMessage) json.RawMessage {
	t.Helper()
	var o struct {
		Parameters json.RawMessage `json:"parameters"`
	}
	must(t, json.Unmarshal(op, &o))
	return o.Parameters
}

func decodeParams(t *testing.T, doc openAPIDoc, raw json.RawMessage) []parameter {
	t.Helper()
	if raw == nil {
		return nil
	}
	var items []json.RawMessage
	must(t, json.Unmarshal(raw, &items))
	out := make([]parameter, len(items))
	for i, it := range items {
		must(t, json.Unmarshal(resolveRaw(t, doc, it), &out[i]))
	}
	return out
}

// resolveRaw follows raw's $ref, if it is one.
func resolveRaw(t *testing.T, doc openAPIDoc, raw json.RawMessage) json.RawMessage {
	t.Helper()
	var r struct {
		Ref string `json:"$ref"`
	}
	must(t, json.Unmarshal(raw, &r))
	if r.Ref == "" {
		return raw
	}
	v, err := resolve(doc.raw, r.Ref)
	must(t, err)
	b, err := json.Marshal(v)
	must(t, err)
	return b
}

func collectRefs(v any, refs *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				*refs = append(*refs, s)
			}
			collectRefs(x, refs)
		}
	case []any:
		for _, x := range v {
			collectRefs(x, refs)
		}
	}
}

// resolve follows a local JSON pointer reference ("#/components/...").
func resolve(root any, ref string) (any, error) {
	pointer, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("not a local reference")
	}
	v := root
	for _, tok := range strings.Split(pointer, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q is not inside an object", tok)
		}
		if v, ok = m[tok]; !ok {
			return nil, fmt.Errorf("no %q", tok)
		}
	}
	return v, nil
}
