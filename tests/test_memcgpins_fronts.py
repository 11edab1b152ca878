"""memcgpins where triage, the HTML report and the exporter show it, on the
memcg-pins dumps of 6.1 (bookworm) and 7.3 (trixie-backports).

Each front end shows the summary the memcgpins command makes of the same
dump, and that summary's counts are the kernel's own view: the pages each
removed cgroup had by kind and its memory.swap.current, recorded by the
guest just before the removal (truth/pins.tsv), under the rules of the
dump's kernel generation (what is handed to the parent at removal), read as
tests/test_memcgpins_vmcore.py reads them; the number of dying memcgs is the
kernel's nr_dying_descendants (truth/cgroup_stat).
"""

import html
import json
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("drgn")

from conftest import fixturelib  # noqa: E402
from exporterlib import _key, parse_text, require_client  # noqa: E402
from test_memcgpins_vmcore import PAGE, _expected, _open, _own, _truth  # noqa: E402

from crashext.analysis.memcgpins_rules import generation  # noqa: E402

pytestmark = pytest.mark.vmcore

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITES = [s for s in ("bookworm", "trixie-backports") if s in fixturelib.SUITES]
KINDS = ("file", "shmem", "anon", "kmem", "slab", "swap")


def _crashext(*args):
    env = dict(os.environ, PYTHONPATH=REPO)
    p = subprocess.run([sys.executable, "-m", "crashext", *args], capture_output=True,
                       text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    return p.stdout


def _src(fx):
    return ["-c", str(fx.vmcore), "-s", str(fx.vmlinux)]


def _kernel_totals(fx):
    """Pages still charged to the dying memcgs by kind, from what the guest
    recorded before each removal and what this kernel hands to the parent."""
    gen = generation(_open(fx))[1]
    totals = dict.fromkeys(KINDS, 0)
    for row in _own(_truth(fx, "pins.tsv")).values():
        for k, n in _expected(row, gen).items():
            totals[k] += n
    return totals


@pytest.fixture(scope="module")
def command(vmcore):
    """suite -> (fixture, the memcgpins command's summary of its dump)."""
    got = {}

    def get(suite):
        if suite not in got:
            fx = vmcore(suite, "memcg-pins")
            got[suite] = (fx, json.loads(_crashext("memcgpins", "--json", *_src(fx)))["summary"])
        return got[suite]
    return get


@pytest.mark.parametrize("suite", SUITES)
def test_command_summary_is_the_kernels_view(command, suite):
    """The anchor the front ends are compared with."""
    fx, s = command(suite)
    assert s["pages"] == _kernel_totals(fx)
    assert s["dying"] == fx.truth()["cgroup_stat"]["/"]["nr_dying_descendants"]


@pytest.mark.parametrize("suite", SUITES)
def test_triage_has_the_summary(command, suite):
    fx, s = command(suite)
    tri = json.loads(_crashext("triage", "--json", *_src(fx)))
    assert tri["memory"]["memcgpins"] == s
    assert "memcgpins" not in tri["memory"]["errors"]
    # the text shows the verdict line and the pages of each kind that holds any
    from crashext.commands.triage import text_report
    text = text_report(tri)
    assert f"  memcgpins: {s['verdict']}\n" in text
    totals = _kernel_totals(fx)
    words = {"file": "page cache", "shmem": "tmpfs/shmem", "anon": "anonymous",
             "swap": "swapped out", "kmem": "kernel", "slab": "slab"}
    for k, n in totals.items():
        assert (f"{n:,} {words[k]}" in text) == (n > 0), k


def test_triage_without_the_page_array_says_why(vmcore, monkeypatch):
    """A dump whose page array cannot be found (here: PageArray.of made to
    fail as it does then) leaves the memcgpins section out with one line;
    the memcg section is still there."""
    from crashext.analysis.evidence import TriageInputs, triage
    from crashext.errors import ReadError
    from crashext.kernel import pages as pages_mod

    def lost(t):
        raise ReadError("mem_section: cannot read the page array")
    monkeypatch.setattr(pages_mod.PageArray, "of", staticmethod(lost))
    fx = vmcore("bookworm", "memcg-pins")
    tri = triage(TriageInputs(target=_open(fx)))
    assert tri["memory"]["memcgpins"] is None
    why = tri["memory"]["errors"]["memcgpins"]
    assert "\n" not in why and "cannot read the page array" in why
    assert tri["memory"]["memcg"]["summary"]["dying"] == \
        fx.truth()["cgroup_stat"]["/"]["nr_dying_descendants"]


@pytest.mark.parametrize("suite", SUITES)
def test_report_section(command, suite, tmp_path):
    fx, s = command(suite)
    out = tmp_path / "pins.html"
    _crashext("report", *_src(fx), "-o", str(out))
    page = out.read_text(encoding="utf-8")
    sec = page[page.index('<section id="memcgpins">'):]
    sec = sec[:sec.index("</section>")]
    verdict = re.search(r'<p id="memcgpins-verdict"><strong>(.*?)</strong>', sec).group(1)
    assert html.unescape(verdict) == s["verdict"]
    rows = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(
        r'<tr data-kind="(\w+)"><td class="l">[^<]*</td><td>([-\d]+)</td><td>(\d+)</td></tr>',
        sec)}
    totals = _kernel_totals(fx)
    for k in KINDS:
        assert rows[k] == (str(totals[k]), str(s["held_by"][k])), k
    for k in ("children", "writeback", "refs"):
        assert (k in rows) == bool(s["held_by"][k]), k
    # the files holding most, as the command names them
    shown = re.findall(r'<td class="l">(/[^<]*)</td></tr>', sec)
    assert shown == [f["path"] for f in s["top_files"] if (f["path"] or "").startswith("/")]


@pytest.mark.parametrize("suite", SUITES)
def test_exporter_metrics(command, suite):
    require_client()
    from prometheus_client import CollectorRegistry, generate_latest
    from crashext.exporter.collector import Collector, KernelCache
    from crashext.kernel import drgn_backend
    fx, s = command(suite)
    cache = KernelCache(lambda: drgn_backend.open_core(str(fx.vmcore), str(fx.vmlinux)),
                        interval=3600, frag=False)
    cache.refresh()
    assert cache.get()[1] is None
    reg = CollectorRegistry()
    reg.register(Collector(kernel=cache))
    got = parse_text(generate_latest(reg).decode())
    assert got[_key("crashext_exporter_source_up", source="kernel")] == 1
    assert got[_key("crashext_exporter_scrape_errors_total", source="kernel")] == 0
    totals = _kernel_totals(fx)
    for k in KINDS:
        assert got[_key("crashext_memcg_dying_pinned_bytes", kind=k)] == totals[k] * PAGE, k
    for k, n in s["held_by"].items():
        assert got[_key("crashext_memcg_dying_held_cgroups", held_by=k)] == n, k
    assert got[_key("crashext_memcg_dying_held_cgroups", held_by="none")] == s["being_freed"]
    held = sum(v for k, v in got.items() if k[0] == "crashext_memcg_dying_held_cgroups")
    assert held == got[_key("crashext_memcg_cgroups", state="dying")] == s["dying"]
