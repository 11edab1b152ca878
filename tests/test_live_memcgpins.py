"""memcgpins on a running guest whose memcgs are born, die and are freed
while it reads (tests/live/scenarios/live-pins.sh, drgn over QMP, the VM
not stopped).

The guest first leaves 20 removed cgroups each held by one tmpfs page (their
inode numbers printed as held.tsv), then loops: make a cgroup, charge a
tmpfs page from it, remove the cgroup, delete the file of two rounds ago.
So between memcgpins' memcg walk and its page pass memcgs are freed, and
pages appear charged to memcgs the walk never saw.  Every run must end with
a JSON answer that says it is live, never a traceback, and still find the
20 held memcgs, each with its page.
"""

import json
import subprocess
import sys

import pytest

from conftest import fixturelib, truthmod  # noqa: F401  (loads tests/vmcore modules)
from live import guest

pytestmark = pytest.mark.vmcore


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    kernel = fixturelib.get_kernel("bookworm")
    try:
        with guest.ready_guest(kernel, "live-pins", tmp_path_factory.mktemp("live-pins")) as g:
            yield g, kernel
    except guest.GuestError as exc:
        pytest.fail(str(exc), pytrace=False)


def test_memcgpins_while_memcgs_come_and_go(running):
    g, kernel = running
    held = truthmod.parse_tsv(g.blocks()["held.tsv"])
    assert len(held) == 20
    for _ in range(3):
        p = subprocess.run([sys.executable, "-m", "crashext", "memcgpins", "--json",
                            "--qemu", str(g.qmp_socket), "-s", str(kernel.vmlinux)],
                           capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, p.stderr[-2000:]
        assert "Traceback" not in p.stderr
        data = json.loads(p.stdout)
        assert data["summary"]["live"] is True
        by_path = {m["path"]: m for m in data["memcgs"]}
        for row in held:
            m = by_path[row["path"]]
            assert m["cgroup_id"] == row["ino"]
            assert m["pages"]["shmem"] == 1 and m["held_by"][0] == "shmem"
        # the churning ones: whatever was caught, each with at most its page
        for path, m in by_path.items():
            if path.startswith("/pins/c"):
                assert sum(m["pages"].values()) <= 1, m
