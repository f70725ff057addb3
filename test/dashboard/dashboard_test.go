package dashboard

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseQueryFindsMetricsMatchersAndGroupingLabels(t *testing.T) {
	for _, c := range []struct {
		query string
		want  Refs
	}{
		{
			query: `sum by (namespace, stream) (rate(eventsourcing_ingest_requests_total{namespace=~"$namespace", code!~"2.."}[$__rate_interval]))`,
			want: Refs{
				Selectors: []Selector{{Metric: "eventsourcing_ingest_requests_total", Labels: []string{"namespace", "code"}}},
				Grouping:  []string{"namespace", "stream"},
			},
		},
		{
			query: `histogram_quantile(0.99, sum(rate(x_seconds_bucket{handler=~"(reactor:)?${namespace}/.*"}[5m])) by (le, handler))`,
			want: Refs{
				Selectors: []Selector{{Metric: "x_seconds_bucket", Labels: []string{"handler"}}},
				Grouping:  []string{"le", "handler"},
			},
		},
		{
			query: `a / on(job) group_left(pod) b offset 1h > bool 0.5e-3 and c`,
			want: Refs{
				Selectors: []Selector{{Metric: "a"}, {Metric: "b"}, {Metric: "c"}},
				Grouping:  []string{"job", "pod"},
			},
		},
		{
			query: "max_over_time(depth[10m:1m]) # a comment naming not_a_metric\n",
			want:  Refs{Selectors: []Selector{{Metric: "depth"}}},
		},
		{
			query: `m{a="say \"}\" here", b=~` + "`raw\\`" + `}`,
			want:  Refs{Selectors: []Selector{{Metric: "m", Labels: []string{"a", "b"}}}},
		},
		{
			query: `sum without (le) (m{a="x,y}", b='q"uote'})`,
			want:  Refs{Selectors: []Selector{{Metric: "m", Labels: []string{"a", "b"}}}, Grouping: []string{"le"}},
		},
	} {
		got, err := ParseQuery(c.query)
		if err != nil {
			t.Errorf("ParseQuery(%q): %v", c.query, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseQuery(%q):\n got %+v\nwant %+v", c.query, got, c.want)
		}
	}
}

func TestParseQueryRefusesWhatItCannotRead(t *testing.T) {
	for _, q := range []string{
		`rate(m{a="x"[5m])`,       // unterminated matchers
		`m{a=x}`,                  // unquoted value
		`m{a~"x"}`,                // no such operator
		`rate(m[5m]`,              // unbalanced parentheses
		`m{a="x}`,                 // unterminated string
		`{__name__="m"}`,          // no metric name to check
		`sum by (a, "b") (m)`,     // a label list with a string
		`sum(m)) + (n`,            // closes before it opens
		`m]`,                      // stray bracket
		`sum by (a (m)`,           // unterminated label list
		`m{a="x", b="y"`,          // no closing brace
		`histogram_quantile(0.9`,  // unbalanced
		`m{a="x"} offset 5m)`,     // unbalanced
		`label_values(m, "l")) (`, // unbalanced
	} {
		if refs, err := ParseQuery(q); err == nil {
			t.Errorf("ParseQuery(%q): got %+v, want an error", q, refs)
		}
	}
}

const scrape = `# HELP eventsourcing_ingest_requests_total Ingest requests.
# TYPE eventsourcing_ingest_requests_total counter
eventsourcing_ingest_requests_total{code="202",namespace="shop",stream="orders"} 3
# HELP eventsourcing_ingest_duration_seconds Ingest time.
# TYPE eventsourcing_ingest_duration_seconds histogram
eventsourcing_ingest_duration_seconds_bucket{namespace="shop",stream="orders",le="0.1"} 3
eventsourcing_ingest_duration_seconds_bucket{namespace="shop",stream="orders",le="+Inf"} 3
eventsourcing_ingest_duration_seconds_sum{namespace="shop",stream="orders"} 0.01
eventsourcing_ingest_duration_seconds_count{namespace="shop",stream="orders"} 3
# HELP eventsourcing_outbox_depth Outbox depth.
# TYPE eventsourcing_outbox_depth gauge
eventsourcing_outbox_depth 0
`

// dashboardWith is a dashboard with one panel per query and a namespace
// variable of variable.
func dashboardWith(variable string, queries ...string) []byte {
	targets := make([]string, 0, len(queries))
	for _, q := range queries {
		targets = append(targets, fmt.Sprintf(`{"panels":[{"title":"p","targets":[{"expr":%q}]}]}`, q))
	}
	return fmt.Appendf(nil, `{"panels":[{"title":"row","panels":[]},%s],
		"templating":{"list":[{"name":"datasource","type":"datasource","query":"prometheus"},
		{"name":"namespace","type":"query","query":{"query":%q,"refId":"v"}}]}}`,
		strings.Join(targets, ","), variable)
}

func exported(t *testing.T) Exported {
	t.Helper()
	e, err := ParseScrape(strings.NewReader(scrape))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCheckPassesADashboardOfExportedMetricsAndLabels(t *testing.T) {
	d := dashboardWith(`label_values(eventsourcing_ingest_requests_total, namespace)`,
		`sum by (namespace, stream) (rate(eventsourcing_ingest_requests_total{namespace=~"$namespace", code!~"2.."}[$__rate_interval]))`,
		`histogram_quantile(0.9, sum by (le) (rate(eventsourcing_ingest_duration_seconds_bucket{namespace=~"$namespace"}[5m])))`,
		`rate(eventsourcing_ingest_duration_seconds_sum[5m]) / rate(eventsourcing_ingest_duration_seconds_count[5m])`,
		`eventsourcing_outbox_depth`,
	)
	problems, err := Check(d, exported(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Errorf("got problems %q, want none", problems)
	}
}

func TestCheckReportsEveryMisnamedMetricAndLabel(t *testing.T) {
	for _, c := range []struct {
		name, variable, query, want string
	}{
		{"a typo in a metric", `label_values(namespace)`,
			`rate(eventsourcing_ingest_request_total[5m])`, "metric eventsourcing_ingest_request_total is not exported"},
		{"a label the metric lacks", `label_values(namespace)`,
			`eventsourcing_outbox_depth{namespace="x"}`, `metric eventsourcing_outbox_depth has no label "namespace"`},
		{"a grouping label no metric has", `label_values(namespace)`,
			`sum by (handler) (rate(eventsourcing_ingest_requests_total[5m]))`, `no metric of the query has label "handler"`},
		{"buckets of a counter", `label_values(namespace)`,
			`eventsourcing_ingest_requests_total_bucket`, "metric eventsourcing_ingest_requests_total_bucket is not exported"},
		{"a variable of a missing metric", `label_values(eventsourcing_missing, namespace)`,
			`eventsourcing_outbox_depth`, "metric eventsourcing_missing is not exported"},
		{"a variable of a missing label", `label_values(eventsourcing_outbox_depth, namespace)`,
			`eventsourcing_outbox_depth`, `no metric of the query has label "namespace"`},
		{"a query the checker cannot read", `label_values(namespace)`,
			`rate(eventsourcing_outbox_depth{code="1"[5m])`, "want"},
	} {
		problems, err := Check(dashboardWith(c.variable, c.query), exported(t))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, c.want) }) {
			t.Errorf("%s: got problems %q, want one saying %q", c.name, problems, c.want)
		}
	}
}

// The shipped dashboard must at least parse, and name only metrics of
// this manager; test/e2e checks it against a running manager's scrape.
func TestTheShippedDashboardsQueriesAreReadableAndNameDocumentedMetrics(t *testing.T) {
	d, err := os.ReadFile(filepath.Join("..", "..", "config", "grafana", "eventsourcing-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "monitoring.md"))
	if err != nil {
		t.Fatal(err)
	}
	panels, variables, err := Queries(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(panels) == 0 || len(variables) == 0 {
		t.Fatalf("got %d panel queries and %d variables, want some of each", len(panels), len(variables))
	}
	for _, q := range panels {
		refs, err := ParseQuery(q.Expr)
		if err != nil {
			t.Errorf("%s: %v", q.Where, err)
			continue
		}
		for _, s := range refs.Selectors {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s.Metric, "_bucket"), "_sum"), "_count")
			if !strings.Contains(string(docs), "`"+base+"`") {
				t.Errorf("%s: metric %s is not in docs/monitoring.md's table", q.Where, base)
			}
		}
	}
}
