"""The fault matrix: broken dumps and vmlinuxes built from the real fixtures.

Each :class:`Case` names the clean fixture it starts from, a ``build``
function that writes the broken input into a work directory (returning the
vmcore and vmlinux to give crashext), and what each command must do with it.
Commands a case does not mention must give exactly the clean dump's output
(``same``): breaking a memcg must not change the buddy lists, and so on.

Objects are broken where the kernel keeps them: addresses come from drgn on
the clean dump and :class:`~tests.faults.corrupt.Corrupter` rewrites the
physical page that holds them.  Layout facts used (all checked against the
debug info of the dump at hand, not assumed): ``struct list_head {next, prev}``
(include/linux/types.h); ``struct cgroup_subsys_state`` links siblings
through ``sibling`` and children through ``children`` (v3.15+,
include/linux/cgroup-defs.h); free blocks hang off
``zone->free_area[order].free_list[migratetype]`` through ``page->lru``
(``buddy_list`` in 6.2+; include/linux/mmzone.h, mm/page_alloc.c).
"""

import os
import random
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .corrupt import Corrupter, DumpLayout, copy, open_clean, truncate
from .harness import Expect, check, error, same

__all__ = ["Case", "CASES", "Env"]

BOOKWORM = ("bookworm", "memcg-churn")
BULLSEYE = ("bullseye", "memcg-churn")
TRIXIE = ("trixie", "memcg-churn")
BULLSEYE_V1 = ("bullseye", "cgroup-v1")

#: a direct-map address far beyond the 512 MiB these guests have: never in a dump
def unmapped(prog) -> int:
    return int(prog["page_offset_base"]) + (64 << 30)


class Env:
    """What builders and checks get: fixtures, clean programs, clean outputs."""

    def __init__(self, fixture_dir: Callable[[Tuple[str, str]], str], workdir: str) -> None:
        self._fixture_dir = fixture_dir
        self.workdir = workdir
        self._progs: Dict[Tuple[str, str], Any] = {}

    def fixture(self, fx: Tuple[str, str]) -> Tuple[str, str]:
        d = self._fixture_dir(fx)
        return os.path.join(d, "vmcore"), os.path.join(d, "vmlinux")

    def prog(self, fx: Tuple[str, str]):
        if fx not in self._progs:
            self._progs[fx] = open_clean(*self.fixture(fx))
        return self._progs[fx]

    def path(self, case: "Case", name: str) -> str:
        d = os.path.join(self.workdir, case.id)
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, name)

    def corrupt(self, case: "Case", edit: Callable[[Any, Corrupter], None]) -> Tuple[str, str]:
        """Copy the case's fixture, let ``edit(prog, corrupter)`` write, commit."""
        core, vmlinux = self.fixture(case.fixture)
        out = self.path(case, "vmcore")
        copy(core, out)
        prog = self.prog(case.fixture)
        c = Corrupter(out, prog)
        edit(prog, c)
        assert c.commit() > 0, f"{case.id}: nothing was written"
        return out, vmlinux


@dataclass
class Case:
    id: str
    title: str
    fixture: Tuple[str, str]
    build: Callable[["Env", "Case"], Tuple[str, str]]
    expect: Dict[str, Expect] = field(default_factory=dict)
    #: commands run only by the slow matrix (the fast set runs the rest)
    slow: bool = True
    #: what a command does inside crash where that differs from the CLI (a gap, documented)
    crash_expect: Dict[str, Expect] = field(default_factory=dict)

    def expectation(self, column: str) -> Expect:
        return self.expect.get(column, same())


# ================================================================ helpers on the clean dump

def memcg_addr(prog, path: str) -> int:
    """Address of the memcg whose cgroup path is ``path`` ("/" is the root)."""
    from drgn.helpers.linux.cgroup import cgroup_path, css_for_each_descendant_pre
    root = prog["root_mem_cgroup"]
    for css in css_for_each_descendant_pre(root.css.address_of_()):
        if cgroup_path(css.cgroup).decode() == path:
            return int(css.value_())  # css is the first member of struct mem_cgroup
    raise LookupError(path)


def memcg(prog, path: str):
    from drgn import Object
    return Object(prog, "struct mem_cgroup", address=memcg_addr(prog, path))


def zone(prog, index: int):
    return prog["node_data"][0].node_zones[index]


def free_list_nodes(prog, zone_index: int, order: int, mt: int) -> List[int]:
    from drgn.helpers.linux.list import list_for_each
    head = zone(prog, zone_index).free_area[order].free_list[mt].address_of_()
    return [int(n.value_()) for n in list_for_each(head)]


def free_head(prog, zone_index: int, order: int, mt: int) -> int:
    return int(zone(prog, zone_index).free_area[order].free_list[mt].address_of_().value_())


# ================================================================ checks (clean, broken JSON)

def _rows(js) -> Dict[str, dict]:
    return {m["address"]: m for m in js["memcgs"]}


def memcg_rows_exact_except(changed: Dict[str, Callable[[dict, dict], None]],
                            lost_from_tree_ok: bool = False,
                            summary_keys: Tuple[str, ...] = ()) -> Callable[[Any, Any], None]:
    """Every memcg row equals the clean one, except those in ``changed``
    (address -> a check of (clean row, broken row)).  With
    ``lost_from_tree_ok`` a row may differ only by having lost "tree" from
    its sources and gained the "not-in-tree" anomaly (the walk broke before
    it; the id trees still know it)."""
    def fn(clean, got):
        c, g = _rows(clean), _rows(got)
        for addr, row in c.items():
            if addr in changed:
                assert addr in g, f"broken memcg {addr} missing from the output"
                changed[addr](row, g[addr])
                continue
            assert addr in g, f"memcg {addr} ({row['path']}) lost"
            got_row = g[addr]
            if got_row == row:
                continue
            assert lost_from_tree_ok, f"memcg {addr} ({row['path']}) changed: " \
                f"{_diff(row, got_row)}"
            want = dict(row, sources=[s for s in row["sources"] if s != "tree"],
                        anomalies=row["anomalies"] + ["not-in-tree"])
            assert got_row == want, f"memcg {addr} ({row['path']}): {_diff(want, got_row)}"
        extra = set(g) - set(c)
        assert not extra, f"memcgs not in the clean dump: {sorted(extra)}"
        for k in summary_keys:
            assert got["summary"][k] == clean["summary"][k], f"summary {k} changed"
    return fn


def _diff(a: dict, b: dict) -> str:
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
                     if a.get(k) != b.get(k))


