"""GFP tables against the kernel: its own numbers and the names it printed."""

import glob
import os
import re

import pytest
from hypothesis import given, settings, strategies as st

from crashext import gfp
from crashext.sources import kmsg, logs

DATA = os.path.join(os.path.dirname(__file__), "data", "logs")


# GFP_KERNEL of each generation, as the kernel prints it for plain GFP_KERNEL
# requests: 3.10 "mode:0xd0" (seed corpus, node_exporter #2990), 4.4/4.9
# 0x24000c0, 4.10..4.15 0x14000c0 (GFP_KERNEL_ACCOUNT 0x15000c0 in the 4.15
# shakenfist log), 4.18..4.20 0x6000c0, 5.x/6.x 0xcc0 (systemd 6.17 log).
@pytest.mark.parametrize("key,value", [
    ("3.10", 0xd0), ("4.4", 0x24000c0), ("4.9", 0x24000c0), ("4.10", 0x14000c0),
    ("4.15", 0x14000c0), ("4.18", 0x6000c0), ("5.10", 0xcc0), ("5.15", 0xcc0),
    ("6.1", 0xcc0), ("6.12", 0xcc0), ("6.14", 0xcc0)])
def test_gfp_kernel_value(key, value):
    t = gfp.table_by_key(key)
    assert dict(t.names)["GFP_KERNEL"] == value
    assert gfp.decode(value, t) == ["GFP_KERNEL"]


def test_seed_mode_decoded_with_310_table():
    # memcg_update_cache_size() does kzalloc(size, GFP_KERNEL) = GFP_KERNEL|__GFP_ZERO;
    # 3.10's kmalloc_order() (include/linux/slub_def.h, also RHEL7 -514) adds
    # __GFP_COMP|__GFP_KMEMCG for a large kmalloc: 0xd0|0x8000|0x4000|0x100000.
    t, how = gfp.table_for_release("3.10.0-693.2.2.el7.x86_64")
    assert t.key == "3.10" and "verified" in how
    assert 0xd0 | 0x8000 | 0x4000 | 0x100000 == 0x10c0d0
    assert gfp.decode(0x10c0d0, t) == ["GFP_KERNEL", "__GFP_COMP", "__GFP_ZERO", "__GFP_KMEMCG"]


def _source_releases():
    """file -> the kernel release SOURCES.md gives for it (its third column),
    for excerpts whose quoted lines do not name it."""
    out = {}
    with open(os.path.join(DATA, "SOURCES.md")) as f:
        for ln in f:
            cells = [c.strip() for c in ln.split("|")]
            if len(cells) > 3 and re.match(r"^\d+\.\d+", cells[3]):
                out[cells[1]] = cells[3].split()[0]
    return out


def _printed_cases():
    """(file, release, mask, names printed by the kernel) from every test log
    whose release is known (printed, or given by SOURCES.md): without one
    there is no table to hold the names against (the quoted 4.20-era
    ebtables failure prints none and its source names none)."""
    cases = []
    known = _source_releases()
    for path in sorted(glob.glob(os.path.join(DATA, "*"))):
        for rec in kmsg.extract(logs.log_lines(path)):
            if isinstance(rec, kmsg.AllocFailure) and rec.mode_names is not None:
                cases.append((os.path.basename(path),
                              rec.release or known.get(os.path.basename(path)),
                              rec.mode, rec.mode_names))
            if isinstance(rec, kmsg.OomReport) and rec.gfp_names is not None:
                cases.append((os.path.basename(path), rec.release, rec.gfp, rec.gfp_names))
    unknown = {c[0] for c in cases if not c[1]}
    assert unknown <= {"linuxmm-4.20-quoted-vmalloc-ebtables.log"}, unknown
    return [c for c in cases if c[1]]


CASES = _printed_cases()


def test_there_are_printed_names_to_compare():
    # 4.9, 4.12, 4.15, 5.4 (two), 5.15, 6.8, 6.16, 6.17 reports
    assert len(CASES) >= 9
    assert all(c[1] for c in CASES), "each report names its kernel release"


@pytest.mark.parametrize("name,release,mask,printed", CASES, ids=[c[0] for c in CASES])
def test_names_equal_kernel_printed(name, release, mask, printed):
    t, _how = gfp.table_for_release(release)
    assert gfp.decode(mask, t) == printed


ALL = list(gfp.TABLES)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL), st.integers(min_value=0, max_value=(1 << 32) - 1))
def test_decode_accounts_for_every_bit(table, mask):
    names = gfp.decode(mask, table)
    if mask == 0:
        # format_flags() prints nothing; the 3.10 tracepoint printed "GFP_NOWAIT"
        assert names == ([table.zero] if table.zero else [])
        return
    known = dict(table.names)
    known.update(table.bits)
    acc = 0
    for n in names:
        if n.startswith("0x"):
            acc |= int(n, 16)
        else:
            acc |= known[n]
    assert acc == mask
    # hex, if any, comes last and once
    assert sum(n.startswith("0x") for n in names) <= 1
    assert all(not n.startswith("0x") for n in names[:-1])


def test_unknown_bits_print_as_hex_like_format_flags():
    t = gfp.table_by_key("6.12")
    assert gfp.decode((1 << 30) | 0xcc0, t) == ["GFP_KERNEL", "0x40000000"]


def test_unknown_version_says_assumed():
    t, how = gfp.table_for_release(None)
    assert "assumed" in how
    t, how = gfp.table_for_release("4.13.0")   # between verified 4.10 and 4.15
    assert t.key == "4.10" and "assumed" in how


def test_names_from_dump_table():
    synth = pytest.importorskip("synth")
    k = synth.SynthKernel(release="6.1.0-26-amd64")
    k.struct("trace_print_flags", [("unsigned long", "mask"), ("char *", "name")])
    entries = [(0xcc0, "GFP_KERNEL"), (0x100, "__GFP_ZERO"), (0x40000, "__GFP_COMP")]
    arr = k.variable("gfpflag_names", f"struct trace_print_flags [{len(entries) + 1}]")
    for i, (mask, name) in enumerate(entries):
        s = k.alloc(len(name) + 1)
        k.set_string(s, name)
        k.set(arr[i], "mask", mask)
        k.set(arr[i], "name", s)
    names = gfp.names_from_target(k.target())
    assert names == [(n, m) for m, n in entries]
    # the dump's own order wins over any table
    assert gfp.decode(0x40dc0, gfp.table_by_key("3.10"), names) == \
        ["GFP_KERNEL", "__GFP_ZERO", "__GFP_COMP"]


@pytest.mark.vmcore
@pytest.mark.parametrize("suite", ["bullseye", "bookworm", "trixie", "trixie-backports"])
def test_tables_equal_the_dumps_own_gfpflag_names(vmcore, suite):
    """The kernel's gfpflag_names[] (mm/debug.c) read from a real Debian dump is
    exactly the table chosen for its release: same names, masks and order."""
    from crashext.kernel import drgn_backend
    fx = vmcore(suite, "memcg-churn")
    t = drgn_backend.open_core(str(fx.vmcore), str(fx.vmlinux))
    names = gfp.names_from_target(t)
    assert names, "a 5.10+ kernel has gfpflag_names"
    table, _how = gfp.table_for_release(t.release)
    assert names == list(table.names)
