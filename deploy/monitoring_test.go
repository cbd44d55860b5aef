// Package deploy holds no code: its tests check the monitoring files of
// this directory against the code. A metric renamed or dropped in the code
// fails them until the alerts (prometheus/alerts.yaml), the dashboard
// (grafana/clickstream.json), the worker autoscaler (k8s/keda) and the
// metrics list of README.md follow.
package deploy

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	alertsFile    = "prometheus/alerts.yaml"
	dashboardFile = "grafana/clickstream.json"
	scalerFile    = "k8s/keda/scaledobject.yaml"
	recordedTasks = "clickstream:coordinator_tasks_active:max"
)

// metric is a metric the code registers.
type metric struct {
	kind   string // counter, gauge, histogram, summary
	labels []string
	where  string
}

// constructors maps the client library's constructors to the kind of
// metric they make.
var constructors = map[string]string{
	"NewCounter": "counter", "NewCounterVec": "counter",
	"NewGauge": "gauge", "NewGaugeVec": "gauge",
	"NewHistogram": "histogram", "NewHistogramVec": "histogram",
	"NewSummary": "summary", "NewSummaryVec": "summary",
}

// registered finds every prometheus.New…(prometheus.…Opts{Name: "…"}, …)
// in the module's non-test Go files, with the label names of the vectors.
func registered(t *testing.T) map[string]metric {
	t.Helper()
	out := map[string]metric{}
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != ".." && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
				return true
			}
			kind, ok := constructors[sel.Sel.Name]
			if !ok {
				return true
			}
			opts, ok := call.Args[0].(*ast.CompositeLit)
			if !ok {
				return true
			}
			m := metric{kind: kind, where: fset.Position(call.Pos()).String()}
			name := ""
			for _, e := range opts.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok {
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
						name = stringLit(kv.Value)
					}
				}
			}
			if len(call.Args) > 1 {
				if lbls, ok := call.Args[1].(*ast.CompositeLit); ok {
					for _, e := range lbls.Elts {
						m.labels = append(m.labels, stringLit(e))
					}
				}
			}
			if name == "" {
				t.Errorf("%s: a metric whose name is not a string literal: the checks below cannot see it", m.where)
				return true
			}
			if prev, ok := out[name]; ok {
				t.Errorf("%s: metric %s is also defined at %s", m.where, name, prev.where)
			}
			out[name] = m
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The scan must find the metrics of every component.
	for _, c := range []string{"ingest", "coordinator", "worker", "indexer"} {
		n := 0
		for name := range out {
			if strings.HasPrefix(name, "clickstream_"+c+"_") {
				n++
			}
		}
		if n < 3 {
			t.Fatalf("found %d metrics of %s in the code: the scan is broken", n, c)
		}
	}
	return out
}

func stringLit(e ast.Expr) string {
	if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
		if s, err := strconv.Unquote(lit.Value); err == nil {
			return s
		}
	}
	return ""
}

// targetLabels are labels the scrape adds to every series (the pods'
// annotations, deploy/k8s/monitoring), besides the code's own.
var targetLabels = []string{"instance", "job", "component", "namespace", "pod", "service", "container", "endpoint"}

var (
	metricName = regexp.MustCompile(`clickstream_[a-z0-9_]*[a-z0-9]`)
	selector   = regexp.MustCompile(`(clickstream_[a-z0-9_]*[a-z0-9])\{([^}]*)\}`)
	matcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"`)
	recorded   = regexp.MustCompile(`clickstream:[a-z0-9_:]*[a-z0-9_]`)
)

// resolve returns the metric a series name belongs to: itself, or the
// histogram or summary whose _bucket, _sum or _count series it is.
func resolve(known map[string]metric, name string) (string, metric, bool) {
	if m, ok := known[name]; ok {
		return name, m, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if m, ok := known[base]; ok && (m.kind == "histogram" || (m.kind == "summary" && suffix != "_bucket")) {
			return base, m, true
		}
	}
	return "", metric{}, false
}

