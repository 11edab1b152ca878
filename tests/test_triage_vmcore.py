"""triage on real dumps (sysrq panics under QEMU): a deliberate panic, nothing
else matched, and every section with content checked against the guest's
serial console and truth/ (tests/vmcore/)."""

import re

import pytest

from crashext.analysis.evidence import TriageInputs, triage

pytestmark = pytest.mark.vmcore

CASES = [("bookworm", "memcg-churn"), ("bullseye", "memcg-churn"), ("trixie", "memcg-churn"),
         ("bookworm", "nokmem"), ("bookworm", "cgroup-v1"), ("trixie-backports", "memcg-churn")]


def _serial_task(fx):
    """The "CPU: N PID: P Comm: C" line the panic printed on the serial console."""
    text = fx.serial_log.read_text(errors="replace")
    after = text[text.index("sysrq triggered crash"):]
    # lib/dump_stack.c dump_stack_print_info(): "CPU: %d PID: %d Comm:" up to 6.6,
    # "CPU: %d UID: %u PID: %d Comm:" in 6.12 and 7.3 (their serial logs show it)
    m = re.search(r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (\S+)", after)
    return int(m.group(1)), int(m.group(2)), m.group(3)


@pytest.mark.parametrize("suite,scenario", CASES)
def test_sysrq_dump_is_a_deliberate_panic(vmcore, suite, scenario):
    from crashext.kernel import drgn_backend
    fx = vmcore(suite, scenario)
    t = drgn_backend.open_core(str(fx.vmcore), str(fx.vmlinux))
    rep = triage(TriageInputs(target=t))
    v = rep["verdict"]
    assert [m["id"] for m in v["matches"]] == ["sysrq-triggered-crash"]
    assert v["deliberate"] and v["headline"].startswith("deliberate panic: sysrq triggered crash")
    truth = (fx.truth_dir / "panic_string").read_text().strip()
    assert rep["system"]["panic"] == truth
    assert rep["system"]["release"] == (fx.truth_dir / "uname_r").read_text().strip()
    cpu, pid, comm = _serial_task(fx)
    p = rep["panic"]
    assert (p["cpu"], p["pid"], p["comm"]) == (cpu, pid, comm)
    names = [f["function"] for f in p["frames"]]
    assert "sysrq_handle_crash" in names and "panic" in names
    assert p["rip"] is None          # panic() is not an exception
    mc = rep["memory"]["memcg"]
    assert mc is not None, rep["memory"]["errors"]
    truth = fx.truth()
    # the system section: what the guest's /proc/meminfo and uname said
    s = rep["system"]
    assert s["memory_bytes"] == truth["meminfo"]["MemTotal"] * 1024
    assert s["machine"] in (fx.truth_dir / "uname_a").read_text().split()
    assert s["cpus"] and s["uptime"] and s["panic_time"]
    # the memory section: as many dying memcgs as the kernel's cgroup.stat
    # counts (those the scenario removed while charged; none on 7.3)
    if truth["cgroup_mode"] == "v2":
        assert mc["summary"]["dying"] == truth["cgroup_stat"]["/"]["nr_dying_descendants"]
    else:  # v1 (5.10, 6.1 only): /proc/cgroups counts them, they are the six removed
        assert mc["summary"]["dying"] == len(truth["removed_charged.tsv"]) == \
            truth["proc_cgroups"]["memory"]["num_cgroups"] - len(truth["cgroup_tree.tsv"])
    assert mc["summary"]["online"] >= 1
    assert rep["memory"]["allocation_failures"] == []  # none in these guests' logs
    assert rep["errors"] == {} and rep["memory"]["errors"] == {}


def test_log_of_another_kernel_is_refused(vmcore):
    """--log with a dump: the guest's own serial log is accepted (same release
    in its CPU: lines), the RHEL7 idr-bug log is not this dump's and is refused."""
    import os
    from crashext.errors import InputError
    from crashext.kernel import drgn_backend
    from crashext.sources.logs import load_log
    fx = vmcore("bullseye", "memcg-churn")
    t = drgn_backend.open_core(str(fx.vmcore), str(fx.vmlinux))
    own = triage(TriageInputs(target=t, log_lines=load_log(str(fx.serial_log))))
    assert [m["id"] for m in own["verdict"]["matches"]] == ["sysrq-triggered-crash"]
    seed = os.path.join(os.path.dirname(__file__), "data", "logs",
                        "rhel7-3.10.0-693.2.2-idr-bug.dmesg")
    with pytest.raises(InputError, match="3.10.0-693.2.2.el7.x86_64 but the dump runs 5.10"):
        triage(TriageInputs(target=t, log_lines=load_log(seed)))


@pytest.mark.parametrize("suite", ["bookworm", "bullseye"])
def test_missing_values_render_as_memcgids_does(vmcore, suite):
    """6.1 has no per-kmemcg-id arrays (memcg_nr_cache_ids went in v5.18), so
    the capacity is unknown: triage prints it as memcgids does ("-", never
    "None"), through the same phrase; on 5.10 both print the kernel's number."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    fx = vmcore(suite, "memcg-churn")

    def cli(*args):
        p = subprocess.run([sys.executable, "-m", "crashext", *args, "-c", str(fx.vmcore),
                            "-s", str(fx.vmlinux)], capture_output=True, text=True,
                           timeout=600, cwd=root, env={"PYTHONPATH": str(root),
                                                       "PATH": "/usr/bin:/bin"})
        assert p.returncode == 0, p.stderr
        return p.stdout
    tri = cli("triage")
    ids = cli("memcgids")
    kmem = re.search(r"^\s*KMEM IDS: (.*)$", ids, re.M).group(1)
    line = next(ln.strip() for ln in tri.splitlines() if ln.strip().startswith("memcgs:"))
    assert line.endswith(f"kmem ids {kmem}")
    # no value printed as Python's None (the knowledge base's "None needed." is prose)
    assert [ln for ln in tri.splitlines()
            if re.search(r"\bNone\b", ln) and "None needed" not in ln] == []
    import json
    cap = json.loads(cli("memcgids", "--json"))["summary"]["kmem_id_capacity"]
    if suite == "bookworm":
        assert cap is None and "capacity -" in line
    else:
        assert isinstance(cap, int) and f"capacity {cap} (memcg_nr_cache_ids)" in line


def test_triage_reads_the_memcgs_once(vmcore, monkeypatch):
    """The memcg evidence and memcgpins share one walk of the memcgs (on
    the 15,000-memcg dump that walk is a third of triage's time), and
    memcgpins' section is the one the command's own walk gives."""
    from crashext.analysis import memcg, memcgpins
    from crashext.kernel import drgn_backend
    fx = vmcore("bookworm", "memcg-pins")
    t = drgn_backend.open_core(str(fx.vmcore), str(fx.vmlinux))
    scans = []
    real = memcg.memcg_scan

    def counted(*args, **kw):
        scans.append(args)
        return real(*args, **kw)
    monkeypatch.setattr(memcg, "memcg_scan", counted)
    monkeypatch.setattr(memcgpins, "memcg_scan", counted)
    rep = triage(TriageInputs(target=t))
    assert len(scans) == 1
    assert "memcg" not in rep["memory"]["errors"] and "memcgpins" not in rep["memory"]["errors"]
    alone = memcgpins.memcg_pins(t, top=memcgpins.TOP_FILES).summary
    assert len(scans) == 2
    assert rep["memory"]["memcgpins"] == alone
    assert rep["memory"]["memcgpins"]["dying"] == rep["memory"]["memcg"]["summary"]["dying"] > 0
