package main

import (
	"context"
	"fmt"

	"github.com/apache/iceberg-go/catalog"
	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
)

// tableFlags are the flags of a command on a lake's Iceberg tables
// (publish, compact).
type tableFlags struct {
	lake, catalog, catalogPW string
	s3                       lake.S3Options
}

func (f *tableFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.lake, "lake", "", "data lake URI: s3://bucket/prefix or file:///dir")
	fs.StringVar(&f.catalog, "catalog", "", "Iceberg catalog, sqlite:///path.db or postgres://user@host:port/db?sslmode=… (default: the SQLite catalog at the root of a file:// lake)")
	fs.StringVar(&f.catalogPW, "catalog-password-file", "", "file holding the password of a postgres:// --catalog (default: $PGPASSWORD, or ~/.pgpass)")
	f.s3.AddFlags(fs)
}

// open checks the flags (usage errors) and opens the lake and its
// catalog; the caller closes the catalog with icetable.Close.
func (f *tableFlags) open(ctx context.Context) (lake.Store, catalog.Catalog, error) {
	if f.lake == "" {
		return nil, nil, usageErrorf("--lake is required (s3://bucket/prefix or file:///dir)")
	}
	if err := requireStore("lake", f.lake); err != nil {
		return nil, nil, err
	}
	uri := f.catalog
	if uri == "" {
		var err error
		if uri, err = icetable.DefaultCatalogURI(f.lake); err != nil {
			return nil, nil, usageErrorf("%v", err)
		}
	}
	store, err := lake.Open(ctx, f.lake, f.s3)
	if err != nil {
		return nil, nil, fmt.Errorf("open lake: %w", err)
	}
	cat, err := icetable.OpenCatalog(ctx, uri, icetable.CatalogOptions{Props: icetable.S3Props(f.s3), PasswordFile: f.catalogPW})
	if err != nil {
		return nil, nil, err
	}
	return store, cat, nil
}