// checkText reports the clickstream_* names in text that the code does not
// register, and label matchers on labels their metric does not have. A
// name followed by '*' is a pattern (clickstream_ingest_*), not a name.
func checkText(t *testing.T, known map[string]metric, where, text string) {
	t.Helper()
	for _, loc := range metricName.FindAllStringIndex(text, -1) {
		if loc[1] < len(text) && (text[loc[1]] == '*' || strings.HasPrefix(text[loc[1]:], "_*")) {
			continue
		}
		name := text[loc[0]:loc[1]]
		if _, _, ok := resolve(known, name); !ok {
			t.Errorf("%s: %s is not a metric of the code", where, name)
		}
	}
	for _, sel := range selector.FindAllStringSubmatch(text, -1) {
		base, m, ok := resolve(known, sel[1])
		if !ok {
			continue
		}
		allowed := slices.Concat(m.labels, targetLabels)
		if base != sel[1] && strings.HasSuffix(sel[1], "_bucket") {
			allowed = append(allowed, "le")
		}
		for _, lm := range matcher.FindAllStringSubmatch(sel[2], -1) {
			if !slices.Contains(allowed, lm[1]) {
				t.Errorf("%s: %s has no label %q (its labels: %v)", where, sel[1], lm[1], m.labels)
			}
		}
	}
}

// strings collects every string of a decoded JSON or YAML value, with its
// path.
func collectStrings(v any, path string, out map[string]string) {
	switch v := v.(type) {
	case string:
		out[path] = v
	case map[string]any:
		for k, e := range v {
			collectStrings(e, path+"."+k, out)
		}
	case []any:
		for i, e := range v {
			collectStrings(e, fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}

func readYAML(t *testing.T, file string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}

func readJSON(t *testing.T, file string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s is not valid JSON: %v", file, err)
	}
	return v
}

// rules returns the rules of alerts.yaml.
func rules(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, g := range readYAML(t, alertsFile)["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			out = append(out, r.(map[string]any))
		}
	}
	return out
}

// panelQueries returns the dashboard's queries by panel title.
func panelQueries(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, p := range readJSON(t, dashboardFile)["panels"].([]any) {
		p := p.(map[string]any)
		targets, _ := p["targets"].([]any)
		for _, tg := range targets {
			out[p["title"].(string)] = append(out[p["title"].(string)], tg.(map[string]any)["expr"].(string))
		}
	}
	return out
}

// scalerQuery returns the query of the ScaledObject's prometheus trigger.
func scalerQuery(t *testing.T) string {
	t.Helper()
	so := readYAML(t, scalerFile)
	for _, tr := range so["spec"].(map[string]any)["triggers"].([]any) {
		tr := tr.(map[string]any)
		if tr["type"] == "prometheus" {
			return tr["metadata"].(map[string]any)["query"].(string)
		}
	}
	t.Fatalf("%s: no prometheus trigger", scalerFile)
	return ""
}

// TestMonitoringFilesNameRegisteredMetrics: every clickstream_* series the
// alerts, the dashboard and the autoscaler query (and their texts mention)
// is registered by the code, with the labels they select on.
func TestMonitoringFilesNameRegisteredMetrics(t *testing.T) {
	known := registered(t)
	for _, f := range []string{alertsFile, scalerFile} {
		all := map[string]string{}
		collectStrings(readYAML(t, f), "", all)
		for path, s := range all {
			checkText(t, known, f+":"+path, s)
		}
	}
	all := map[string]string{}
	collectStrings(readJSON(t, dashboardFile), "", all)
	for path, s := range all {
		checkText(t, known, dashboardFile+":"+path, s)
	}
}

// TestRecordedSeriesExist: the clickstream:* series the dashboard and the
// autoscaler use are recording rules of alerts.yaml, and the autoscaler's
// query is the recorded expression itself (so that it works without the
// rules loaded, and promtool's tests of the rule test it).
func TestRecordedSeriesExist(t *testing.T) {
	exprs := map[string]string{}
	for _, r := range rules(t) {
		if name, ok := r["record"].(string); ok {
			exprs[name] = r["expr"].(string)
		}
	}
	texts := []string{scalerQuery(t)}
	for _, qs := range panelQueries(t) {
		texts = append(texts, qs...)
	}
	for _, s := range texts {
		for _, name := range recorded.FindAllString(s, -1) {
			if _, ok := exprs[name]; !ok {
				t.Errorf("%q uses %s, which %s does not record", s, name, alertsFile)
			}
		}
	}
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	if got, want := norm(scalerQuery(t)), norm(exprs[recordedTasks]); got != want {
		t.Errorf("%s queries\n\t%s\nbut %s records %s as\n\t%s", scalerFile, got, alertsFile, recordedTasks, want)
	}
}

// TestAlertRules: every alert has a severity, a summary, a description and
// a runbook section that exists.
func TestAlertRules(t *testing.T) {
	runbook, err := os.ReadFile("prometheus/README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(runbook), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			anchors[strings.ToLower(strings.TrimSpace(h))] = true
		}
	}
	n := 0
	for _, r := range rules(t) {
		name, ok := r["alert"].(string)
		if !ok {
			continue
		}
		n++
		labels, _ := r["labels"].(map[string]any)
		if s := labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %v, want warning or critical", name, s)
		}
		ann, _ := r["annotations"].(map[string]any)
		for _, k := range []string{"summary", "description", "runbook"} {
			if s, _ := ann[k].(string); strings.TrimSpace(s) == "" {
				t.Errorf("%s: no %s", name, k)
			}
		}
		if rb, _ := ann["runbook"].(string); rb != "deploy/prometheus/README.md#"+strings.ToLower(name) || !anchors[strings.ToLower(name)] {
			t.Errorf("%s: runbook %q: want deploy/prometheus/README.md#%s and a section \"### %s\" there", name, rb, strings.ToLower(name), name)
		}
	}
	if n < 10 {
		t.Errorf("%d alerts in %s", n, alertsFile)
	}
}

