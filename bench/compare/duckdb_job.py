"""DuckDB: the aggregate in SQL over iceberg_scan of the events table's
metadata file; `floor` reads and decodes the same four columns with no
aggregation beyond a min() per column."""
import os

import duckdb
import duckdb_extension_avro
import duckdb_extension_iceberg

from common import load_spec, report, sql_job, write_rows


def extension(module, name):
    for root, _, files in os.walk(os.path.dirname(module.__file__)):
        if name + ".duckdb_extension" in files:
            return os.path.join(root, name + ".duckdb_extension")
    raise SystemExit(f"no {name}.duckdb_extension in {module.__name__}")


def connect():
    # DuckDB cannot download extensions here: they come from PyPI.
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for name, module in (("avro", duckdb_extension_avro), ("iceberg", duckdb_extension_iceberg)):
        con.execute(f"LOAD '{extension(module, name)}'")
    return con


def main():
    spec, mode = load_spec()
    con = connect()
    scan = f"iceberg_scan('{spec['metadata']}')"
    if mode == "floor":
        n = con.execute(f"SELECT count(*), min(user_id), min(ts), min(url), min(country) FROM {scan}").fetchone()[0]
        report(events=n)
        return
    rows = con.execute(sql_job(scan, "epoch_ms(ts)", spec)).fetchall()
    write_rows(spec["out"], rows)
    report(rows=len(rows))


if __name__ == "__main__":
    main()
