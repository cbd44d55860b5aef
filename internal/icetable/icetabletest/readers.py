"""Reads a clickstream Iceberg table the way outside users do, and prints what
each reader saw as JSON: pyiceberg through the SQL catalog, and DuckDB's
iceberg extension from the table's metadata file.

usage: readers.py CATALOG_URI NAMESPACE.TABLE COLUMN...

The first column is the table's user column and the second its timestamp;
both readers report the row count, the distinct users, the time range (epoch
ms), the timestamp's type and a per-row checksum over the given columns.
"""
import json
import os
import sys

import duckdb
import duckdb_extension_avro
import duckdb_extension_iceberg
from pyiceberg.catalog.sql import SqlCatalog


def extension(module, name):
    base = os.path.dirname(module.__file__)
    for root, _, files in os.walk(base):
        if name + ".duckdb_extension" in files:
            return os.path.join(root, name + ".duckdb_extension")
    raise SystemExit(f"no {name}.duckdb_extension under {base}")


def main():
    uri, ident, cols = sys.argv[1], sys.argv[2], sys.argv[3:]
    user, ts = cols[0], cols[1]
    # clickstream's sqlite:///abs/path is SQLAlchemy's sqlite:////abs/path.
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:////" + uri.removeprefix("sqlite:///")
    catalog = SqlCatalog("clickstream", uri=uri)
    table = catalog.load_table(ident)
    out = {"metadata": table.metadata_location}

    arrow = table.scan(selected_fields=tuple(cols)).to_arrow()
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute(f"LOAD '{extension(duckdb_extension_avro, 'avro')}'")
    con.execute(f"LOAD '{extension(duckdb_extension_iceberg, 'iceberg')}'")
    summary = f"""SELECT count(*), count(DISTINCT {user}), epoch_ms(min({ts})), epoch_ms(max({ts})),
        coalesce(sum(hash({', '.join(cols)}) % 1000003), 0) FROM {{}}"""

    con.register("pyiceberg_rows", arrow)
    rows, users, lo, hi, check = con.execute(summary.format("pyiceberg_rows")).fetchone()
    out["pyiceberg"] = {"rows": rows, "users": users, "min_ts": lo, "max_ts": hi, "checksum": int(check),
                        "ts_type": str(arrow.schema.field(ts).type)}

    location = table.metadata_location.removeprefix("file://")
    scan = f"iceberg_scan('{location}')"
    rows, users, lo, hi, check = con.execute(summary.format(scan)).fetchone()
    ts_type = con.execute(f"SELECT typeof({ts}) FROM {scan} LIMIT 1").fetchone()
    out["duckdb"] = {"rows": rows, "users": users, "min_ts": lo, "max_ts": hi, "checksum": int(check),
                     "ts_type": ts_type[0] if ts_type else None}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
