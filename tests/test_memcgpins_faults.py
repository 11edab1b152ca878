"""memcgpins on broken copies of the memcg-pins dump (bookworm, 6.1).

- A page of the page array missing from the dump: the page descriptor of
  the vmemmap page holding the struct pages of the first tmpfs page is
  pointed past the end of the file (tests/faults/corrupt.py), so those 64
  struct pages cannot be read.  memcgpins must say how many could not be
  read, count the rest exactly, and call the references held by the lost
  pages what they may be.
- A corrupted memcg word: ``memcg_data`` of one tmpfs page overwritten with
  an address that is in no dump.  One counted warning, the page left out,
  everything else as on the clean dump.

makedumpfile's -d 31 (the bookworm fixtures' level) excludes pages, not
the struct pages that describe them: the clean dump's page array is whole
(the vmcore tests assert 0 unreadable), which is why the array is broken by
hand here.  Expectations come from drgn's own for_each_page() on the clean
dump, not from crashext.
"""

import json
import os
import subprocess
import sys

import pytest

drgn = pytest.importorskip("drgn")

from tests.faults.corrupt import (  # noqa: E402
    DESC, Corrupter, DumpLayout, copy, open_clean, phys_of)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = 4096


def _memcgpins(vmcore, vmlinux):
    env = dict(os.environ, PYTHONPATH=REPO)
    p = subprocess.run([sys.executable, "-m", "crashext", "memcgpins", "--json", "-c", vmcore,
                        "-s", vmlinux], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    return json.loads(p.stdout), p.stderr


@pytest.fixture(scope="module")
def clean(vmcore):
    """The fixture, drgn on it, and each removed cgroup's charged pfns."""
    from drgn.helpers.linux.cgroup import cgroup_path
    from drgn.helpers.linux.mm import for_each_page, page_to_pfn
    fx = vmcore("bookworm", "memcg-pins")
    prog = open_clean(str(fx.vmcore), str(fx.vmlinux))
    pfns = {}
    for page in for_each_page(prog):
        md = page.memcg_data.value_()
        if not md or md & 3:
            continue
        memcg = drgn.Object(prog, "struct mem_cgroup *", md)
        if memcg.css.flags.value_() & prog.constant("CSS_ONLINE").value_():
            continue
        path = cgroup_path(memcg.css.cgroup).decode()
        pfns.setdefault(path, []).append(page_to_pfn(page).value_())
    return fx, prog, pfns


def test_page_array_partly_missing(clean, tmp_path):
    fx, prog, pfns = clean
    first = min(pfns["/pins/tmpfs"])
    size = drgn.sizeof(prog.type("struct page"))
    vaddr = (prog["vmemmap"].value_() + first * size) & ~(PAGE - 1)
    lost = range((vaddr - prog["vmemmap"].value_()) // size,
                 (vaddr + PAGE - prog["vmemmap"].value_()) // size)
    out = str(tmp_path / "vmcore")
    copy(str(fx.vmcore), out)
    lay = DumpLayout.read(out)
    with open(out, "r+b") as f:
        at, _off, n, flags, pf = lay.page_desc(f, phys_of(prog, vaddr) // PAGE)
        f.seek(at)
        f.write(DESC.pack(lay.size + (1 << 30), n, flags, pf))
    data, err = _memcgpins(out, str(fx.vmlinux))
    pa = data["summary"]["page_array"]
    assert pa["unreadable"] == len(lost) == PAGE // size
    assert pa["unreadable_ranges"] == [[hex(lost.start), hex(lost.stop)]]
    assert f"{len(lost)} of {pa['pages']} struct pages could not be read" in err
    by_path = {m["path"]: m for m in data["memcgs"]}
    for path, got in by_path.items():
        want = sum(1 for p in pfns.get(path, []) if p not in lost)
        assert sum(got["pages"].values()) == want, path
    tmpfs = by_path["/pins/tmpfs"]
    gone = sum(1 for p in pfns["/pins/tmpfs"] if p in lost)
    assert gone > 0 and tmpfs["pages"]["shmem"] == 256 - gone
    # the references those pages hold are left over, and said to be so
    assert tmpfs["refs"]["unexplained"] == gone
    assert "could not be read" in tmpfs["verdict"]


def test_corrupted_memcg_word(clean, tmp_path):
    fx, prog, pfns = clean
    victim = sorted(pfns["/pins/tmpfs"])[10]
    page = prog["vmemmap"] + victim
    out = str(tmp_path / "vmcore")
    copy(str(fx.vmcore), out)
    c = Corrupter(out, prog)
    c.write_u64(page.memcg_data.address_of_().value_(), 0xFFFFDEAD00000000)
    assert c.commit() == 1
    data, err = _memcgpins(out, str(fx.vmlinux))
    assert data["summary"]["page_array"]["unreadable"] == 0
    warn = [w for w in data["summary"]["warnings"] if "to neither a memcg" in w]
    assert warn and warn[0].startswith("1 charged page points (1 distinct memcg word)")
    assert "to neither a memcg" in err
    tmpfs = {m["path"]: m for m in data["memcgs"]}["/pins/tmpfs"]
    assert tmpfs["pages"]["shmem"] == 255
    assert tmpfs["refs"]["unexplained"] == 1
    # the other removed cgroups are untouched
    for m in data["memcgs"]:
        if m["path"] != "/pins/tmpfs":
            assert sum(m["pages"].values()) == len(pfns.get(m["path"], [])), m["path"]
