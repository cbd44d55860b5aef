package icetabletest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dataco/clickstream/internal/icetable"
)

// The PostgreSQL catalog of the local stack (deploy/local/stack.sh up pg):
// its URI, without password, and the file of the password.
const (
	EnvCatalogURI          = "CLICKSTREAM_CATALOG_URI"
	EnvCatalogPasswordFile = "CLICKSTREAM_CATALOG_PASSWORD_FILE"
)

// Postgres returns a catalog on the local stack's PostgreSQL
// ($CLICKSTREAM_CATALOG_URI) for one test: its URI names a schema of the
// test's own (search_path), so that tests never see each other's tables,
// and the schema is dropped with everything in it when the test ends. If
// $CLICKSTREAM_CATALOG_URI is not set, the test is skipped under -short
// and fails otherwise.
func Postgres(t testing.TB) (uri string, opts icetable.CatalogOptions) {
	t.Helper()
	base := os.Getenv(EnvCatalogURI)
	if base == "" {
		if testing.Short() {
			t.Skipf("PostgreSQL catalog test skipped: $%s is not set", EnvCatalogURI)
		}
		t.Fatalf("$%s is not set: run `deploy/local/stack.sh up pg` (or `make dev-up`) and source its env file for a PostgreSQL catalog, or use go test -short to skip these tests", EnvCatalogURI)
	}
	opts.PasswordFile = os.Getenv(EnvCatalogPasswordFile)
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatalf("$%s: %v", EnvCatalogURI, err)
	}
	if opts.PasswordFile != "" {
		b, err := os.ReadFile(opts.PasswordFile)
		if err != nil {
			t.Fatalf("$%s: %v", EnvCatalogPasswordFile, err)
		}
		cfg.Password = strings.TrimRight(string(b), "\r\n")
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := "clickstream_test_" + hex.EncodeToString(rnd[:])
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	ident := pgx.Identifier{schema}.Sanitize()
	if err := exec("CREATE SCHEMA " + ident); err != nil {
		t.Fatalf("PostgreSQL catalog %s: creating schema %s: %v", icetable.DisplayCatalogURI(base), schema, err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + ident + " CASCADE"); err != nil {
			t.Errorf("cleanup: dropping schema %s: %v", schema, err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema, opts
}
