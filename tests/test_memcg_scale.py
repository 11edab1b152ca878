"""memcgids at scale: a real 5.10 dump holding 15,000 dying memcgs.

The guest (scenario memcg-many) created and removed 15,000 charged cgroups
and recorded their count and inode range (truth/many_summary); every one
of them must be found, dying, with its cgroup id in that range, and none
flagged.  Slow: the dump takes about 4-5 minutes to build.
"""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.vmcore
def test_fifteen_thousand_dying_memcgs(vmcore):
    fx = vmcore("bullseye", "memcg-many")
    summary = dict(line.split("=", 1) for line in
                   open(fx.truth_dir / "many_summary").read().split() if "=" in line)
    count = int(summary["count"])
    first, last = int(summary["first_ino"]), int(summary["last_ino"])
    assert count >= 15000
    proc = subprocess.run([sys.executable, "-m", "crashext", "memcgids", "--json", "--dying",
                           "-c", str(fx.vmcore), "-s", str(fx.vmlinux)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    many = [m for m in data["memcgs"] if m["path"].startswith("/many/")]
    assert len(many) == count
    assert all(m["state"] == "dying" for m in many)
    ids = sorted(m["cgroup_id"] for m in many)
    assert first <= ids[0] and ids[-1] <= last
    assert len(set(ids)) == count
    assert data["summary"]["dying"] >= count and data["summary"]["flagged"] == 0
    # a walk this long reports its progress on stderr
    assert "memcgs read:" in proc.stderr
