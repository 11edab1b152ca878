"""The fault matrix: broken dumps and vmlinuxes x every command.

Cases and their expected outcomes are in tests/faults/cases.py; each run is
a subprocess with a time limit (tests/faults/harness.py), so a hang fails
its case.  A command a case does not name must give exactly the clean
dump's JSON.  The fast cases (file-level breakage, answered in about a
second) run by default; the rest are marked ``slow`` and are also run by
benchmarks/fault_matrix.py, which prints the matrix into
docs/broken-dumps.md.
"""

import os
import random
import struct

import pytest

from tests.faults import corrupt
from tests.faults.cases import CASES, Env
from tests.faults.harness import COMMANDS
from tests.faults.matrix import Matrix

pytestmark = pytest.mark.vmcore


@pytest.fixture(scope="session")
def matrix(vmcore, tmp_path_factory):
    def fixture_dir(fx):
        return os.path.dirname(str(vmcore(*fx).vmcore))
    return Matrix(Env(fixture_dir, str(tmp_path_factory.mktemp("faults"))))


PARAMS = [pytest.param(case, col, id=f"{case.id}-{col}",
                       marks=[pytest.mark.slow] if case.slow else [])
          for case in CASES for col in COMMANDS]


@pytest.mark.parametrize("case,column", PARAMS)
def test_fault_case(matrix, case, column):
    outcome = matrix.one(case, column)
    assert outcome.ok, f"{case.id} / {column}: {outcome.word}: {outcome.detail}"


def test_matrix_is_big_enough():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.slow
def test_corrupter_round_trip(vmcore, tmp_path):
    """A write through the corrupter reads back through drgn at the same
    virtual address, and nothing else on that page or its neighbours moves."""
    fx = vmcore("bookworm", "memcg-churn")
    prog = corrupt.open_clean(str(fx.vmcore), str(fx.vmlinux))
    out = tmp_path / "vmcore"
    corrupt.copy(str(fx.vmcore), str(out))
    c = corrupt.Corrupter(str(out), prog)
    rng = random.Random(5)
    targets = [int(prog["root_mem_cgroup"].value_()) + 8,                 # direct map (slab)
               int(prog["vmemmap_base"].value_()) + 64 * 4242,            # struct page
               int(prog["init_uts_ns"].address_of_().value_()) + 100]     # kernel data
    values = [rng.getrandbits(64) for _ in targets]
    for a, v in zip(targets, values):
        c.write_u64(a, v)
    assert c.commit() == 3
    assert corrupt.DumpLayout.read(str(out)).size > os.path.getsize(fx.vmcore)  # appended raw
    broken = corrupt.open_clean(str(out), str(fx.vmlinux))
    for a, v in zip(targets, values):
        assert broken.read_u64(a) == v
        page = a & ~4095
        before, after = prog.read(page, 4096), broken.read(page, 4096)
        off = a - page
        assert before[:off] == after[:off] and before[off + 8:] == after[off + 8:]
        assert prog.read(page + 4096, 4096) == broken.read(page + 4096, 4096)
    # a second edit of an appended (now raw) page is made in place
    c2 = corrupt.Corrupter(str(out), broken)
    c2.write_u64(targets[0], 7)
    size = os.path.getsize(out)
    c2.commit()
    assert os.path.getsize(out) == size
    assert corrupt.open_clean(str(out), str(fx.vmlinux)).read_u64(targets[0]) == 7


def test_corrupter_elf(tmp_path):
    """ELF dumps are patched in place at p_offset + (phys - p_paddr)."""
    phdr = struct.pack("<IIQQQQQQ", 1, 0, 4096, 0, 0x100000, 8192, 8192, 4096)
    ehdr = bytearray(64)
    ehdr[:4] = b"\x7fELF"
    ehdr[4] = 2
    struct.pack_into("<HHIQQQIHHHHHH", ehdr, 16, 4, 62, 1, 0, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    data = bytes(ehdr) + phdr + bytes(4096 - 64 - 56) + bytes(8192)
    p = tmp_path / "core"
    p.write_bytes(data)
    c = corrupt.Corrupter(str(p), clean_page=lambda pa: bytes(4096))
    c.write_phys(0x100000 + 4096 + 16, b"\x11" * 8)
    c.commit()
    raw = p.read_bytes()
    assert raw[4096 + 4096 + 16:4096 + 4096 + 24] == b"\x11" * 8
    assert raw.count(b"\x11") == 8
    with pytest.raises(corrupt.NotInDump):
        corrupt.DumpLayout.read(str(p)).elf_offset(0x200000)


# Inside crash (PyKdump): memcgids and frag, the commands that walk kernel
# structures, on a set of structure cases; the baseline is the same command
# on the clean dump inside crash.  A crash session takes about a minute, so
# this set is small and slow; benchmarks/fault_matrix.py --crash runs all cases.
CRASH_CASES = ["memcg-sibling-cycle", "page-desc-beyond-eof", "root-memcg-null",
               "freelist-cycle", "empty-file", "uts-release-garbage"]


@pytest.mark.slow
@pytest.mark.pykdump
@pytest.mark.parametrize("case_id", CRASH_CASES)
def test_fault_case_inside_crash(matrix, case_id):
    import crashbuilds
    from tests.faults.cases import BY_ID
    crashbuilds.newest()  # skips (fails in CI) without a crash + PyKdump build
    res = matrix.crash_row(BY_ID[case_id])
    bad = {c: f"{o.word}: {o.detail}" for c, o in res.items() if not o.ok}
    assert not bad, f"{case_id} inside crash: {bad}"


@pytest.mark.slow
@pytest.mark.pykdump
def test_output_file_inside_crash_holds_only_the_command(matrix, tmp_path):
    """On a dump with a damaged page, crash prints its own read diagnostics
    into the stream `> FILE` captures; `--output FILE` gets the command's
    JSON only, and it is the same JSON as the redirected stream's once
    crash's lines are taken out."""
    import json
    import subprocess
    import sys
    import crashbuilds
    from tests.faults.cases import BY_ID
    build = crashbuilds.newest()
    core, vmlinux = matrix.build(BY_ID["page-data-garbage"])
    clean, redirected = tmp_path / "clean.json", tmp_path / "redirected.json"
    proc = subprocess.run(
        [sys.executable, "-m", "crashext", "crash", "--crash", build.crash, "--mpykdump", build.mpykdump,
         vmlinux, core, "--", f"memcgids --json --output {clean}", f"memcgids --json > {redirected}"],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(clean.read_text())            # the whole file is one JSON document
    stream = redirected.read_text()
    foreign = [ln for ln in stream.splitlines() if ln.startswith(("memcgids: ", "crash: ", "crashext: "))]
    kept = "\n".join(ln for ln in stream.splitlines() if ln not in foreign)
    assert json.loads(kept) == data
    # the damage is really there: crash said so in the redirected stream, and
    # the memcg on the garbled page is an unreadable row
    assert foreign, stream[:2000]
    assert [m for m in data["memcgs"] if "unreadable" in m["anomalies"] and m["errors"]], \
        [m["anomalies"] for m in data["memcgs"]]
