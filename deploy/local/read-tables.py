"""Reads clickstream's Iceberg tables as an outside user would, and prints a few
lines about each: pyiceberg through the SQL catalog, DuckDB from the table's
metadata file.

usage: read-tables.py CATALOG_URI   (clickstream's sqlite:///abs/path.db)
"""
import os
import sys

import duckdb
import duckdb_extension_avro
import duckdb_extension_httpfs
import duckdb_extension_iceberg
from pyiceberg.catalog.sql import SqlCatalog


def extension(module, name):
    for root, _, files in os.walk(os.path.dirname(module.__file__)):
        if name + ".duckdb_extension" in files:
            return os.path.join(root, name + ".duckdb_extension")
    raise SystemExit(f"no {name}.duckdb_extension in {module.__name__}")


def main():
    uri = sys.argv[1]
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:////" + uri.removeprefix("sqlite:///")  # SQLAlchemy's form
    # An s3:// lake: the endpoint and the credentials of the environment
    # (the local stack's versitygw), for both readers.
    endpoint = os.environ.get("CLICKSTREAM_S3_ENDPOINT", "")
    s3 = {}
    if endpoint:
        s3 = {"s3.endpoint": endpoint, "s3.region": os.environ.get("AWS_REGION", "us-east-1"),
              "s3.access-key-id": os.environ.get("AWS_ACCESS_KEY_ID", ""),
              "s3.secret-access-key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
              "s3.force-virtual-addressing": "false"}
    catalog = SqlCatalog("clickstream", uri=uri, **s3)
    events = catalog.load_table("clickstream.events")
    n = events.scan(selected_fields=("user_id",)).to_arrow().num_rows
    print(f"  pyiceberg: clickstream.events holds {n} events in {len(events.inspect.files())} files; "
          f"partitioned by {events.spec()}")

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for ext, module in (("avro", duckdb_extension_avro), ("httpfs", duckdb_extension_httpfs),
                        ("iceberg", duckdb_extension_iceberg)):
        con.execute(f"LOAD '{extension(module, ext)}'")
    if endpoint:
        host = endpoint.split("://", 1)[-1]
        con.execute("CREATE SECRET (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL ?)",
                    [s3["s3.access-key-id"], s3["s3.secret-access-key"], s3["s3.region"], host,
                     endpoint.startswith("https://")])
    aggregates = catalog.load_table("clickstream.aggregates")
    scan = f"iceberg_scan('{aggregates.metadata_location}')"
    print("  DuckDB: SELECT window_start, count(*), sum(clicks) FROM clickstream.aggregates GROUP BY 1:")
    for start, rows, clicks in con.execute(
            f"SELECT window_start, count(*), sum(clicks) FROM {scan} GROUP BY 1 ORDER BY 1").fetchall():
        print(f"    {start}  {rows:6d} rows  {clicks:8d} clicks")


if __name__ == "__main__":
    main()
