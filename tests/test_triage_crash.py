"""triage inside Debian's crash (PyKdump backend) against standalone drgn
triage and against what the guest kernel itself printed.

The ground truth is the guest's serial console: the "CPU: N PID: P Comm: C"
line and the call trace panic() printed for the sysrq crash, and truth/
(panic_string, uname_r).  Where crash and drgn legitimately differ (see
docs/triage.md, "Inside crash"), only what both must agree on is compared:
the frames the kernel's own unwinder called reliable.
"""

import json
import re

import pytest

from crashext.sources import kmsg, logs
import crashbuilds
from test_crash_pack import crash_run, standalone_json

pytestmark = [pytest.mark.pykdump, pytest.mark.vmcore]

_CLONE = re.compile(r"\.(?:isra|constprop|part|cold)(?:\.\d+)*$")


def _norm(name):
    return _CLONE.sub("", name or "")


def _serial_panic(fx):
    """(cpu, pid, comm, reliable frames from panic on) as the guest printed them."""
    heads = [h for h in kmsg.iter_oops(logs.log_lines(str(fx.serial_log)))
             if h.kind == "panic" and "sysrq triggered crash" in h.message]
    assert heads, "no sysrq panic on the serial console"
    h = heads[-1]
    frames = [_norm(f.func) for f in h.trace if not f.unreliable]
    frames = frames[frames.index("panic"):]
    # the entry stub is named by its label in the kernel's trace
    # (entry_SYSCALL_64_after_hwframe) and by its symbol in drgn's
    frames = [f for f in frames if not f.startswith("entry_")]
    return h.cpu, h.pid, h.comm, frames


def _is_subsequence(needle, hay):
    it = iter(hay)
    return all(any(x == y for y in it) for x in needle)


@pytest.fixture(scope="module", params=crashbuilds.PAIRS, ids=lambda p: "-".join(p))
def both(request, vmcore, tmp_path_factory):
    version, suite = request.param
    build = crashbuilds.need(version)
    fx = crashbuilds.suite(vmcore, suite, "memcg-churn")
    out = tmp_path_factory.mktemp("triage") / "triage.json"
    rc, transcript = crash_run(fx, f"triage --json > {out}", build=build)
    assert "crashext: registered" in transcript and "triage" in transcript, transcript[-2000:]
    assert out.exists() and out.stat().st_size > 0, transcript[-2000:]
    assert "Traceback" not in transcript and "internal error" not in transcript
    return fx, json.loads(out.read_text()), standalone_json(fx, "triage")


def _xfail_if_bt_skips(rep):
    """Seen on a freshly built 5.10 dump (not on every build of it): crash
    8.0.6's `bt` went from panic straight to do_syscall_64, where Debian's
    crash 8.0.2 on the same dump shows the sysrq frames in between (not seen
    with 9.0.2+abcb45e, which replaced 8.0.6 here).  A limit of that crash's
    unwinder, not of the pack; the frames (and the verdict elements that
    read them) then differ from drgn's.  Only that shape."""
    names = [_norm(f["function"]) for f in rep["panic"]["frames"]]
    if names[:2] == ["panic", "do_syscall_64"]:
        pytest.xfail("crash's bt skips from panic to do_syscall_64 (seen with crash 8.0.6 on a 5.10 dump)")


def test_same_verdict_inside_crash(both):
    fx, inside, alone = both
    _xfail_if_bt_skips(inside)
    for rep in (inside, alone):
        v = rep["verdict"]
        assert [m["id"] for m in v["matches"]] == ["sysrq-triggered-crash"]
        assert v["deliberate"] is True
        assert v["headline"].startswith("deliberate panic: sysrq triggered crash")
    # the same elements decided the same way in both homes
    el = lambda rep: {e["element"]: e["status"] for e in rep["verdict"]["matches"][0]["elements"]}
    assert el(inside) == el(alone)


def test_same_panicking_task_as_drgn_and_the_serial_console(both):
    fx, inside, alone = both
    cpu, pid, comm, _ = _serial_panic(fx)
    for rep in (inside, alone):
        p = rep["panic"]
        assert (p["cpu"], p["pid"], p["comm"]) == (cpu, pid, comm)
        assert p["source"] == "dump" and p["errors"] == {}
        assert p["rip"] is None     # panic() called directly: no exception frame
    assert inside["panic"]["task"] == alone["panic"]["task"]


def test_backtraces_hold_the_kernels_reliable_frames(both):
    fx, inside, alone = both
    _, _, _, kernel = _serial_panic(fx)
    assert kernel[:2] == ["panic", "sysrq_handle_crash"]
    _xfail_if_bt_skips(inside)
    crash_names = [_norm(f["function"]) for f in inside["panic"]["frames"]]
    drgn_names = [_norm(f["function"]) for f in alone["panic"]["frames"] if not f.get("inline")]
    # crash 8.0.6 on the 6.12 dump started the panicking task's backtrace at
    # panic()'s caller: 6.12's panic() is a wrapper of vpanic() (where the CPU
    # spins when QEMU writes the dump) and crash shows neither frame (seen
    # here; why crash's unwinder skips them was not traced).  Then the
    # kernel's frames from that caller on must all be there
    want = kernel if crash_names[:1] == ["panic"] else kernel[kernel.index("panic") + 1:]
    assert crash_names[:1] == want[:1], (kernel, crash_names)
    assert _is_subsequence(want, crash_names), (kernel, crash_names)
    assert _is_subsequence(kernel, drgn_names), (kernel, drgn_names)


def test_system_and_memory_equal_and_every_section_has_content(both):
    fx, inside, alone = both
    truth = fx.truth_dir
    for rep in (inside, alone):
        s = rep["system"]
        assert s["panic"] == (truth / "panic_string").read_text().strip()
        assert s["release"] == (truth / "uname_r").read_text().strip()
        for k in ("machine", "cpus", "memory_bytes", "uptime", "panic_time"):
            assert s[k], (k, s)
        assert rep["panic"]["frames"]
        assert rep["memory"]["memcg"]["summary"]["total"] >= 1
        assert rep["memory"]["errors"] == {} and rep["errors"] == {}
    for k in ("release", "machine", "cpus", "memory_bytes", "nodename", "panic", "panic_time"):
        assert inside["system"][k] == alone["system"][k], k
    assert inside["memory"] == alone["memory"]
