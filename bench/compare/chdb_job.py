"""chDB (ClickHouse in process): the aggregate in SQL over the events table,
read with the icebergLocal table function when it can read the table, else
(BENCH_CHDB_READ=parquet, or when icebergLocal fails) over the current
snapshot's data files, listed by pyiceberg, with the file() table function."""
import os
import sys

import chdb

from common import data_files, load_spec, report, sql_job, write_rows

LEAD = "leadInFrame(toNullable(t)) OVER (PARTITION BY user_id ORDER BY t, url, country ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)"


def query(sql):
    return chdb.query(sql, "JSONCompact")


def rows_of(res):
    import json
    return [tuple(r) for r in json.loads(res.bytes())["data"]]


def job_sql(scan, spec):
    # ClickHouse wants the whole frame in the window expression, not in sql_job's `lead`.
    sql = sql_job(scan, "toUnixTimestamp64Milli(ts)", spec, lead="LEAD_PLACEHOLDER")
    return sql.replace("LEAD_PLACEHOLDER OVER (PARTITION BY user_id ORDER BY t, url, country)", LEAD) \
        .replace("count(DISTINCT user_id)", "uniqExact(user_id)")


def scans(spec):
    if os.environ.get("BENCH_CHDB_READ", "iceberg") == "iceberg":
        yield "icebergLocal", f"icebergLocal('{spec['table']}')"
    files = data_files(spec)
    yield "parquet", "file('{" + ",".join(files) + "}', Parquet)"


def main():
    spec, mode = load_spec()
    # chDB reads local files only under its user_files_path, the working
    # directory: run from / so that any absolute path qualifies.
    os.chdir("/")
    errors = []
    for how, scan in scans(spec):
        try:
            if mode == "floor":
                res = query(f"SELECT count(), min(user_id), min(ts), min(url), min(country) FROM {scan}")
                report(events=rows_of(res)[0][0], read=how)
                return
            rows = rows_of(query(job_sql(scan, spec)))
        except Exception as e:  # icebergLocal may not read every table: fall back to the files
            errors.append(f"{how}: {e}")
            print(f"chdb: {how} failed: {e}", file=sys.stderr)
            continue
        write_rows(spec["out"], rows)
        report(rows=len(rows), read=how)
        return
    raise SystemExit("chdb: " + "; ".join(errors))


if __name__ == "__main__":
    main()