def walk_problem(pattern: str) -> Callable[[Any, Any], None]:
    import re

    def fn(clean, got):
        wp = got["summary"]["walk_problem"]
        assert wp and re.search(pattern, wp), f"walk_problem {wp!r} does not say {pattern!r}"
    return fn


def all_of(*fns):
    def fn(clean, got):
        for f in fns:
            f(clean, got)
    return fn


def frag_exact_except_lists(zone_name: str, broken: Dict[Tuple[int, str], Callable[[int, int], bool]],
                            walk_error: str, mismatch_orders: Tuple[int, ...] = ()) -> Callable[[Any, Any], None]:
    """frag --migratetypes: every zone and every free-list count exact, except
    the lists in ``broken`` ((order, migratetype) -> predicate on (clean
    count, broken count)); the broken zone names them in walk_errors."""
    import re

    def fn(clean, got):
        assert got["verdict"] == clean["verdict"], "verdict changed"
        cz = {z["zone"]: z for z in clean["zones"]}
        gz = {z["zone"]: z for z in got["zones"]}
        assert set(cz) == set(gz)
        for name, z in cz.items():
            g = gz[name]
            if name != zone_name:
                assert g == z, f"zone {name} changed: {_diff(z, g)}"
                continue
            for k in z:
                if k in ("free_by_migratetype", "walk_errors", "migratetype_mismatch"):
                    continue
                assert g[k] == z[k], f"zone {name} {k}: {z[k]!r} -> {g[k]!r}"
            for mt, counts in z["free_by_migratetype"].items():
                for o, n in enumerate(counts):
                    m = g["free_by_migratetype"][mt][o]
                    if (o, mt) in broken:
                        assert broken[(o, mt)](n, m), f"order {o} {mt}: {n} -> {m}"
                    else:
                        assert m == n, f"unbroken list order {o} {mt}: {n} -> {m}"
            assert g["walk_errors"], "no walk error reported"
            assert all(re.search(walk_error, e) for e in g["walk_errors"]), g["walk_errors"]
            assert len(g["walk_errors"]) == len(broken), g["walk_errors"]
            assert sorted(int(o) for o in g["migratetype_mismatch"]) == sorted(mismatch_orders), \
                g["migratetype_mismatch"]
    return fn


def triage_memcg_summary(pattern_key: str):
    """triage: everything as on the clean dump except the memcg summary's
    walk/idr problem fields and the counts that follow from them."""
    def fn(clean, got):
        c, g = dict(clean), dict(got)
        cm, gm = c.pop("memory"), g.pop("memory")
        assert g == c, f"triage changed outside the memcg summary: {first(c, g)}"
        assert gm["zone_verdicts"] == cm["zone_verdicts"]
        assert gm["allocation_failures"] == cm["allocation_failures"]
        assert gm["memcg"]["summary"].get(pattern_key), f"triage does not show {pattern_key}"
    return fn


def first(a, b):
    from .harness import first_difference
    return first_difference(a, b)


# ================================================================ builders

def b_truncate(where: Callable[[DumpLayout], int]):
    def build(env: Env, case: Case):
        core, vmlinux = env.fixture(case.fixture)
        out = env.path(case, "vmcore")
        truncate(core, out, where(DumpLayout.read(core)))
        return out, vmlinux
    return build


def b_bytes(make: Callable[[Env, Case], bytes]):
    def build(env: Env, case: Case):
        _core, vmlinux = env.fixture(case.fixture)
        out = env.path(case, "vmcore")
        with open(out, "wb") as f:
            f.write(make(env, case))
        return out, vmlinux
    return build


