package dashboard

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Exported is what a scrape holds: each series name a query can select
// (a histogram's as name_bucket, name_sum and name_count) with the labels
// its series carry.
type Exported map[string]map[string]bool

// ParseScrape reads a scrape in the Prometheus text format.
func ParseScrape(r io.Reader) (Exported, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse the scrape: %w", err)
	}
	out := Exported{}
	add := func(name string, labels []*dto.LabelPair, extra ...string) {
		set := out[name]
		if set == nil {
			set = map[string]bool{}
			out[name] = set
		}
		for _, l := range labels {
			set[l.GetName()] = true
		}
		for _, l := range extra {
			set[l] = true
		}
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m.GetLabel(), "le")
				add(name+"_sum", m.GetLabel())
				add(name+"_count", m.GetLabel())
			case dto.MetricType_SUMMARY:
				add(name, m.GetLabel(), "quantile")
				add(name+"_sum", m.GetLabel())
				add(name+"_count", m.GetLabel())
			default:
				add(name, m.GetLabel())
			}
		}
	}
	return out, nil
}

// Query is one PromQL query of a dashboard and where it is.
type Query struct {
	Where string // the panel's title, or the variable's name
	Expr  string
}

// dashboardJSON is the part of Grafana's dashboard model that holds queries.
type dashboardJSON struct {
	Panels     []panelJSON `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panelJSON struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panelJSON `json:"panels"` // a collapsed row's
}

// Queries returns the PromQL queries of a dashboard: its panels' targets
// (rows' included) and its query variables.
func Queries(dashboard []byte) (panels []Query, variables []Query, err error) {
	var d dashboardJSON
	if err := json.Unmarshal(dashboard, &d); err != nil {
		return nil, nil, fmt.Errorf("read the dashboard: %w", err)
	}
	var walk func([]panelJSON)
	walk = func(ps []panelJSON) {
		for _, p := range ps {
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) != "" {
					panels = append(panels, Query{Where: "panel " + p.Title, Expr: t.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := variableQuery(v.Query)
		if err != nil {
			return nil, nil, fmt.Errorf("variable %s: %w", v.Name, err)
		}
		variables = append(variables, Query{Where: "variable " + v.Name, Expr: q})
	}
	return panels, variables, nil
}

// variableQuery is a query variable's query: a string, or an object with
// one (Grafana's newer form).
func variableQuery(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("query is neither a string nor an object with one: %s", raw)
	}
	return obj.Query, nil
}

// labelValues is Grafana's label_values(metric, label) or
// label_values(label); query_result(expr) holds a query.
var (
	labelValues = regexp.MustCompile(`^\s*label_values\(\s*(?:(.+?)\s*,\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)
	queryResult = regexp.MustCompile(`^\s*query_result\((.*)\)\s*$`)
)

// Check reports every metric and label that the dashboard's queries name
// and exported does not hold, one line each; none when it is consistent.
func Check(dashboard []byte, exported Exported) ([]string, error) {
	panels, variables, err := Queries(dashboard)
	if err != nil {
		return nil, err
	}
	if len(panels) == 0 {
		return nil, fmt.Errorf("the dashboard has no panel queries")
	}
	var problems []string
	for _, q := range panels {
		problems = append(problems, checkExpr(q, q.Expr, nil, exported)...)
	}
	for _, q := range variables {
		if m := queryResult.FindStringSubmatch(q.Expr); m != nil {
			problems = append(problems, checkExpr(q, m[1], nil, exported)...)
			continue
		}
		m := labelValues.FindStringSubmatch(q.Expr)
		if m == nil {
			problems = append(problems, fmt.Sprintf("%s: query %q is not label_values(...) or query_result(...)", q.Where, q.Expr))
			continue
		}
		if m[1] == "" { // label_values(label): any series may carry it
			if !anyHas(exported, m[2]) {
				problems = append(problems, fmt.Sprintf("%s: no exported metric has label %q", q.Where, m[2]))
			}
			continue
		}
		problems = append(problems, checkExpr(q, m[1], []string{m[2]}, exported)...)
	}
	return problems, nil
}

// checkExpr checks one PromQL expression; extra are labels it must offer
// besides those it names.
func checkExpr(q Query, expr string, extra []string, exported Exported) []string {
	refs, err := ParseQuery(expr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", q.Where, err)}
	}
	if len(refs.Selectors) == 0 {
		return []string{fmt.Sprintf("%s: query %q names no metric", q.Where, expr)}
	}
	var problems []string
	offered := map[string]bool{}
	for _, s := range refs.Selectors {
		labels, ok := exported[s.Metric]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: metric %s is not exported (query %q)", q.Where, s.Metric, expr))
			continue
		}
		for l := range labels {
			offered[l] = true
		}
		for _, l := range s.Labels {
			if !labels[l] {
				problems = append(problems, fmt.Sprintf("%s: metric %s has no label %q (query %q)", q.Where, s.Metric, l, expr))
			}
		}
	}
	for _, l := range slices.Concat(refs.Grouping, extra) {
		if !offered[l] {
			problems = append(problems, fmt.Sprintf("%s: no metric of the query has label %q (query %q)", q.Where, l, expr))
		}
	}
	return problems
}

func anyHas(exported Exported, label string) bool {
	for _, labels := range exported {
		if labels[label] {
			return true
		}
	}
	return false
}
