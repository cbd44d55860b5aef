"""Polars: the aggregate with lazy frames over scan_iceberg of the events
table's metadata file (BENCH_POLARS_READ=parquet: scan_parquet of the data
files pyiceberg lists); `floor` reads and decodes the same four columns."""
import os

import polars as pl

from common import data_files, load_spec, report, write_rows

COLUMNS = ["user_id", "ts", "url", "country"]


def scan(spec):
    if os.environ.get("BENCH_POLARS_READ", "iceberg") == "parquet":
        return pl.scan_parquet(data_files(spec)).select(COLUMNS), "parquet"
    return pl.scan_iceberg(spec["metadata"]).select(COLUMNS), "scan_iceberg"


def main():
    spec, mode = load_spec()
    lf, how = scan(spec)
    if mode == "floor":
        df = lf.select(pl.len(), pl.col("user_id").min(), pl.col("ts").min(), pl.col("url").min(),
                       pl.col("country").min()).collect()
        report(events=df.item(0, 0), read=how)
        return
    lo, hi, timeout = spec["from_ms"], spec["to_ms"], spec["timeout_ms"]
    gap = pl.col("gap")
    timed = gap.is_not_null() & (gap < timeout)
    out = (
        lf.with_columns(pl.col("ts").dt.epoch("ms").alias("t"))
        .filter((pl.col("t") >= lo) & (pl.col("t") < hi + timeout))
        .sort(["user_id", "t", "url", "country"])
        .with_columns((pl.col("t").shift(-1).over("user_id") - pl.col("t")).alias("gap"))
        .filter(pl.col("t") < hi)
        .group_by(["url", "country"])
        .agg(pl.len().alias("clicks"),
             pl.col("user_id").n_unique().alias("unique_users"),
             (gap.filter(timed).sum() / 1000.0).alias("total_time_spent_s"),
             timed.sum().alias("time_spent_samples"))
        .collect()
    )
    write_rows(spec["out"], out.select(["url", "country", "clicks", "unique_users", "total_time_spent_s",
                                        "time_spent_samples"]).iter_rows())
    report(rows=out.height, read=how)


if __name__ == "__main__":
    main()
