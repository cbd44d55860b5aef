"""PySpark: the aggregate with the DataFrame API — lead() over a window
partitioned by user and ordered by (ts, url, country), groupBy with
countDistinct — reading the events table with Iceberg's Spark runtime from
its metadata file. Run by spark-submit (the harness adds the jar):

    job    one job; the harness times the whole process (cold)
    warm   in one live session a warm-up job, then spec["rounds"] jobs, each
           timed alone; prints their seconds (the last job's rows are written)
"""
import time

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from common import load_spec, report, write_rows


def job(spark, spec):
    lo, hi, timeout = spec["from_ms"], spec["to_ms"], spec["timeout_ms"]
    e = (spark.read.format("iceberg").load(spec["metadata"])
         .select("user_id", F.expr("unix_millis(ts)").alias("t"), "url", "country")
         .where((F.col("t") >= lo) & (F.col("t") < hi + timeout)))
    by_user = Window.partitionBy("user_id").orderBy("t", "url", "country")
    gap = F.lead("t").over(by_user) - F.col("t")
    timed = F.col("gap") < timeout  # null (no next event) is not a sample
    rows = (e.withColumn("gap", gap)
            .where(F.col("t") < hi)
            .groupBy("url", "country")
            .agg(F.count(F.lit(1)).alias("clicks"),
                 F.countDistinct("user_id").alias("unique_users"),
                 (F.coalesce(F.sum(F.when(timed, F.col("gap"))), F.lit(0)) / 1000.0).alias("total_time_spent_s"),
                 F.count(F.when(timed, 1)).alias("time_spent_samples"))
            .collect())
    return [tuple(r) for r in rows]


def main():
    spec, mode = load_spec()
    spark = SparkSession.builder.appName("clickstream-bench-compare").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if mode == "warm":
        job(spark, spec)  # warm-up: JVM, classes, the table's metadata
        seconds = []
        for _ in range(spec["rounds"]):
            t0 = time.perf_counter()
            rows = job(spark, spec)
            seconds.append(time.perf_counter() - t0)
        write_rows(spec["out"], rows)
        report(rows=len(rows), seconds=seconds)
    else:
        rows = job(spark, spec)
        write_rows(spec["out"], rows)
        report(rows=len(rows))
    spark.stop()


if __name__ == "__main__":
    main()
