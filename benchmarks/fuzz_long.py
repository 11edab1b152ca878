#!/usr/bin/env python3
"""Long fuzz run of every text parser (tests/faults/fuzz.py): >= 100,000 inputs.

    python3 benchmarks/fuzz_long.py [--inputs 100000] [--seed 1] [--json FILE]

Inputs are mutations of real text (RHEL7 idr-bug log, crash session, test logs,
fixture /proc captures, knowledge-base files), spread evenly over the
targets.  Prints inputs, time, inputs per second, accepted one-line errors
and peak RSS, and RSS at the start and the end of the run (memory must stay
flat).  Exits 1 on the first input that makes a parser raise anything but a
CrashextError (the input is saved next to the report).
"""
import argparse
import json
import os
import random
import resource
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from crashext.errors import CrashextError  # noqa: E402
from tests.faults.fuzz import TARGETS, mutate, seeds  # noqa: E402


def rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the numbers here")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    pool = seeds()
    names = sorted(TARGETS)
    per = {n: {"inputs": 0, "errors": 0, "seconds": 0.0} for n in names}
    t0 = time.monotonic()
    rss_start = None
    rss_samples = []
    for i in range(a.inputs):
        name = names[i % len(names)]
        data = mutate(rng, rng.choice(pool[name]))
        s = time.monotonic()
        try:
            TARGETS[name](data)
        except CrashextError:
            per[name]["errors"] += 1
        except Exception:
            path = os.path.abspath(f"fuzz-crash-{name}-{i}.bin")
            with open(path, "wb") as f:
                f.write(data)
            traceback.print_exc()
            print(f"FAIL: target {name} input {i} saved in {path}", file=sys.stderr)
            return 1
        per[name]["inputs"] += 1
        per[name]["seconds"] += time.monotonic() - s
        if i == 1000:
            rss_start = rss_kb()
        if i % 10000 == 0:
            rss_samples.append(rss_kb())
            print(f"{i} inputs, {time.monotonic() - t0:.0f} s, rss {rss_samples[-1]} KiB",
                  file=sys.stderr, flush=True)
    total = time.monotonic() - t0
    out = {
        "inputs": a.inputs, "seed": a.seed, "seconds": round(total, 1),
        "inputs_per_second": round(a.inputs / total, 1),
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rss_after_1000_kib": rss_start, "rss_end_kib": rss_kb(),
        "rss_every_10000_kib": rss_samples,
        "targets": per, "python": sys.version.split()[0],
    }
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
