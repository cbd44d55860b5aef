package indexer

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/dataco/clickstream/internal/schema"
)

// ownFields are the fields of a document that are not the row's.
var ownFields = []string{"job", "generation", "indexed_at"}

// The mapping has exactly the fields of schema.Columns, with their types,
// and the indexer's own.
func TestMappingFollowsSchema(t *testing.T) {
	props := mapping()["properties"].(map[string]any)
	var want []string
	for _, c := range schema.Columns {
		want = append(want, c.Name)
		p, ok := props[c.Name].(map[string]any)
		if !ok {
			t.Errorf("column %s: not in the mapping", c.Name)
			continue
		}
		if p["type"] != c.ESType {
			t.Errorf("column %s: type %v, want %s", c.Name, p["type"], c.ESType)
		}
		sub, hasSub := p["fields"].(map[string]any)
		wantLen := 1 // type
		if c.ESText {
			wantLen = 2 // type, fields
		}
		if c.ESText != hasSub || len(p) != wantLen {
			t.Errorf("column %s: mapping %v, ESText %v", c.Name, p, c.ESText)
		}
		if hasSub && (len(sub) != 1 || sub["text"].(map[string]any)["type"] != "text") {
			t.Errorf("column %s: sub-fields %v, want text", c.Name, sub)
		}
	}
	want = append(want, ownFields...)
	if got := slices.Sorted(maps.Keys(props)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("mapping fields %v, want %v", got, want)
	}
}

// A document has the mapping's fields: the row's, in the order of
// schema.Columns, then the indexer's; a dead letter of a row has the row's.
func TestDocumentFollowsSchema(t *testing.T) {
	rows := makeRows(winA, 2)
	ix := &Indexer{metrics: mustMetrics(t)}
	docs, rej, err := (&Writer{ix: ix, index: "x"}).encode(rows, "j", "g", winA.From)
	if err != nil || len(docs) != 2 || len(rej) != 0 {
		t.Fatalf("encode: %d documents, %d rejected, %v", len(docs), len(rej), err)
	}
	want := append(schema.Header(), ownFields...)
	for _, d := range docs {
		if got := objectKeys(t, d.body); !slices.Equal(got, want) {
			t.Errorf("document fields %v, want %v", got, want)
		}
	}
	var fields map[string]any
	if err := json.Unmarshal(rowForDeadLetter(&rows[1]), &fields); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(fields)); !slices.Equal(got, slices.Sorted(slices.Values(schema.Header()))) {
		t.Errorf("dead letter fields %v, want %v", got, schema.Header())
	}
}

// objectKeys returns the keys of a JSON object, in order.
func objectKeys(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not an object: %v", data, err)
	}
	var keys []string
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key.(string))
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