def _random(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def b_header_field(offset: int, fmt: str, value: int):
    def build(env: Env, case: Case):
        core, vmlinux = env.fixture(case.fixture)
        out = env.path(case, "vmcore")
        copy(core, out)
        with open(out, "r+b") as f:
            f.seek(offset)
            f.write(struct.pack(fmt, value))
        return out, vmlinux
    return build


def b_other_vmlinux(other: Tuple[str, str]):
    def build(env: Env, case: Case):
        core, _ = env.fixture(case.fixture)
        return core, env.fixture(other)[1]
    return build


def b_stripped_vmlinux(env: Env, case: Case):
    core, vmlinux = env.fixture(case.fixture)
    out = env.path(case, "vmlinux-stripped")
    if not os.path.exists(out):
        subprocess.run(["objcopy", "--strip-debug", vmlinux, out + ".tmp"], check=True)
        os.rename(out + ".tmp", out)
    return core, out


def b_truncated_vmlinux(env: Env, case: Case):
    core, vmlinux = env.fixture(case.fixture)
    out = env.path(case, "vmlinux-head")
    truncate(vmlinux, out, 1 << 20)
    return core, out


def b_swapped(env: Env, case: Case):
    core, vmlinux = env.fixture(case.fixture)
    return vmlinux, core


def b_directory(env: Env, case: Case):
    _core, vmlinux = env.fixture(case.fixture)
    d = env.path(case, "vmcore.d")
    os.makedirs(d, exist_ok=True)
    return d, vmlinux


def b_refilter(*flags: str):
    def build(env: Env, case: Case):
        core, vmlinux = env.fixture(case.fixture)
        out = env.path(case, "vmcore")
        if os.path.exists(out):
            os.unlink(out)
        subprocess.run(["makedumpfile", *flags, core, out], check=True,
                       capture_output=True)
        return out, vmlinux
    return build


def b_edit(edit: Callable[[Any, Corrupter], None]):
    def build(env: Env, case: Case):
        return env.corrupt(case, edit)
    return build


def b_garble_page(path: str):
    """Overwrite the lzo data of the page holding the memcg at ``path``."""
    def build(env: Env, case: Case):
        core, vmlinux = env.fixture(case.fixture)
        out = env.path(case, "vmcore")
        copy(core, out)
        prog = env.prog(case.fixture)
        c = Corrupter(out, prog)
        from .corrupt import phys_of
        c.garble_stored_page(phys_of(prog, memcg_addr(prog, path)))
        return out, vmlinux
    return build


def b_desc_beyond_eof(path: str):
    """Point the page descriptor of the page holding a memcg past the end of the file."""
    def build(env: Env, case: Case):
        core, vmlinux = env.fixture(case.fixture)
        out = env.path(case, "vmcore")
        copy(core, out)
        prog = env.prog(case.fixture)
        from .corrupt import phys_of, DESC
        lay = DumpLayout.read(out)
        with open(out, "r+b") as f:
            at, off, size, flags, pf = lay.page_desc(f, phys_of(prog, memcg_addr(prog, path)) // 4096)
            f.seek(at)
            f.write(DESC.pack(lay.size + (1 << 30), size, flags, pf))
        return out, vmlinux
    return build


# ---------------------------------------------------------------- memcg edits

def e_sibling_next(path: str, target: Callable[[Any], int]):
    def edit(prog, c: Corrupter):
        m = memcg(prog, path)
        c.write_u64(int(m.css.sibling.address_of_().value_()), target(prog))
    return edit


def sibling_of(path: str):
    return lambda prog: int(memcg(prog, path).css.sibling.address_of_().value_())


def e_kmemcg_id(path: str, value: int):
    def edit(prog, c: Corrupter):
        m = memcg(prog, path)
        c.write_u32(int(m.kmemcg_id.address_of_().value_()), value)
    return edit


def e_zero_memcg(path: str):
    def edit(prog, c: Corrupter):
        addr = memcg_addr(prog, path)
        c.write_virt(addr, bytes(prog.type("struct mem_cgroup").size))
    return edit


def e_children_null(path: str):
    def edit(prog, c: Corrupter):
        m = memcg(prog, path)
        c.write_u64(int(m.css.children.address_of_().value_()), 0)
    return edit


def e_idr_head(value: Callable[[Any], int]):
    def edit(prog, c: Corrupter):
        xa = prog["mem_cgroup_idr"].idr_rt
        c.write_u64(int(xa.xa_head.address_of_().value_()), value(prog))
    return edit


def e_symbol_u64(name: str, value: Callable[[Any], int]):
    def edit(prog, c: Corrupter):
        c.write_u64(int(prog[name].address_of_().value_()), value(prog))
    return edit


# ---------------------------------------------------------------- buddy edits

DMA32 = 1


def e_free_next(zone_index: int, order: int, mt: int, at: int, target: Callable[[Any], int]):
    """Set ``next`` of the ``at``-th node of a free list to ``target(prog)``."""
    def edit(prog, c: Corrupter):
        nodes = free_list_nodes(prog, zone_index, order, mt)
        c.write_u64(nodes[at], target(prog))
    return edit


def e_nr_free(zone_index: int, order: int, delta: int):
    def edit(prog, c: Corrupter):
        fa = zone(prog, zone_index).free_area[order]
        c.write_u64(int(fa.nr_free.address_of_().value_()), int(fa.nr_free) + delta)
    return edit


def e_watermark(zone_index: int, which: int, value: int):
    def edit(prog, c: Corrupter):
        z = zone(prog, zone_index)
        wm = z._watermark if "_watermark" in [m.name for m in z.type_.members] else z.watermark
        c.write_u64(int(wm[which].address_of_().value_()), value)
    return edit


def e_zone_name(zone_index: int, target: Callable[[Any], int]):
    def edit(prog, c: Corrupter):
        c.write_u64(int(zone(prog, zone_index).name.address_of_().value_()), target(prog))
    return edit


# ---------------------------------------------------------------- log edits

def e_log_noise(prog, c: Corrupter):
    ring = prog["prb"].text_data_ring
    size = 1 << int(ring.size_bits)
    c.write_virt(int(ring.data.value_()), _random(size, 10))


def e_desc_count_bits(value: int):
    def edit(prog, c: Corrupter):
        dr = prog["prb"].desc_ring
        c.write_u32(int(dr.count_bits.address_of_().value_()), value)
    return edit


def e_uts_release(prog, c: Corrupter):
    c.write_virt(int(prog["init_uts_ns"].name.release.address_of_().value_()), b"9.9.9-garbage\0")


def e_crashed_stack(prog, c: Corrupter):
    t = prog.crashed_thread().object
    stack = int(t.stack.value_())
    c.write_virt(stack, bytes(4 * 4096))


# ---------------------------------------------------------------- expectation helpers

def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def lost_after(path: str, include_self: bool = False):
    """Paths a broken sibling link at ``path`` hides from the tree walk: the
    siblings listed after it (kernel list order = the clean pre-order) and
    their subtrees; with ``include_self`` the node itself and its subtree too."""
    def lost(clean) -> set:
        rows = [m["path"] for m in clean["memcgs"] if "tree" in m["sources"]]
        parent = _parent(path)
        i = rows.index(path)
        out = set()
        for p in rows[i:]:
            if _parent(p) == parent and p != path or (include_self and p == path):
                out |= {q for q in rows if _under(q, p)}
        if not include_self:
            out -= {q for q in rows if _under(q, path)}
        return out
    return lost


def children_lost(path: str):
    def lost(clean) -> set:
        return {m["path"] for m in clean["memcgs"] if _under(m["path"], path) and m["path"] != path}
    return lost


def tree_break(lost_fn, walk: str, broken: str = None, broken_check=None):
    """A broken tree link: the rows ``lost_fn(clean)`` names lose "tree" and
    gain "not-in-tree" (still found through the id trees, all values exact);
    the row at ``broken`` is checked by ``broken_check``; every other row is
    exact; walk_problem says ``walk``; totals unchanged."""
    import re

    def fn(clean, got):
        lost = lost_fn(clean)
        assert lost or broken, "the case hides nothing"
        c, g = _rows(clean), _rows(got)
        by_path = {m["path"]: a for a, m in c.items()}
        assert set(g) == set(c), f"rows differ: {sorted(set(g) ^ set(c))}"
        for addr, row in c.items():
            got_row = g[addr]
            if broken and row["path"] == broken:
                broken_check(row, got_row)
                continue
            if row["path"] in lost:
                want = dict(row, sources=[x for x in row["sources"] if x != "tree"],
                            anomalies=row["anomalies"] + ["not-in-tree"])
            else:
                want = row
            assert got_row == want, f"{row['path']}: {_diff(want, got_row)}"
        wp = got["summary"]["walk_problem"]
        assert wp and re.search(walk, wp), f"walk_problem {wp!r} does not say {walk!r}"
        assert got["summary"]["total"] == clean["summary"]["total"]
        assert got["summary"]["in_tree"] == clean["summary"]["in_tree"] - len(lost) - (1 if broken else 0)
    return fn


def unreadable_row(state: str = "unknown"):
    """The row of a memcg whose memory is gone: marked unreadable and
    not-in-tree, every value it shows either the clean one or unknown."""
    def fn(row, got):
        assert "unreadable" in got["anomalies"] and "not-in-tree" in got["anomalies"], got["anomalies"]
        assert got["errors"], "no read errors listed"
        assert got["state"] == state, got["state"]
        for k in ("cgroup_id", "css_id", "memcg_id", "kmemcg_id", "usage_pages", "refcount"):
            assert got[k] is None or got[k] == row[k], f"{k}: {row[k]!r} -> {got[k]!r} (neither clean nor unknown)"
    return fn


def zeroed_row(row, got):
    """A memcg struct full of zeros: read as it is (zeros), and marked."""
    assert "unreadable" in got["anomalies"] and "not-in-tree" in got["anomalies"], got["anomalies"]
    assert got["path"] == "?" and got["errors"]
    assert got["css_id"] == 0 and got["memcg_id"] == 0 and got["kmemcg_id"] == 0 and got["css_flags"] == []


def one_row_changed(path: str, want: Dict[str, Any], anomalies: Tuple[str, ...] = (),
                    also_flagged: Dict[str, Tuple[str, ...]] = None):
    """Only the row at ``path`` changes: fields in ``want``, plus ``anomalies``
    added; ``also_flagged`` paths gain anomalies too (a duplicate has two ends)."""
    extra = dict(also_flagged or {})

    def fn(clean, got):
        c, g = _rows(clean), _rows(got)
        assert set(g) == set(c)
        for addr, row in c.items():
            exp = dict(row)
            if row["path"] == path:
                exp.update(want)
                exp["anomalies"] = row["anomalies"] + list(anomalies)
            elif row["path"] in extra:
                exp["anomalies"] = row["anomalies"] + list(extra[row["path"]])
            assert g[addr] == exp, f"{row['path']}: {_diff(exp, g[addr])}"
        assert got["summary"]["walk_problem"] is None
    return fn


def idr_lost(clean, got):
    """mem_cgroup_idr's head replaced by a pointer outside the dump: xarray
    semantics make that pointer the entry for id 0, so one extra, unreadable
    row appears (flagged), every memcg that was in the idr says it no longer
    maps back (memcg-idr-mismatch), and every value is exact."""
    c, g = _rows(clean), _rows(got)
    extra = set(g) - set(c)
    assert len(extra) == 1, extra
    x = g[extra.pop()]
    assert "unreadable" in x["anomalies"] and "not-in-tree" in x["anomalies"] and x["state"] == "unknown"
    for addr, row in c.items():
        want = dict(row)
        if "mem_cgroup_idr" in row["sources"]:
            want["sources"] = [s for s in row["sources"] if s != "mem_cgroup_idr"]
            if row["state"] == "online":
                want["anomalies"] = row["anomalies"] + ["memcg-idr-mismatch"]
        assert g[addr] == want, f"{row['path']}: {_diff(want, g[addr])}"


def triage_memcg_only(key: str, codes_gained: bool = True):
    """triage: everything exact except the memcg part, whose summary shows ``key``."""
    def fn(clean, got):
        c, g = dict(clean), dict(got)
        cm, gm = c.pop("memory"), g.pop("memory")
        g.pop("verdict", None), c.pop("verdict", None)
        assert g == c, f"triage changed outside memory: {first(c, g)}"
        assert gm["zone_verdicts"] == cm["zone_verdicts"]
        assert gm["allocation_failures"] == cm["allocation_failures"]
        assert got["verdict"]["headline"] == clean["verdict"]["headline"], "verdict changed"
        v = gm["memcg"]["summary"].get(key)
        assert v, f"triage memcg summary has no {key}"
        if codes_gained:
            assert gm["memcg"]["codes"], "no memcg codes"
    return fn


def triage_memcg_error(clean, got):
    c, g = dict(clean), dict(got)
    cm, gm = c.pop("memory"), g.pop("memory")
    g.pop("verdict", None), c.pop("verdict", None)
    assert g == c, f"triage changed outside memory: {first(c, g)}"
    assert "memcg" in gm["errors"], gm["errors"]
    assert got["verdict"]["headline"] == clean["verdict"]["headline"]


def info_partial(missing: Tuple[str, ...]):
    """info: the fields in ``missing`` are unknown (None) and say why in
    errors; every other field exact."""
    def fn(clean, got):
        for k, v in clean.items():
            if k == "errors":
                continue
            if k in missing:
                assert got[k] is None, f"{k}: {got[k]!r} (expected unknown)"
            else:
                assert got[k] == v, f"{k}: {v!r} -> {got[k]!r}"
        for k in missing:
            # version, machine and nodename all come from init_uts_ns ("uts")
            why = ("uts",) if k in ("version", "machine", "nodename") else (k,)
            assert any(w in e for e in got["errors"] for w in why), \
                f"errors do not explain {k}: {got['errors']}"
    return fn


def triage_log_lost(clean, got):
    """The kernel log is gone or noise: memory findings and system facts other
    than the panic string exact; the panic string unknown, never invented."""
    cm, gm = dict(clean["memory"]), dict(got["memory"])
    ce, ge = cm.pop("errors"), gm.pop("errors")
    if "allocation_failures" in ge:  # the log is unreadable: failures unknown, and said so
        assert "not in the dump" in ge["allocation_failures"]
        assert gm["allocation_failures"] == [] and "failures_not_kept" not in gm
        cm.pop("failures_not_kept", None)
        # the other Mem-Info blocks come from the same log: none, none invented
        for k in ("oom_reports", "show_mem", "mem_info_timeline"):
            assert not gm.pop(k, None), k
            cm.pop(k, None)
    assert gm == cm, first(cm, gm)
    assert all(ge.get(k) == v for k, v in ce.items()), ge
    for k, v in clean["system"].items():
        if k in ("panic", "errors", "panic_time"):
            continue
        g = got["system"].get(k)
        if isinstance(v, dict) and isinstance(g, dict):   # where each fact came from
            assert all(v.get(x) == y for x, y in g.items()), f"system {k}: {v!r} -> {g!r}"
        else:
            assert g == v, f"system {k}: {v!r} -> {g!r}"
    assert got["panic"].get("panic") in (None, clean["panic"].get("panic"))
    # the clean verdict, or none: no entry matched and nothing claimed
    assert got["verdict"]["headline"] == clean["verdict"]["headline"] or \
        (not got["verdict"]["matches"] and not got["verdict"].get("at_risk")), got["verdict"]["headline"]


def triage_truncated(clean, got):
    """Most of the dump is missing: each missing part is named in errors,
    nothing is invented (unknown values are None)."""
    assert got["errors"].get("log") and "not in the dump" in got["errors"]["log"]
    for k, v in got["system"].items():
        cv = clean["system"].get(k)
        if isinstance(v, dict) and isinstance(cv, dict):   # e.g. where each fact came from
            assert all(cv.get(x) == y for x, y in v.items()), f"system {k}: {v!r} vs {cv!r}"
        else:
            assert v is None or v == cv or k == "errors", f"system {k}: {cv!r} -> {v!r}"
    # no entry matched, nothing at risk: the headline only says what is missing
    assert not got["verdict"]["matches"] and not got["verdict"].get("at_risk"), got["verdict"]["headline"]
    assert "no panic" in got["verdict"]["headline"], got["verdict"]["headline"]


def allocfail_noise(clean, got):
    """A noise log: no failure, OOM or oops invented."""
    assert got["failures"] == [] and got["oom"] == [] and got["oops"] == [] and got["slub"] == []
    assert got["lines"] > 0


def frag_watermark(zone_name: str, which: str, value: int):
    """The zone shows the watermark the dump holds, fails order 0 at it (as the
    allocator would), and the impossible value is named in errors; every
    other zone and every count exact."""
    def fn(clean, got):
        cz = {z["zone"]: z for z in clean["zones"]}
        gz = {z["zone"]: z for z in got["zones"]}
        for name, z in cz.items():
            g = gz[name]
            if name != zone_name:
                assert g == z, f"zone {name}: {_diff(z, g)}"
                continue
            assert g["watermark"][which] == value
            for k in z:
                if k not in ("watermark", "verdicts"):
                    assert g[k] == z[k], f"{k}: {z[k]!r} -> {g[k]!r}"
            assert g["verdicts"]["0"][which]["ok"] is False
        assert len(got["errors"]) == 1 and f"zone {zone_name}: watermark {which} is {value}" in got["errors"][0], \
            got["errors"]
    return fn


def frag_zone_unreadable(zone_name: str):
    def fn(clean, got):
        cz = {z["zone"]: z for z in clean["zones"]}
        gz = {z["zone"]: z for z in got["zones"]}
        assert zone_name not in gz, "the unreadable zone is shown with values"
        for name, z in cz.items():
            if name != zone_name:
                assert gz[name] == z, f"zone {name}: {_diff(z, gz[name])}"
        assert len(got["errors"]) == 1 and "not in the dump" in got["errors"][0], got["errors"]
    return fn


def frag_nr_free(zone_name: str, order: int, delta: int):
    """nr_free raised: the zone shows the kernel's nr_free (what the allocator
    believes), the walked lists keep their exact counts, and the order is
    flagged as a mismatch between the two."""
    def fn(clean, got):
        cz = {z["zone"]: z for z in clean["zones"]}
        gz = {z["zone"]: z for z in got["zones"]}
        for name, z in cz.items():
            g = gz[name]
            if name != zone_name:
                assert g == z, f"zone {name}: {_diff(z, g)}"
                continue
            assert g["nr_free"][order] == z["nr_free"][order] + delta
            assert g["free_by_migratetype"] == z["free_by_migratetype"]
            mm = g["migratetype_mismatch"]
            assert list(mm) == [str(order)] or list(mm) == [order], mm
            assert g["walk_errors"] == []
    return fn


def _kid(clean, path):
    return next(m["kmemcg_id"] for m in clean["memcgs"] if m["path"] == path)


def _all_unreadable_but_root(clean, got):
    """Slab pages excluded: every memcg allocated from slab is unreadable in
    part; each such row is marked, nothing invented; the root (static) exact."""
    c, g = _rows(clean), _rows(got)
    assert set(g) == set(c)
    for addr, row in c.items():
        x = g[addr]
        if x == row:
            continue
        if "unreadable" not in x["anomalies"]:
            # readable itself, but hidden from the walk by an unreadable parent
            want = dict(row, sources=[s for s in row["sources"] if s != "tree"],
                        anomalies=row["anomalies"] + ["not-in-tree"])
            assert x == want, f"{row['path']} changed unmarked: {_diff(want, x)}"
            continue
        assert x["errors"], f"{row['path']}: unreadable without errors"
        for k in ("cgroup_id", "css_id", "memcg_id", "kmemcg_id", "usage_pages"):
            assert x[k] is None or x[k] == row[k], f"{row['path']} {k}: {row[k]!r} -> {x[k]!r}"
    # Which slab pages hold which objects differs from build to build: the
    # tree walk itself breaks when a css is on a dropped page, or it goes
    # through and the rows whose names (kernfs nodes) were dropped are marked.
    # Either way the damage is said, never hidden.
    assert got["summary"]["walk_problem"] or got["summary"]["anomalies"].get("unreadable"), \
        "slab pages dropped, yet neither a broken walk nor an unreadable row is reported"


def _info_panic_gone(clean, got):
    """Log noise: the panic string is not found (None), never a made-up one;
    everything else exact."""
    for k, v in clean.items():
        if k != "panic":
            assert got[k] == v, f"{k}: {v!r} -> {got[k]!r}"
    assert got["panic"] in (None, clean["panic"])


def triage_stack_gone(clean, got):
    """The panicking task's stack zeroed: the unwinder cannot produce the
    sysrq frames; the verdict still comes from the panic string and the log;
    memory and system facts exact."""
    assert got["memory"] == clean["memory"] and got["system"] == clean["system"]
    assert got["verdict"]["headline"] == clean["verdict"]["headline"]
    names = [f["function"] for f in got["panic"]["frames"]]
    assert "sysrq_handle_crash" not in names
    assert all(f["pc"] != 0 for f in got["panic"]["frames"]), "frames with pc 0 shown as real frames"


def _uts_info(clean, got):
    """init_uts_ns damaged: the release the dump noted (VMCOREINFO) is shown and
    the disagreement named; everything else exact."""
    for k, v in clean.items():
        if k != "errors":
            assert got[k] == v, f"{k}: {v!r} -> {got[k]!r}"
    assert "9.9.9-garbage" in got["errors"]["release"]


def _uts_triage(clean, got):
    c, g = dict(clean), dict(got)
    ce, ge = c.pop("errors"), g.pop("errors")
    assert g == c, first(c, g)
    assert "9.9.9-garbage" in ge.get("system.release", ""), ge


# ---------------------------------------------------------------- which free list to break
# The buddy lists differ from one build of a fixture to the next, so a case
# names a rule, not a list: the builder applies it to the clean dump through
# drgn, the check to the clean dump's frag JSON (the same counts: the frag
# tests check them against crash's kmem -f).

def pick_list(lengths: Dict[Tuple[int, int], int], min_len: int,
              not_order: Optional[int] = None) -> Tuple[int, int]:
    """The longest list (ties: lowest order, then migratetype) with at least
    ``min_len`` nodes, not of order ``not_order``."""
    ok = [(-n, o, mt) for (o, mt), n in lengths.items() if n >= min_len and o != not_order]
    assert ok, f"no free list with {min_len} nodes in this dump"
    _n, o, mt = min(ok)
    return o, mt


def prog_lengths(prog, zone_index: int) -> Dict[Tuple[int, int], int]:
    fa = zone(prog, zone_index).free_area
    return {(o, mt): len(free_list_nodes(prog, zone_index, o, mt))
            for o in range(len(fa)) for mt in range(len(fa[0].free_list))}


def json_lengths(clean, zone_name: str) -> Dict[Tuple[int, int], int]:
    z = next(z for z in clean["zones"] if z["zone"] == zone_name)
    names = clean["migratetypes"]
    return {(o, names.index(mt)): n for mt, counts in z["free_by_migratetype"].items()
            for o, n in enumerate(counts)}


def e_free_rule(zone_index: int, at: int, target: str, min_len: int):
    """Break node ``at`` of the picked list: ``target`` is "cycle" (-> node 3),
    "unmapped", "misaligned" (-> next node + 1) or "cross" (-> node 1 of the
    longest list of another order)."""
    def edit(prog, c: Corrupter):
        lengths = prog_lengths(prog, zone_index)
        o, mt = pick_list(lengths, min_len)
        nodes = free_list_nodes(prog, zone_index, o, mt)
        if target == "cycle":
            value = nodes[3]
        elif target == "unmapped":
            value = unmapped(prog)
        elif target == "misaligned":
            value = nodes[at + 1] + 1
        else:
            o2, mt2 = pick_list(lengths, 2, not_order=o)
            value = free_list_nodes(prog, zone_index, o2, mt2)[1]
        c.write_u64(nodes[at], value)
    return edit


def frag_rule(zone_name: str, at: int, min_len: int, walk_error: str):
    """The picked list walks ``at + 1`` nodes and says why it stopped; the rest exact."""
    def fn(clean, got):
        o, mt = pick_list(json_lengths(clean, zone_name), min_len)
        name = clean["migratetypes"][mt]
        frag_exact_except_lists(zone_name, {(o, name): lambda n, m: m == at + 1},
                                rf"order {o} {name}: ({walk_error})", (o,))(clean, got)
    return fn


def _slab_triage(clean, got):
    """Slab pages excluded (the 6.12 dump at -d 31): the memcg part shows the
    broken walk; the backtrace may be cut short (drgn cannot load the module
    the first frame is in) but every frame shown is a clean one, in order;
    the panic facts and the verdict are exact."""
    cp, gp = dict(clean["panic"]), dict(got["panic"])
    cf, gf = cp.pop("frames"), gp.pop("frames")
    assert gp == cp, first(cp, gp)
    assert gf and gf == cf[:len(gf)], "frames not a prefix of the clean backtrace"
    c, g = dict(clean), dict(got)
    for k in ("memory", "panic", "verdict"):
        c.pop(k), g.pop(k)
    assert g == c, first(c, g)
    assert got["verdict"]["headline"] == clean["verdict"]["headline"]
    ms = got["memory"]["memcg"]["summary"]
    # as in _all_unreadable_but_root: a broken walk or unreadable rows, by build
    assert ms["walk_problem"] or ms["anomalies"].get("unreadable"), \
        "slab pages dropped, yet the memcg evidence reports no damage"


def _release_is(value: str, path: Tuple[str, ...]):
    def fn(clean, got):
        c, g = clean, got
        for k in path[:-1]:
            c, g = c[k], g[k]
        assert g[path[-1]] == value, g[path[-1]]
        c = dict(c)
        g = dict(g)
        c.pop(path[-1]), g.pop(path[-1])
        assert c == g, first(c, g)
        if len(path) > 1:
            a, b = dict(clean), dict(got)
            a.pop(path[0]), b.pop(path[0])
            assert a == b, first(a, b)
    return fn


# ================================================================ the matrix

ALL = ("info", "memcgids", "frag", "allocfail", "triage")


def errors_everywhere(pattern: str, why: str = "") -> Dict[str, Expect]:
    """Every command reads the dump, so every one must stop with the same one line."""
    return {c: error(pattern, why) for c in ALL}


def _late(lay: DumpLayout) -> int:
    return lay.size - 2048


CASES: List[Case] = [
    # ---------------------------------------------------------------- the file
    Case("empty-file", "zero-length vmcore", BOOKWORM,
         b_bytes(lambda env, case: b""), errors_everywhere(r"empty or too short"), slow=False),
    Case("random-file", "1 MiB of random bytes as vmcore", BOOKWORM,
         b_bytes(lambda env, case: _random(1 << 20, 1)), errors_everywhere(r"not a vmcore"), slow=False),
    Case("kdump-signature-then-noise", "kdump signature followed by random bytes", BOOKWORM,
         b_bytes(lambda env, case: b"KDUMP   " + _random(1 << 20, 2)),
         errors_everywhere(r"corrupt kdump header|truncated|cut off"), slow=False),
    Case("trunc-header", "cut inside the disk_dump_header (300 bytes kept)", BOOKWORM,
         b_truncate(lambda lay: 300), errors_everywhere(r"kdump header is cut off"), slow=False),
    Case("trunc-bitmaps", "cut inside the page bitmaps", BOOKWORM,
         b_truncate(lambda lay: lay.bitmap_start + (lay.bitmap_end - lay.bitmap_start) // 3),
         errors_everywhere(r"page bitmaps are cut off"), slow=False),
    Case("trunc-descriptors", "cut inside the page descriptor table", BOOKWORM,
         b_truncate(lambda lay: lay.desc_start + (lay.desc_end - lay.desc_start) // 2),
         {"info": check(info_partial(("cpus", "memory_bytes", "panic", "uptime_seconds", "machine", "nodename", "version"))),
          "memcgids": error(r"cannot read kernel memory at 0x[0-9a-f]+ \(not in the dump\)"),
          "frag": error(r"cannot read kernel memory at 0x[0-9a-f]+ \(not in the dump\)"),
          "allocfail": error(r"cannot read kernel memory at 0x[0-9a-f]+ \(not in the dump\)"),
          "triage": check(triage_truncated)}),
    Case("trunc-middle", "cut in the middle of the page data", BOOKWORM,
         b_truncate(lambda lay: lay.size // 2),
         {"info": check(info_partial(("cpus", "memory_bytes", "panic", "uptime_seconds", "machine", "nodename", "version"))),
          "memcgids": error(r"cannot read kernel memory at 0x[0-9a-f]+ \(not in the dump\)"),
          "frag": error(r"cannot read kernel memory at 0x[0-9a-f]+ \(not in the dump\)"),
          "allocfail": error(r"cannot read kernel memory at 0x[0-9a-f]+ \(not in the dump\)"),
          "triage": check(triage_truncated)}),
    Case("trunc-last-page", "last 2 KiB of page data missing", BOOKWORM,
         b_truncate(_late), {}),
    Case("block-size-garbage", "disk_dump_header.block_size = 3", BOOKWORM,
         b_header_field(428, "<i", 3), errors_everywhere(r"cannot open this dump.*Invalid diskdump header"), slow=False),
    Case("vmcore-is-directory", "a directory given as vmcore", BOOKWORM,
         b_directory, errors_everywhere(r"is a directory"), slow=False),
    Case("swapped-arguments", "vmlinux given as vmcore and the vmcore as vmlinux", BOOKWORM,
         b_swapped, errors_everywhere(r"not a core dump"), slow=False),
    Case("other-kernel-vmlinux", "5.10 vmlinux with a 6.1 dump", BOOKWORM,
         b_other_vmlinux(BULLSEYE), errors_everywhere(r"does not match the dump: vmlinux is 5\.10.* dump is 6\.1")),
    Case("stripped-vmlinux", "vmlinux without debug info (objcopy --strip-debug)", BOOKWORM,
         b_stripped_vmlinux, errors_everywhere(r"no debug info")),
    Case("truncated-vmlinux", "first 1 MiB of the vmlinux", BOOKWORM,
         b_truncated_vmlinux, errors_everywhere(r"truncated ELF|not a readable vmlinux|no debug info"), slow=False),
    Case("refilter-raw", "re-filtered with makedumpfile -d 31, pages stored uncompressed", BOOKWORM,
         b_refilter("-d", "31"), {}),
    Case("refilter-zlib", "re-filtered with makedumpfile -d 31 -c (zlib)", BOOKWORM,
         b_refilter("-d", "31", "-c"), {}),
    Case("refilter-slab-excluded", "6.12 dump re-filtered at -d 31: makedumpfile 1.7.2 drops slab pages", TRIXIE,
         b_refilter("-d", "31", "-l"),
         {"memcgids": check(lambda clean, got: _all_unreadable_but_root(clean, got)),
          "triage": check(_slab_triage)}),
    Case("page-data-garbage", "lzo data of the page holding /kubepods/pod2/ctr2 overwritten", BOOKWORM,
         b_garble_page("/kubepods/pod2/ctr2"),
         {"memcgids": check(tree_break(lost_after("/kubepods/pod2/ctr2"), r"unreadable list node",
                                       "/kubepods/pod2/ctr2", unreadable_row())),
          "triage": check(triage_memcg_only("walk_problem"))}),
    Case("page-desc-beyond-eof", "descriptor of the page holding /kubepods/pod3/ctr1 points past EOF", BOOKWORM,
         b_desc_beyond_eof("/kubepods/pod3/ctr1"),
         {"memcgids": check(tree_break(lost_after("/kubepods/pod3/ctr1"), r"unreadable list node",
                                       "/kubepods/pod3/ctr1", unreadable_row())),
          "triage": check(triage_memcg_only("walk_problem"))}),
    # ---------------------------------------------------------------- memcg
    Case("memcg-sibling-cycle", "css.sibling of /kubepods/pod2/ctr3 points back to ctr1", BOOKWORM,
         b_edit(e_sibling_next("/kubepods/pod2/ctr3", sibling_of("/kubepods/pod2/ctr1"))),
         {"memcgids": check(tree_break(lost_after("/kubepods/pod2/ctr3"), r"cycle|does not point back")),
          "triage": check(triage_memcg_only("walk_problem"))}),
    Case("memcg-sibling-unmapped", "css.sibling of /kubepods/pod1/ctr1 points to memory not in the dump", BOOKWORM,
         b_edit(e_sibling_next("/kubepods/pod1/ctr1", unmapped)),
         {"memcgids": check(tree_break(lost_after("/kubepods/pod1/ctr1"), r"unreadable list node")),
          "triage": check(triage_memcg_only("walk_problem"))}),
    Case("memcg-sibling-misaligned", "css.sibling of /kubepods/pod3 points 3 bytes into /kubepods/pod4", BOOKWORM,
         b_edit(e_sibling_next("/kubepods/pod3", lambda p: sibling_of("/kubepods/pod4")(p) + 3)),
         {"memcgids": check(tree_break(lost_after("/kubepods/pod3"), r"misaligned next pointer")),
          "triage": check(triage_memcg_only("walk_problem"))}),
    Case("memcg-children-null", "css.children.next of /kubepods/pod4 is NULL", BOOKWORM,
         b_edit(e_children_null("/kubepods/pod4")),
         {"memcgids": check(tree_break(children_lost("/kubepods/pod4"), r"NULL next pointer")),
          "triage": check(triage_memcg_only("walk_problem"))}),
    Case("memcg-zeroed", "the whole struct mem_cgroup of /kubepods/pod3/ctr1 zeroed", BOOKWORM,
         b_edit(e_zero_memcg("/kubepods/pod3/ctr1")),
         {"memcgids": check(tree_break(lost_after("/kubepods/pod3/ctr1"), r"does not point back",
                                       "/kubepods/pod3/ctr1", zeroed_row)),
          "triage": check(triage_memcg_only("walk_problem"))}),
    Case("kmemcg-id-7fffffff", "kmemcg_id of /kubepods/pod1/ctr1 = 0x7fffffff (6.1)", BOOKWORM,
         b_edit(e_kmemcg_id("/kubepods/pod1/ctr1", 0x7FFFFFFF)),
         # 6.1 has no per-id arrays (no capacity to exceed): the value is shown as
         # the dump holds it, unflagged -- a known gap, see docs/broken-dumps.md
         {"memcgids": check(one_row_changed("/kubepods/pod1/ctr1", {"kmemcg_id": 0x7FFFFFFF}))}),
    Case("kmemcg-id-7fffffff-5.10", "kmemcg_id of /kubepods/pod1/ctr1 = 0x7fffffff (5.10, memcg_nr_cache_ids)", BULLSEYE,
         b_edit(e_kmemcg_id("/kubepods/pod1/ctr1", 0x7FFFFFFF)),
         {"memcgids": check(one_row_changed("/kubepods/pod1/ctr1", {"kmemcg_id": 0x7FFFFFFF},
                                            ("kmemcg-id-over-capacity",))),
          "triage": check(triage_memcg_only("anomalies"))}),
    Case("kmemcg-id-duplicate-5.10", "kmemcg_id of /kubepods/pod5 = that of /kubepods/pod1 (5.10)", BULLSEYE,
         b_edit(lambda prog, c: e_kmemcg_id("/kubepods/pod5", int(memcg(prog, "/kubepods/pod1").kmemcg_id))(prog, c)),
         {"memcgids": check(lambda clean, got: one_row_changed(
             "/kubepods/pod5", {"kmemcg_id": _kid(clean, "/kubepods/pod1")}, ("kmemcg-id-duplicate",),
             {"/kubepods/pod1": ("kmemcg-id-duplicate",)})(clean, got)),
          "triage": check(triage_memcg_only("anomalies"))}),
    Case("kmemcg-id-unset-online", "kmemcg_id of online /kubepods/pod3/ctr3 = -1 (the RHEL7 idr-bug state, 6.1)", BOOKWORM,
         b_edit(e_kmemcg_id("/kubepods/pod3/ctr3", 0xFFFFFFFF)),
         {"memcgids": check(one_row_changed("/kubepods/pod3/ctr3", {"kmemcg_id": -1}, ("kmemcg-id-missing",))),
          "triage": check(triage_memcg_only("anomalies"))}),
    Case("memcg-idr-garbage", "mem_cgroup_idr's xa_head points to memory not in the dump", BOOKWORM,
         b_edit(e_idr_head(unmapped)),
         {"memcgids": check(idr_lost), "triage": check(triage_memcg_only("anomalies"))}),
    Case("root-memcg-null", "root_mem_cgroup = NULL", BOOKWORM,
         b_edit(e_symbol_u64("root_mem_cgroup", lambda p: 0)),
         {"memcgids": error(r"root_mem_cgroup is NULL"), "triage": check(triage_memcg_error)}),
    Case("root-memcg-unmapped", "root_mem_cgroup points to memory not in the dump", BOOKWORM,
         b_edit(e_symbol_u64("root_mem_cgroup", unmapped)),
         {"memcgids": error(r"root_mem_cgroup \(0x[0-9a-f]+\) cannot be read from the dump"),
          "triage": check(triage_memcg_error)}),
    Case("memcg-sibling-cycle-5.10", "css.sibling of /kubepods/pod2/ctr3 points back to ctr1 (5.10)", BULLSEYE,
         b_edit(e_sibling_next("/kubepods/pod2/ctr3", sibling_of("/kubepods/pod2/ctr1"))),
         {"memcgids": check(tree_break(lost_after("/kubepods/pod2/ctr3"), r"cycle|does not point back")),
          "triage": check(triage_memcg_only("walk_problem"))}),
    # ---------------------------------------------------------------- buddy
    Case("freelist-cycle", "DMA32, longest free list: node 10's next -> node 3 (a cycle)", BOOKWORM,
         b_edit(e_free_rule(DMA32, 10, "cycle", 12)),
         {"frag": check(frag_rule("DMA32", 10, 12, r"cycle|node .* does not point back"))}),
    Case("freelist-cross-order", "DMA32, longest free list: node 1's next -> a node of a list of another order", BOOKWORM,
         b_edit(e_free_rule(DMA32, 1, "cross", 3)),
         {"frag": check(frag_rule("DMA32", 1, 3, r"node .* does not point back"))}),
    Case("freelist-unmapped", "DMA32, longest free list: node 5's next -> memory not in the dump", BOOKWORM,
         b_edit(e_free_rule(DMA32, 5, "unmapped", 7)),
         {"frag": check(frag_rule("DMA32", 5, 7, r"unreadable list node"))}),
    Case("freelist-misaligned", "DMA32, longest free list: node 8's next -> an odd address", BOOKWORM,
         b_edit(e_free_rule(DMA32, 8, "misaligned", 10)),
         {"frag": check(frag_rule("DMA32", 8, 10, r"misaligned next pointer"))}),
    Case("nr-free-disagrees", "DMA32 free_area[4].nr_free 100 higher than its lists", BOOKWORM,
         b_edit(e_nr_free(DMA32, 4, 100)), {"frag": check(frag_nr_free("DMA32", 4, 100))}),
    Case("watermark-garbage", "DMA32 _watermark[WMARK_MIN] = 0xdeadbeef12345678", BOOKWORM,
         b_edit(e_watermark(DMA32, 0, 0xDEADBEEF12345678)),
         {"frag": check(frag_watermark("DMA32", "min", 0xDEADBEEF12345678))}),
    Case("zone-name-unmapped", "DMA32 zone->name points to memory not in the dump", BOOKWORM,
         b_edit(e_zone_name(DMA32, unmapped)), {"frag": check(frag_zone_unreadable("DMA32"))}),
    Case("freelist-cycle-6.12", "DMA32, longest free list: node 10's next -> node 3 (6.12)", TRIXIE,
         b_edit(e_free_rule(DMA32, 10, "cycle", 12)),
         {"frag": check(frag_rule("DMA32", 10, 12, r"cycle|node .* does not point back"))}),
    # ---------------------------------------------------------------- log, uts, stack
    Case("log-noise", "printk text data ring (__log_buf) overwritten with random bytes", BOOKWORM,
         b_edit(e_log_noise),
         {"info": check(info_partial(("panic",))) if False else check(_info_panic_gone),
          "allocfail": check(allocfail_noise), "triage": check(triage_log_lost)}),
    Case("log-count-bits-garbage", "prb desc_ring.count_bits = 40 (a 2^40-entry ring)", BOOKWORM,
         b_edit(e_desc_count_bits(40)),
         {"info": check(info_partial(("panic",))),
          "allocfail": error(r"cannot read kernel memory at 0x[0-9a-f]+ \(not in the dump\)"),
          "triage": check(triage_log_lost)}),
    Case("uts-release-garbage", "init_uts_ns.name.release overwritten", BOOKWORM,
         b_edit(e_uts_release),
         # inside crash too, the release comes from the dump's VMCOREINFO
         # (as under drgn), so memcgids and frag equal the clean dump's
         {"info": check(_uts_info), "triage": check(_uts_triage)}),
    Case("crashed-stack-zeroed", "the panicking task's kernel stack zeroed", BOOKWORM,
         b_edit(e_crashed_stack), {"triage": check(triage_stack_gone)}),
]

BY_ID = {c.id: c for c in CASES}
assert len(BY_ID) == len(CASES), "duplicate case id"
