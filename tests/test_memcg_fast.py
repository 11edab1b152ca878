"""The one-read-per-struct paths give what member-by-member reads give.

On real dumps of each kernel generation: memcgids' report read through
:class:`crashext.analysis.memcg._Fast` (one read per memcg and per kernfs
node, id tree slots as arrays) equals, field for field, the report read
member by member; and ``Target.member_int_layout`` decodes every member it
describes to what ``int()`` of that member reads.
"""

import json

import pytest

from crashext.analysis import memcg
from crashext.errors import MissingSymbolError
from crashext.kernel.fields import StructFields

pytestmark = pytest.mark.vmcore

CASES = [(s, c) for s in ("bullseye", "bookworm", "trixie") for c in ("memcg-churn", "nokmem")
         if (s, c) != ("trixie", "nokmem")]


def _open(fx):
    from crashext.kernel import drgn_backend
    return drgn_backend.open_core(str(fx.vmcore), str(fx.vmlinux))


@pytest.mark.parametrize("suite,scenario", CASES)
def test_fast_report_equals_member_by_member(vmcore, suite, scenario, monkeypatch):
    fx = vmcore(suite, scenario)
    t = _open(fx)
    lay = memcg._Layout(t)
    memcg._Fast(t, lay)  # these kernels (5.10, 6.1, 6.12) have the layout it covers
    fast = memcg.memcg_report(t).to_json()

    def off(self, t, lay):
        raise MissingSymbolError("disabled for the comparison")
    monkeypatch.setattr(memcg._Fast, "__init__", off)
    slow = memcg.memcg_report(_open(fx)).to_json()
    assert json.dumps(fast, sort_keys=True) == json.dumps(slow, sort_keys=True)
    assert fast["summary"]["dying"] > 0 and len(fast["memcgs"]) > 10


@pytest.mark.parametrize("suite", ["bullseye", "bookworm", "trixie"])
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
