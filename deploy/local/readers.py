"""Reads clickstream's Iceberg tables the way outside users do: pyiceberg
through the SQL catalog, DuckDB's iceberg extension from a table's metadata
file. Two modes:

  readers.py show CATALOG_URI
      a few lines about the events and aggregates tables (make demo)
  readers.py check CATALOG_URI NAMESPACE.TABLE COLUMN...
      what each reader saw of a table, as JSON (the tests): the row count, the
      first column's distinct values, the second's range (epoch ms, for a
      timestamp) and type, and a checksum over every row of the columns

CATALOG_URI is clickstream's: sqlite:///abs/path.db, or
postgres://user@host:port/db?… with the password in the file named by
$CLICKSTREAM_CATALOG_PASSWORD_FILE (or $PGPASSWORD). An s3:// lake is reached
with $CLICKSTREAM_S3_ENDPOINT and the standard AWS variables.
"""
import json
import os
import sys
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import duckdb
import duckdb_extension_avro
import duckdb_extension_httpfs
import duckdb_extension_iceberg
from pyiceberg.catalog.sql import SqlCatalog

# libpq's own connection parameters; any other query parameter of a
# postgres:// URI (search_path) is a server setting.
LIBPQ = {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options"}


def sqlalchemy_uri(uri):
    """clickstream's catalog URI as SQLAlchemy's."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:////" + uri.removeprefix("sqlite:///")
    if uri.startswith(("postgres://", "postgresql://")):
        u = urlsplit(uri)
        password = os.environ.get("PGPASSWORD", "")
        if os.environ.get("CLICKSTREAM_CATALOG_PASSWORD_FILE"):
            with open(os.environ["CLICKSTREAM_CATALOG_PASSWORD_FILE"]) as f:
                password = f.read().rstrip("\r\n")
        query, settings = [], []
        for k, v in parse_qsl(u.query):
            (query.append((k, v)) if k in LIBPQ else settings.append(f"-c {k}={v}"))
        if settings:
            query.append(("options", " ".join(settings)))
        auth = quote(u.username or "", safe="") + (":" + quote(password, safe="") if password else "")
        return f"postgresql+psycopg://{auth}@{u.hostname}:{u.port or 5432}{u.path}?{urlencode(query)}"
    return uri


def s3_props():
    endpoint = os.environ.get("CLICKSTREAM_S3_ENDPOINT", "")
    if not endpoint:
        return {}
    return {"s3.endpoint": endpoint, "s3.region": os.environ.get("AWS_REGION", "us-east-1"),
            "s3.access-key-id": os.environ.get("AWS_ACCESS_KEY_ID", ""),
            "s3.secret-access-key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
            "s3.force-virtual-addressing": "false"}


def open_catalog(uri):
    return SqlCatalog("clickstream", uri=sqlalchemy_uri(uri), **s3_props())


def extension(module, name):
    for root, _, files in os.walk(os.path.dirname(module.__file__)):
        if name + ".duckdb_extension" in files:
            return os.path.join(root, name + ".duckdb_extension")
    raise SystemExit(f"no {name}.duckdb_extension in {module.__name__}")


def duckdb_connection():
    """DuckDB with the iceberg extension (from PyPI: DuckDB cannot download
    extensions here), and the S3 endpoint of the environment."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for name, module in (("avro", duckdb_extension_avro), ("httpfs", duckdb_extension_httpfs),
                         ("iceberg", duckdb_extension_iceberg)):
        con.execute(f"LOAD '{extension(module, name)}'")
    s3 = s3_props()
    if s3:
        endpoint = s3["s3.endpoint"]
        con.execute("CREATE SECRET (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL ?)",
                    [s3["s3.access-key-id"], s3["s3.secret-access-key"], s3["s3.region"],
                     endpoint.split("://", 1)[-1], endpoint.startswith("https://")])
    return con


def scan(table):
    return f"iceberg_scan('{table.metadata_location.removeprefix('file://')}')"


def show(uri):
    catalog = open_catalog(uri)
    events = catalog.load_table("clickstream.events")
    n = events.scan(selected_fields=("user_id",)).to_arrow().num_rows
    spec = ", ".join(f"{f.transform}({events.schema().find_column_name(f.source_id)})" for f in events.spec().fields)
    print(f"  pyiceberg: clickstream.events holds {n} events in {len(events.inspect.files())} files, partitioned by {spec}")
    con = duckdb_connection()
    aggregates = catalog.load_table("clickstream.aggregates")
    print("  DuckDB: SELECT window_start, count(*), sum(clicks) FROM clickstream.aggregates GROUP BY 1:")
    for start, rows, clicks in con.execute(
            f"SELECT window_start, count(*), sum(clicks) FROM {scan(aggregates)} GROUP BY 1 ORDER BY 1").fetchall():
        print(f"    {start}  {rows:6d} rows  {clicks:8d} clicks")


def check(uri, ident, cols):
    first, ts = cols[0], cols[1]
    table = open_catalog(uri).load_table(ident)
    out = {"metadata": table.metadata_location}
    arrow = table.scan(selected_fields=tuple(cols)).to_arrow()
    con = duckdb_connection()
    summary = f"""SELECT count(*), count(DISTINCT {first}), epoch_ms(min({ts})), epoch_ms(max({ts})),
        coalesce(sum(hash({', '.join(cols)}) % 1000003), 0) FROM {{}}"""
    con.register("pyiceberg_rows", arrow)
    rows, distinct, lo, hi, checksum = con.execute(summary.format("pyiceberg_rows")).fetchone()
    out["pyiceberg"] = {"rows": rows, "distinct": distinct, "min": lo, "max": hi, "checksum": int(checksum),
                        "type": str(arrow.schema.field(ts).type)}
    rows, distinct, lo, hi, checksum = con.execute(summary.format(scan(table))).fetchone()
    typ = con.execute(f"SELECT typeof({ts}) FROM {scan(table)} LIMIT 1").fetchone()
    out["duckdb"] = {"rows": rows, "distinct": distinct, "min": lo, "max": hi, "checksum": int(checksum),
                     "type": typ[0] if typ else None}
    print(json.dumps(out))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "show":
        show(sys.argv[2])
    elif len(sys.argv) >= 6 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
