"""--watch: bounded by --count, prints changes, Ctrl-C ends it cleanly."""

import io
import json
import os
import subprocess
import sys
import time

import pytest

from crashext.errors import InputError, ReadError
from crashext.watch import check_interval, watch


class FakeClock:
    def __init__(self):
        self.now = 1_000_000.0
        self.slept = []

    def time(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)
        self.now += s


def test_changes_only_and_count_bound():
    values = iter([{"dying": 6, "online": 17}, {"dying": 6, "online": 17},
                   {"dying": 8, "online": 16}, {"dying": 9, "online": 16}])
    out, clk = io.StringIO(), FakeClock()
    rc = watch(lambda: next(values), 2.0, out, count=3, header="x", clock=clk.time,
               sleep=clk.sleep)
    assert rc == 0
    lines = out.getvalue().splitlines()
    # full first sample, "no change", then the two changes of sample 3; the 4th never taken
    assert "watching x every 2 s, 3 samples" in lines[0]
    assert lines[1].endswith("dying: 6") and lines[2].endswith("online: 17")
    assert lines[3].endswith("no change")
    assert lines[4].endswith("dying: 6 -> 8 (+2)") and lines[5].endswith("online: 17 -> 16 (-1)")
    assert len(lines) == 6
    assert clk.slept == [2.0, 2.0]


def test_ctrl_c_ends_cleanly():
    n = [0]

    def sample():
        n[0] += 1
        if n[0] == 3:
            raise KeyboardInterrupt
        return {"v": n[0]}

    out, clk = io.StringIO(), FakeClock()
    assert watch(sample, 1, out, clock=clk.time, sleep=clk.sleep) == 0
    assert out.getvalue().splitlines()[-1].endswith("stopped after 2 samples")


def test_failed_sample_reported_and_loop_goes_on():
    seq = [{"v": 1}, ReadError("cannot read kernel memory at 0x10 (not in the dump)"), {"v": 2}]

    def sample():
        x = seq.pop(0)
        if isinstance(x, Exception):
            raise x
        return x

    out, err, clk = io.StringIO(), io.StringIO(), FakeClock()
    watch(sample, 1, out, count=3, err=err, clock=clk.time, sleep=clk.sleep)
    assert "sample 2 failed: cannot read kernel memory" in err.getvalue()
    assert out.getvalue().splitlines()[-1].endswith("v: 1 -> 2 (+1)")


def test_json_lines():
    vals = iter([{"a": 1}, {"a": 3}])
    out, clk = io.StringIO(), FakeClock()
    watch(lambda: next(vals), 1, out, count=2, json_lines=True, clock=clk.time, sleep=clk.sleep)
    recs = [json.loads(ln) for ln in out.getvalue().splitlines()]
    assert [r["sample"] for r in recs] == [1, 2]
    assert recs[1]["changes"] == {"a": [1, 3]} and recs[0]["changes"] == {}


@pytest.mark.parametrize("secs,count,msg", [(0, None, "positive"), (-1, None, "positive"),
                                            (None, 3, "needs --watch"), (1, 0, "at least 1")])
def test_bad_options(secs, count, msg):
    with pytest.raises(InputError, match=msg):
        check_interval(secs, count)


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "crashext", *args], capture_output=True,
                          text=True, timeout=120, **kw)


def test_frag_proc_watch_on_this_machine():
    if not os.path.exists("/proc/buddyinfo"):
        pytest.skip("no /proc/buddyinfo here")
    p = _cli("frag", "--proc", "/proc", "--watch", "0.2", "--count", "3", "--json")
    assert p.returncode == 0, p.stderr
    recs = [json.loads(ln) for ln in p.stdout.splitlines()]
    assert [r["sample"] for r in recs] == [1, 2, 3]
    zones = []
    with open("/proc/buddyinfo") as f:
        for ln in f:
            parts = ln.split()
            zones.append(f"Node {parts[1].rstrip(',')} {parts[3]}")
    for r in recs:
        for z in zones:
            assert f"{z} highest free order" in r["values"]


def test_sys_watch_sees_a_cgroup_dying(tmp_path):
    """A cgroup removed while the watch runs shows as dying +1 (cgroup.stat)."""
    root = tmp_path / "cg"
    (root / "pod1").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("memory\n")
    (root / "cgroup.stat").write_text("nr_descendants 1\nnr_dying_descendants 0\n")
    proc = subprocess.Popen([sys.executable, "-m", "crashext", "memcgids", "--sys", str(root),
                             "--proc", str(tmp_path), "--watch", "1.5", "--count", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert "watching cgroupfs" in first
    # what the kernel does at rmdir of a charged cgroup: the directory goes,
    # the parent's cgroup.stat moves it from descendants to dying
    (root / "pod1").rmdir()
    (root / "cgroup.stat").write_text("nr_descendants 0\nnr_dying_descendants 1\n")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "dying: 0 -> 1 (+1)" in out
    assert "visible cgroups: 2 -> 1 (-1)" in out


def test_watch_refuses_a_dump(tmp_path):
    p = _cli("frag", "-c", "/nonexistent/vmcore", "-s", "/nonexistent/vmlinux", "--watch", "1")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
