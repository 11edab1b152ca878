#!/usr/bin/env python3
"""Time memcgids' walk against a bare drgn walk of the same memcgs.

Usage: python3 benchmarks/memcg_walk.py VMCORE VMLINUX [--repeat N]

Prints, for one dump: the number of memcgs, the seconds for
crashext.analysis.memcg.memcg_report (tree walk, every field, both id
trees, anomaly checks) and for drgn's own css_for_each_descendant_pre over
root_mem_cgroup reading the same ids (memcg id, kmemcg_id, css flags), and
the time per memcg of each.  Run by hand; numbers go to docs/memcgids.md.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crashext.analysis.memcg import memcg_report  # noqa: E402
from crashext.kernel import drgn_backend  # noqa: E402


def bare_drgn(prog) -> int:
    from drgn import container_of
    from drgn.helpers.linux.cgroup import css_for_each_descendant_pre
    root = prog["root_mem_cgroup"]
    n = 0
    for css in css_for_each_descendant_pre(root.css.address_of_()):
        memcg = container_of(css, "struct mem_cgroup", "css")
        memcg.id.id.value_()
        memcg.kmemcg_id.value_()
        css.flags.value_()
        n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmcore")
    ap.add_argument("vmlinux")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rows = []
    for i in range(a.repeat):
        t = drgn_backend.open_core(a.vmcore, a.vmlinux)
        t0 = time.perf_counter()
        r = memcg_report(t)
        t1 = time.perf_counter()
        t2 = drgn_backend.open_core(a.vmcore, a.vmlinux)
        t3 = time.perf_counter()
        n_bare = bare_drgn(t2.prog)
        t4 = time.perf_counter()
        rows.append((len(r.memcgs), t1 - t0, n_bare, t4 - t3))
    for n, s, nb, sb in rows:
        print(f"memcgids: {n} memcgs in {s:.2f}s ({1e6 * s / max(n, 1):.0f} us/memcg); "
              f"bare drgn: {nb} memcgs in {sb:.2f}s ({1e6 * sb / max(nb, 1):.0f} us/memcg); "
              f"ratio {s / max(sb, 1e-9):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
