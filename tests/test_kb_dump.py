"""Knowledge-base entries whose evidence only a dump gives, on real fixture dumps.

memcg-many (tests/vmcore/scenarios/memcg-many.sh): the guest created and
removed 15,000+ charged memory cgroups (truth/many_summary counts them), so
they are dying: dying-memcg-accumulation must match; 15,000 ids are far from
the 65535 limit, so memcg-id-exhaustion must not.  Slow: the dump takes
4-5 minutes to build (the same fixture as tests/test_memcg_scale.py).
"""

import pytest

from crashext.analysis.evidence import TriageInputs, triage


@pytest.mark.slow
@pytest.mark.vmcore
def test_many_dying_memcgs_match_the_dying_entry_not_id_exhaustion(vmcore):
    fx = vmcore("bullseye", "memcg-many")
    summary = dict(line.split("=", 1) for line in
                   open(fx.truth_dir / "many_summary").read().split() if "=" in line)
    count = int(summary["count"])
    assert count >= 15000
    from crashext.kernel import drgn_backend
    t = drgn_backend.open_core(str(fx.vmcore), str(fx.vmlinux))
    rep = triage(TriageInputs(target=t))
    mc = rep["memory"]["memcg"]["summary"]
    assert mc["dying"] >= count > mc["online"]
    ids = {m["id"]: m for m in rep["verdict"]["matches"]}
    assert "dying-memcg-accumulation" in ids
    el = {e["element"]: e["status"] for e in ids["dying-memcg-accumulation"]["elements"]}
    assert el["dump: many dying memory cgroups (more than online, and more than 100)"] == "matched"
    assert "memcg-id-exhaustion" not in ids
    # the guest panicked with SysRq-c: the match that explains the panic comes
    # first, the condition after it
    assert rep["verdict"]["matches"][0]["id"] == "sysrq-triggered-crash"
    assert rep["verdict"]["headline"].startswith("deliberate panic: ")
