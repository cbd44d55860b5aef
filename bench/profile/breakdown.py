#!/usr/bin/env python3
"""Where a `clickstream run` spends its wall time and CPU (REPORT §6, "Where
the time and memory go").

    breakdown.py phases -- clickstream run ... --log-level info
        runs the command, then prints its wall time, CPU, peak RSS and the
        phases read from its log: process start to "coordinator started",
        submit and plan, the tasks (plan to the last "task done"), merge and
        commit (to "job finished"), and the rest (the Iceberg publication the
        command waits for, then closing the embedded cluster) to exit.

    breakdown.py cpu BINARY PROFILE...
        assigns every sample of the CPU profiles (`run --cpuprofile`) to the
        first category below one of whose patterns matches a frame of its
        stack, and prints CPU seconds per profile and the share of each.

Python 3 standard library and `go tool pprof` only.
"""
import collections
import datetime
import re
import resource
import subprocess
import sys
import time

CATEGORIES = [
    ("GC (background mark workers)", r"runtime\.gcBgMarkWorker"),
    ("coordinator: fetch, decode, merge partials",
     r"coordinator\.\(\*Coordinator\)\.(merge|fetchPartials|mergePartials)|\(\*term\)\.merge"),
    ("coordinator: commit the result (NDJSON)", r"results\.Commit|\(\*term\)\.commit"),
    ("coordinator: publish to the aggregates table", r"icetable\.(ResultPublisher|PublishResult)|\(\*term\)\.publish"),
    ("coordinator: plan from the events table", r"icetable\.TablePlanner|\(\*term\)\.plan|Coordinator\)\.plan"),
    ("read: files from the store", r"lake\.\(\*FileStore\)|fetchInOrder\.func1"),
    ("read: string values to ids (intern maps)", r"stringColumn\)\.(intern|readChunk\.func1)"),
    ("read: Parquet pages (zstd, decoding)", r"aggregate\.forEachPage|aggregate\.readTimestamps|parquet-go|klauspost/compress"),
    ("read: 16-byte records, key ids", r"aggregate\.\(\*ColumnReader\)\.(addRowGroup|AddFile|checkPages)|aggregate\.\(\*keyTable\)"),
    ("group by user (counting sort)", r"aggregate\.\(\*builder\)\.(group|sorted)|aggregate\.sortSegs"),
    ("time spent, per-key counts", r"aggregate\.\(\*builder\)\.finish"),
    ("worker: encode and put the partial, rest", r"worker\.\(\*Worker\)"),
    ("etcd (embedded) and its clients", r"go\.etcd\.io"),
    ("gRPC, TLS", r"google\.golang\.org/grpc|crypto/"),
]
OTHER = "other (runtime, scheduler, syscalls)"


def seconds(v):
    m = re.match(r"([\d.]+)(ns|us|µs|ms|s)$", v)
    return float(m.group(1)) * {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1}[m.group(2)]


def cpu(binary, profiles):
    total = collections.Counter()
    for p in profiles:
        out = subprocess.run(["go", "tool", "pprof", "-traces", binary, p],
                             capture_output=True, text=True, check=True).stdout
        for block in out.split("-----------+-------------------------------------------------------")[1:]:
            lines = [l for l in block.split("\n") if l.strip()]
            if not lines:
                continue
            m = re.match(r"\s*(\S+)\s+(.*)", lines[0])
            stack = "\n".join([m.group(2)] + [l.strip() for l in lines[1:]])
            label = next((lab for lab, rx in CATEGORIES if re.search(rx, stack)), OTHER)
            total[label] += seconds(m.group(1))
    t = sum(total.values())
    n = len(profiles)
    print(f"{t / n:.2f} s of CPU sampled per profile ({n} profiles)\n")
    print("| category | CPU s per run | share |\n|---|---:|---:|")
    for lab in [c[0] for c in CATEGORIES] + [OTHER]:
        print(f"| {lab} | {total[lab] / n:.2f} | {100 * total[lab] / t:.0f} % |")


def stamp(line):
    m = re.match(r"time=(\S+)", line)
    return datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp() if m else None


def phases(argv):
    t0 = time.time()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.time() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        sys.exit(p.returncode)
    logged = [(stamp(l), l) for l in p.stderr.split("\n") if l.startswith("time=")]

    def at(msg, last=False):
        hits = [t for t, l in logged if f'msg="{msg}"' in l]
        if not hits:
            sys.exit(f'breakdown.py: no msg="{msg}" in the log (was the run given --log-level info?)')
        return hits[-1] if last else hits[0]

    started, planned = at("coordinator started"), at("job planned")
    done, finished = at("task done", last=True), at("job finished")
    print(f"wall {wall:.2f} s, CPU {ru.ru_utime + ru.ru_stime:.2f} s, peak RSS {ru.ru_maxrss // 1024} MiB")
    print(f"  start → coordinator started  {started - t0:.3f} s")
    print(f"  submit and plan              {planned - started:.3f} s")
    print(f"  tasks (to the last done)     {done - planned:.3f} s")
    print(f"  merge and commit             {finished - done:.3f} s")
    print(f"  publish, close, exit         {t0 + wall - finished:.3f} s")


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "phases" and sys.argv[2] == "--":
        phases(sys.argv[3:])
    elif len(sys.argv) > 3 and sys.argv[1] == "cpu":
        cpu(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
