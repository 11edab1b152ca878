"""The one-read-per-struct paths give what member-by-member reads give.

On real dumps of each kernel generation: memcgids' report read through
:class:`crashext.analysis.memcg_read.FastLayout` (one read per memcg and per kernfs
node, id tree slots as arrays) equals, field for field, the report read
member by member; and ``Target.member_int_layout`` decodes every member it
describes to what ``int()`` of that member reads.
"""

import json

import pytest

from crashext.analysis import memcg, memcg_read
from crashext.errors import MissingSymbolError
from crashext.kernel.fields import StructFields

pytestmark = pytest.mark.vmcore

CASES = [(s, c) for s in ("bullseye", "bookworm", "trixie") for c in ("memcg-churn", "nokmem")
         if (s, c) != ("trixie", "nokmem")] + [("trixie-backports", "memcg-churn")]


def _open(fx):
    from crashext.kernel import drgn_backend
    return drgn_backend.open_core(str(fx.vmcore), str(fx.vmlinux))


@pytest.mark.parametrize("suite,scenario", CASES)
def test_fast_report_equals_member_by_member(vmcore, suite, scenario, monkeypatch):
    fx = vmcore(suite, scenario)
    t = _open(fx)
    lay = memcg_read.MemcgLayout(t)
    memcg_read.FastLayout(t, lay)  # these kernels (5.10, 6.1, 6.12, 7.3) have the layout it covers
    fast = memcg.memcg_report(t).to_json()

    def off(self, t, lay):
        raise MissingSymbolError("disabled for the comparison")
    monkeypatch.setattr(memcg_read.FastLayout, "__init__", off)
    slow = memcg.memcg_report(_open(fx)).to_json()
    assert json.dumps(fast, sort_keys=True) == json.dumps(slow, sort_keys=True)
    # as many dying as the kernel's own cgroup.stat says (none on 7.3, which
    # frees a memcg removed with pages charged: tests/test_fixtures_truth.py)
    assert fast["summary"]["dying"] == fx.truth()["cgroup_stat"]["/"]["nr_dying_descendants"]
    assert len(fast["memcgs"]) > 10


@pytest.mark.parametrize("suite", ["bullseye", "bookworm", "trixie", "trixie-backports"])
def test_member_int_layout_decodes_as_int(vmcore, suite):
    t = _open(vmcore(suite, "memcg-churn"))
    root = int(t.symbol("root_mem_cgroup"))
    members = {"flags": "css.flags", "cgroup": "css.cgroup", "id": "css.id",
               "memcg_id": "id.id", "kmemcg_id": "kmemcg_id",
               "usage": "memory.usage.counter", "pcp": "css.refcnt.percpu_count_ptr"}
    f = StructFields(t, "struct mem_cgroup", members)
    got = f.read(root)
    obj = t.object("struct mem_cgroup", root)
    assert got == {k: int(obj.member(p)) for k, p in members.items()}
    # kmemcg_id is a signed int: -1 on a memcg without one must stay -1
    assert t.member_int_layout("struct mem_cgroup", "kmemcg_id")[1:] == (4, True)
    with pytest.raises(MissingSymbolError):
        t.member_int_layout("struct mem_cgroup", "css")   # a struct, not an integer


_IN_CRASH = '''
from crashext.kernel import pykdump_backend
from crashext.analysis import memcg_read, memcg_tree
t = pykdump_backend.open_session()
lay = memcg_read.MemcgLayout(t)
root = int(t.symbol("root_mem_cgroup"))
memcg_read.FastLayout(t, lay)
tree, _ = memcg_tree.tree_memcgs(t, lay, root)
fast = memcg_read.MemcgReader(t, lay, root)
slow = memcg_read.MemcgReader(t, lay, root)
rows = [(fast.read_fast(a).to_json(), slow.read_slow(a).to_json()) for a in tree]
print("CXCHECK %d %d" % (len(rows), sum(1 for f, s in rows if f == s)))
'''


@pytest.mark.slow
@pytest.mark.pykdump
@pytest.mark.parametrize("suite", ["bullseye", "bookworm"])
def test_fast_reads_inside_crash_equal_member_reads(vmcore, suite, tmp_path):
    """The PyKdump backend's member_int_layout (gdb's type descriptions)
    decodes each memcg as its own member reads do, inside a real crash."""
    import os
    import re
    import shutil
    import subprocess
    import sys
    from crashext.crashenv import pykdump_path
    if not os.path.isfile(pykdump_path()) or shutil.which("crash") is None:
        pytest.skip("PyKdump or crash not available (set CRASHEXT_PYKDUMP)")
    fx = vmcore(suite, "memcg-churn")
    script = tmp_path / "check.py"
    script.write_text(_IN_CRASH)
    proc = subprocess.run([sys.executable, "-m", "crashext", "crash", str(fx.vmlinux),
                           str(fx.vmcore), "--", f"epython {script}"],
                          capture_output=True, text=True, timeout=900)
    m = re.search(r"^CXCHECK (\d+) (\d+)$", proc.stdout, re.M)
    assert m, (proc.stdout + proc.stderr)[-2000:]
    assert int(m.group(1)) > 10 and m.group(1) == m.group(2)