// TestDashboard: the dashboard has the four rows in order, and every panel
// queries something.
func TestDashboard(t *testing.T) {
	d := readJSON(t, dashboardFile)
	var rows []string
	ids := map[float64]bool{}
	for _, p := range d["panels"].([]any) {
		p := p.(map[string]any)
		id := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel id %v twice", id)
		}
		ids[id] = true
		if p["type"] == "row" {
			rows = append(rows, p["title"].(string))
			continue
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no query", p["title"])
		}
		refs := map[string]bool{}
		for _, tg := range targets {
			tg := tg.(map[string]any)
			if strings.TrimSpace(tg["expr"].(string)) == "" || refs[tg["refId"].(string)] {
				t.Errorf("panel %q: empty query or refId %v twice", p["title"], tg["refId"])
			}
			refs[tg["refId"].(string)] = true
		}
	}
	if want := []string{"Ingest", "Cluster", "Workers", "Indexing"}; !slices.Equal(rows, want) {
		t.Errorf("rows %v, want %v", rows, want)
	}
}

// TestQueriesParse: promtool parses every query of the dashboard and the
// autoscaler (each as a recording rule of a scratch rule file).
func TestQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if testing.Short() {
			t.Skip("promtool not installed (Debian's prometheus package; make rules installs it)")
		}
		t.Fatal("promtool not installed: run `make rules` (or deploy/local/stack.sh tools), or use -short")
	}
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")
	var queries []string
	for _, qs := range panelQueries(t) {
		for _, q := range qs {
			queries = append(queries, grafana.Replace(q))
		}
	}
	sort.Strings(queries)
	queries = append(queries, scalerQuery(t))
	var b strings.Builder
	b.WriteString("groups:\n  - name: queries\n    rules:\n")
	for i, q := range queries {
		fmt.Fprintf(&b, "      - record: query:%d\n        expr: %s\n", i, strconv.Quote(q))
	}
	f := filepath.Join(t.TempDir(), "queries.yaml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s\nqueries:\n%s", err, out, b.String())
	}
}

// TestREADMEListsMetrics: README.md names every metric the code registers,
// and no other.
func TestREADMEListsMetrics(t *testing.T) {
	known := registered(t)
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	checkText(t, known, "README.md", readme)
	for name := range known {
		if !regexp.MustCompile(`\b` + name + `\b`).MatchString(readme) {
			t.Errorf("README.md does not list %s (%s)", name, known[name].where)
		}
	}
}
