"""What the engine scripts of `make bench-compare` share: the job's parameters,
the aggregate's semantics in one place, and writing the rows.

Every engine script is run as

    python ENGINE.py SPEC.json job|floor

where SPEC.json (written by the Go harness) holds
    metadata    the events table's current metadata file (a local path)
    table       the events table's folder
    from_ms, to_ms, timeout_ms
                the window [from, to) in epoch milliseconds and the session timeout
    out         where `job` writes its rows, one JSON object a line:
                url, country, clicks, unique_users, total_time_spent_s, time_spent_samples
    rounds      (spark_job.py warm only) jobs timed in one live session

The semantics are clickstream's (internal/aggregate): per user, events ordered
by (ts, url, country); an event's time spent is the next event's ts minus its
own when that gap is < timeout, else the event is an exit with no sample;
events with from <= ts < to count; successors may lie up to to + timeout;
events before from never matter. ts is taken in milliseconds, truncated, as
clickstream's reader does.
"""
import json
import os
import sys


def load_spec():
    if len(sys.argv) < 3 or sys.argv[2] not in ("job", "floor", "warm"):
        raise SystemExit(f"usage: {sys.argv[0]} SPEC.json job|floor|warm")
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    return spec, sys.argv[2]


def sql_job(scan, ts_ms, spec, lead="lead(t)"):
    """The aggregate as standard SQL over the relation `scan` (DuckDB and
    ClickHouse differ only in the scan, the ms conversion and lead)."""
    lo, hi, limit, timeout = spec["from_ms"], spec["to_ms"], spec["to_ms"] + spec["timeout_ms"], spec["timeout_ms"]
    return f"""
WITH e AS (
  SELECT user_id, {ts_ms} AS t, url, country FROM {scan}
), w AS (
  SELECT user_id, t, url, country,
         {lead} OVER (PARTITION BY user_id ORDER BY t, url, country) - t AS gap
  FROM e WHERE t >= {lo} AND t < {limit}
)
SELECT url, country, count(*) AS clicks, count(DISTINCT user_id) AS unique_users,
       coalesce(sum(CASE WHEN gap < {timeout} THEN gap END), 0) / 1000.0 AS total_time_spent_s,
       count(CASE WHEN gap < {timeout} THEN 1 END) AS time_spent_samples
FROM w WHERE t < {hi}
GROUP BY url, country
"""


FIELDS = ("url", "country", "clicks", "unique_users", "total_time_spent_s", "time_spent_samples")


def write_rows(path, rows):
    """rows: tuples in FIELDS order."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(dict(zip(FIELDS, (r[0], r[1], int(r[2]), int(r[3]), float(r[4]), int(r[5]))))))
            f.write("\n")
    os.replace(tmp, path)


def data_files(spec):
    """The current snapshot's data files, listed by pyiceberg from the metadata file."""
    from pyiceberg.table import StaticTable
    table = StaticTable.from_metadata(spec["metadata"])
    return [t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()]


def report(**kv):
    """The last line of stdout: what the harness reads back (e.g. timings)."""
    print(json.dumps(kv), flush=True)
