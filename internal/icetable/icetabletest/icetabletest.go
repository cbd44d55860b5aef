// Package icetabletest reads clickstream's Iceberg tables in tests the way
// outside users do: with pyiceberg and DuckDB, from the Python environment
// the local stack installs ($CLICKSTREAM_READERS_PYTHON).
package icetabletest

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// View is what one outside reader saw of a table, over the columns it was
// asked for: the first one's distinct values, the second one's range
// (epoch ms, for a timestamp) and type, and a checksum of every row.
type View struct {
	Rows     int64  `json:"rows"`
	Distinct int64  `json:"distinct"`
	Min      int64  `json:"min"`
	Max      int64  `json:"max"`
	Checksum int64  `json:"checksum"`
	Type     string `json:"type"`
}

// Python returns the Python of the outside readers. Under -short the test
// is skipped; otherwise a missing environment fails it.
func Python(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("outside readers of the Iceberg tables: not under -short")
	}
	py := os.Getenv("CLICKSTREAM_READERS_PYTHON")
	if py == "" {
		t.Fatal("CLICKSTREAM_READERS_PYTHON is not set: run deploy/local/stack.sh up (or tools) and source its env file")
	}
	return py
}

// Read reads the table (namespace.name) of the catalog with pyiceberg,
// through the catalog, and with DuckDB's iceberg_scan, from the metadata
// file (deploy/local/readers.py); cols name a distinct-count column, a
// timestamp column, then more. A postgres:// catalog's password comes from
// $CLICKSTREAM_CATALOG_PASSWORD_FILE.
func Read(t testing.TB, catalogURI, table string, cols ...string) (pyiceberg, duckdb View) {
	t.Helper()
	py := Python(t)
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy", "local", "readers.py")
	out, err := exec.Command(py, append([]string{script, "check", catalogURI, table}, cols...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		var stderr string
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("readers.py: %v\n%s", err, stderr)
	}
	var views struct {
		Metadata  string `json:"metadata"`
		PyIceberg View   `json:"pyiceberg"`
		DuckDB    View   `json:"duckdb"`
	}
	if err := json.Unmarshal(out, &views); err != nil {
		t.Fatalf("readers.py output %q: %v", out, err)
	}
	t.Logf("outside readers of %s: pyiceberg %+v, duckdb %+v", views.Metadata, views.PyIceberg, views.DuckDB)
	return views.PyIceberg, views.DuckDB
}
