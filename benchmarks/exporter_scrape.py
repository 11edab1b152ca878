#!/usr/bin/env python3
"""crashext exporter: time of one scrape and memory over many scrapes.

Builds, on tmpfs (/dev/shm when present), a cgroup v2 tree of MEMCGS memory
cgroups (/kubepods/podN/ctrM, 10 containers per pod, each with
memory.current, cgroup.stat and cgroup.events, and a share of them "dying"
in their pod's cgroup.stat) and a /proc copy made from the bookworm
fragmented fixture's own buddyinfo, zoneinfo, pagetypeinfo and vmstat with
every count scaled so the Normal zone is 8 GiB (the text's shape, hence the
parsing cost, does not depend on the numbers), plus a kernel log with the
RHEL7 idr-bug log's allocation failure.  Then it runs the exporter's collector in this
process SCRAPES times, as the HTTP server does for each GET /metrics
(collect + the text format), and prints the median and 95th percentile
time of a scrape and the RSS after the first, the 10th and the last one.

    python3 benchmarks/exporter_scrape.py [MEMCGS] [SCRAPES] [CGROUPFS_INTERVAL]

With CGROUPFS_INTERVAL > 0 the cgroupfs walk runs in the background every
that many seconds (--cgroupfs-interval) and scrapes take its last result.

Run by hand; numbers go in docs/exporter.md.
"""

import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIXTURE = Path(os.environ.get("CRASHEXT_FIXTURE_DIR",
                              Path.home() / ".cache" / "crashext" / "fixtures")) \
    / "bookworm" / "fragmented" / "truth"


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def build_tree(root: Path, memcgs: int) -> None:
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    pods = max(1, memcgs // 11)
    kube = root / "kubepods"
    kube.mkdir()
    made = 1
    total_dying = 0
    for p in range(pods):
        pod = kube / f"pod{p:05d}"
        pod.mkdir()
        dying = p % 7
        total_dying += dying
        for c in range(10):
            ctr = pod / f"ctr{c}"
            ctr.mkdir()
            (ctr / "memory.current").write_text("1048576\n")
            (ctr / "cgroup.stat").write_text("nr_descendants 0\nnr_dying_descendants 0\n")
            (ctr / "cgroup.events").write_text("populated 1\nfrozen 0\n")
        (pod / "memory.current").write_text("10485760\n")
        (pod / "cgroup.stat").write_text(f"nr_descendants {10 + dying}\n"
                                         f"nr_dying_descendants {dying}\n")
        (pod / "cgroup.events").write_text("populated 1\nfrozen 0\n")
        made += 11
    (kube / "memory.current").write_text("1\n")
    (kube / "cgroup.stat").write_text(f"nr_descendants {made - 2 + total_dying}\n"
                                      f"nr_dying_descendants {total_dying}\n")
    (root / "cgroup.stat").write_text(f"nr_descendants {made - 1 + total_dying}\n"
                                      f"nr_dying_descendants {total_dying}\n")


def scale(text: str, factor: int) -> str:
    return re.sub(r"(?<=\s)(\d+)(?=\s|$)", lambda m: str(int(m.group(1)) * factor), text)


def build_proc(proc: Path) -> None:
    proc.mkdir(parents=True)
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "sys" / "kernel" / "osrelease").write_text((FIXTURE / "uname_r").read_text())
    zi = (FIXTURE / "zoneinfo").read_text()
    m = re.search(r"zone\s+Normal.*?managed\s+(\d+)", zi, re.S)
    factor = max(1, (8 << 30) // 4096 // int(m.group(1))) if m else 16
    for name in ("buddyinfo", "zoneinfo", "pagetypeinfo", "vmstat"):
        (proc / name).write_text(scale((FIXTURE / name).read_text(), factor))
    (proc / "cgroups").write_text((FIXTURE / "proc_cgroups").read_text())


def main() -> int:
    memcgs = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    scrapes = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    bg = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    if not FIXTURE.is_dir():
        sys.exit(f"{FIXTURE}: build the fixtures first (tests/vmcore/build-all)")
    from prometheus_client import CollectorRegistry, generate_latest

    from crashext.exporter import collector, logwatch

    base = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        t0 = time.monotonic()
        build_tree(base / "cgroup", memcgs)
        build_proc(base / "proc")
        log = base / "kern.log"
        shutil.copy(ROOT / "tests" / "data" / "logs" / "rhel7-3.10.0-693.2.2-idr-bug.dmesg", log)
        print(f"built {memcgs} memcgs and an 8 GiB-zone /proc in {time.monotonic() - t0:.1f} s")
        counts = logwatch.LogCounts()
        watcher = logwatch.LogWatcher(logwatch.FileSource(str(log), counts), counts)
        watcher.start()
        c = collector.Collector(proc=str(base / "proc"), sys_dir=str(base / "cgroup"),
                                log=watcher, cgroupfs_interval=bg)
        if c.cgroupfs_bg is not None:
            c.cgroupfs_bg.start()
        reg = CollectorRegistry(auto_describe=False)
        reg.register(c)
        times = []
        rss = {}
        size = 0
        for i in range(1, scrapes + 1):
            t = time.perf_counter()
            size = len(generate_latest(reg))
            times.append(time.perf_counter() - t)
            if i in (1, 10, scrapes):
                rss[i] = rss_kb()
        watcher.stop()
        if c.cgroupfs_bg is not None:
            c.cgroupfs_bg.stop()
        assert not any(c.errors.values()), c.errors
        times.sort()
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        print(f"{scrapes} scrapes of {size} bytes: median {statistics.median(times) * 1000:.0f} ms, "
              f"p95 {p95 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms")
        print("RSS: " + ", ".join(f"after scrape {k}: {v / 1024:.1f} MiB" for k, v in rss.items())
              + f"; peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
