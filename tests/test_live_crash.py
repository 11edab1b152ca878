"""crash on a running kernel, inside a guest with a real Debian root file system.

The guest boots the bookworm fixture kernel with a debootstrapped bookworm
root (tests/live/rootfs.py, cached under ~/.cache/crashext/live/) holding
Debian's crash 8.0.2 and Python 3.11; the payload adds crashext, PyKdump's
mpykdump.so (from CRASHEXT_PYKDUMP) and the kernel's debug vmlinux.  Inside,
the guest makes memory cgroups (some removed while charged, so dying),
saves its own /proc/buddyinfo, cgroup tree and /proc/cgroups, then runs
``crash -s VMLINUX`` live (/proc/kcore) with the pack loaded and
``memcgids --json`` and ``frag --json``; then ``crashext ... -k`` through
drgn in the same guest.  Results come back over the serial console.

Emulated (TCG) and slow: marked ``slow`` -- CI runs it once.
"""

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from conftest import fixturelib, truthmod  # noqa: F401
from crashext.crashenv import pykdump_path
from live import guest, rootfs

pytestmark = [pytest.mark.slow, pytest.mark.vmcore]

REPO = Path(__file__).resolve().parent.parent
MPYKDUMP = pykdump_path()

RUN_SH = r"""#!/bin/sh
# runs as PID 1's child in the guest (tests/test_live_crash.py)
CG=/sys/fs/cgroup
REL=$(uname -r)
VMLINUX=/boot/vmlinux-$REL
echo +memory > $CG/cgroup.subtree_control
mkdir -p $CG/kubepods/pod1 $CG/kubepods/pod2
echo +memory > $CG/kubepods/cgroup.subtree_control
for p in pod1 pod2; do
  echo +memory > $CG/kubepods/$p/cgroup.subtree_control
  for c in ctr1 ctr2 ctr3; do
    mkdir $CG/kubepods/$p/$c
    sh -c "echo \$\$ > $CG/kubepods/$p/$c/cgroup.procs; mkdir -p /tmp/$p$c; \
      dd if=/dev/zero of=/tmp/$p$c/cache bs=4k count=64 2>/dev/null; \
      for i in \$(seq 100); do : > /tmp/$p$c/f\$i; done"
  done
done
printf 'path\tino\n' > /tmp/removed.tsv
for d in kubepods/pod1/ctr2 kubepods/pod2/ctr1 kubepods/pod2/ctr3; do
  printf '/%s\t%s\n' $d $(stat -c %i $CG/$d) >> /tmp/removed.tsv
  rmdir $CG/$d
done
sync; sleep 2
emit() {
  echo
  echo "@@CRASHEXT:LBEGIN $1@@"
  base64 "$2"
  echo "@@CRASHEXT:LEND $1 $(sha256sum < "$2" | cut -d' ' -f1)@@"
}
find $CG -type d | sort | while read -r d; do
  rel=${d#$CG}; printf '%s\t%s\n' "${rel:-/}" $(stat -c %i "$d")
done > /tmp/tree.tsv
cat /proc/cgroups > /tmp/proc_cgroups
cat /proc/buddyinfo > /tmp/buddy_before
emit tree.tsv /tmp/tree.tsv
emit removed_charged.tsv /tmp/removed.tsv
emit proc_cgroups /tmp/proc_cgroups
emit buddy_before /tmp/buddy_before
if [ -f /opt/pykdump/mpykdump.so ]; then
  export PYKDUMPPATH=/usr/lib/python3.11:/usr/lib/python3.11/lib-dynload:/opt/crashext/epython:/opt/crashext:/usr/lib/python3/dist-packages
  t0=$(cut -d' ' -f1 /proc/uptime)
  printf '%s\n' "extend /opt/pykdump/mpykdump.so" \
    "epython /opt/crashext/epython/crashext_init.py" \
    "memcgids --json > /tmp/crash_memcgids.json" \
    "frag --json > /tmp/crash_frag.json" "q" > /tmp/crash.in
  crash -s $VMLINUX < /tmp/crash.in > /tmp/crash.out 2>&1
  echo "crash exit $?" >> /tmp/crash.out
  t1=$(cut -d' ' -f1 /proc/uptime)
  echo "$t0 $t1" > /tmp/crash_time
  cat /proc/buddyinfo > /tmp/buddy_after_crash
  emit crash.out /tmp/crash.out
  emit crash_time /tmp/crash_time
  for f in crash_memcgids.json crash_frag.json buddy_after_crash; do
    [ -f /tmp/$f ] && emit $f /tmp/$f
  done
fi
export PYTHONPATH=/opt/crashext:/opt/crashext-site
t0=$(cut -d' ' -f1 /proc/uptime)
python3 -m crashext memcgids -k -s $VMLINUX --json > /tmp/drgn_memcgids.json 2> /tmp/drgn.err
python3 -m crashext frag -k -s $VMLINUX --json > /tmp/drgn_frag.json 2>> /tmp/drgn.err
t1=$(cut -d' ' -f1 /proc/uptime)
echo "$t0 $t1" > /tmp/drgn_time
cat /proc/buddyinfo > /tmp/buddy_after_drgn
for f in drgn_memcgids.json drgn_frag.json drgn.err drgn_time buddy_after_drgn; do
  emit $f /tmp/$f
done
"""


def _site_dir(mod):
    return Path(__import__(mod).__file__).resolve().parent


@pytest.fixture(scope="module")
def guest_run(tmp_path_factory):
    try:
        import drgn  # noqa: F401
    except ImportError:
        pytest.skip("drgn is not installed on the host (copied into the guest for -k)")
    kernel = fixturelib.get_kernel("bookworm")
    wd = tmp_path_factory.mktemp("live-crash")
    t0 = time.monotonic()
    tree = rootfs.rootfs_tree()
    t_rootfs = time.monotonic() - t0
    site = Path(sys.modules["drgn"].__file__).resolve().parent.parent
    payload = {
        "/payload/run.sh": RUN_SH,
        "/opt/crashext/crashext": REPO / "crashext",
        "/opt/crashext/epython": REPO / "epython",
        "/opt/crashext-site/drgn": site / "drgn",
        "/opt/crashext-site/_drgn_util": site / "_drgn_util",
        "/opt/crashext-site/drgn.libs": site / "drgn.libs",
        "/boot/vmlinux-" + kernel.release: kernel.vmlinux,
    }
    for so in site.glob("_drgn.cpython-*.so"):
        payload["/opt/crashext-site/" + so.name] = so
    if os.path.isfile(MPYKDUMP):
        payload["/opt/pykdump/mpykdump.so"] = Path(MPYKDUMP)
    t1 = time.monotonic()
    image = rootfs.build_image(tree, payload, wd / "root.img")
    t_image = time.monotonic() - t1
    with guest.LiveGuest(wd, kernel, cmdline="root=/dev/nvme0n1 rw init=/crashext-init " + os.environ.get("CRASHEXT_LIVE_CMDLINE", ""),
                         memory="2G", drives=[image]) as g:
        try:
            booted = g.wait_for("LIVE_BOOTED", 300)
            done = g.wait_for("LIVE_EXIT", 3600)
        except guest.GuestError as exc:
            pytest.fail(str(exc), pytrace=False)
        blocks = g.blocks()
    shutil.rmtree(wd / "root.img", ignore_errors=True)
    try:
        os.unlink(image)
    except OSError:
        pass
    blocks["_timings"] = {"rootfs": round(t_rootfs, 1), "image": round(t_image, 1),
                          "booted": booted, "done": done}
    print("live-crash timings:", blocks["_timings"])
    return blocks


def _check_memcgs(data, blocks):
    tree = {ln.split("\t")[0]: int(ln.split("\t")[1])
            for ln in blocks["tree.tsv"].splitlines() if ln.strip()}
    removed = {r["path"]: r["ino"] for r in truthmod.parse_tsv(blocks["removed_charged.tsv"])}
    online = {m["path"]: m["cgroup_id"] for m in data["memcgs"] if m["state"] == "online"}
    dying = {m["path"]: m["cgroup_id"] for m in data["memcgs"] if m["state"] == "dying"}
    assert online == tree
    # the cgroups removed while charged are dying memcgs (others may be dying
    # too: the guest's own boot leaves none, but be exact about ours)
    assert {p: i for p, i in dying.items() if p in removed} == removed
    num = truthmod.parse_proc_cgroups(blocks["proc_cgroups"])["memory"]["num_cgroups"]
    assert data["summary"]["total"] == num


def _check_frag(data, blocks, after_name):
    """Buddy counts move while crash/drgn themselves run (gdb takes hundreds
    of MB): the zones must be the guest's, and each zone's free pages must
    lie between what /proc/buddyinfo said before and after (+-5%)."""
    before = truthmod.parse_buddyinfo(blocks["buddy_before"])
    after = truthmod.parse_buddyinfo(blocks[after_name])
    got = {(z["node"], z["zone"]): z["nr_free"] for z in data["zones"]}
    assert set(got) == set(before)
    for key, nr in got.items():
        pages = [sum(n << o for o, n in enumerate(x[key])) for x in (before, after)]
        mine = sum(n << o for o, n in enumerate(nr))
        assert min(pages) * 0.95 <= mine <= max(pages) * 1.05, (key, mine, pages)


@pytest.mark.skipif(not os.path.isfile(MPYKDUMP),
                    reason=f"PyKdump not available: {MPYKDUMP} missing (set CRASHEXT_PYKDUMP)")
def test_crash_live_inside_guest(guest_run):
    b = guest_run
    assert "crash.out" in b, "the guest ran no crash"
    if "cannot set context for pid" in b["crash.out"] and "crash exit 139" in b["crash.out"]:
        # seen 2026-11 with Debian's crash 8.0.2 live on 6.1.0-56-cloud-amd64
        # (/proc/kcore, with and without nokaslr): crash segfaults before its
        # prompt, before any extension loads -- crash's own live start-up,
        # not the pack.  Anything else fails the test.
        pytest.xfail("crash 8.0.2 live on this 6.1 kernel: 'cannot set context for "
                     "pid', segfault before the prompt")
    assert "crashext: registered" in b["crash.out"], b["crash.out"][-2000:]
    assert "crash_memcgids.json" in b, b["crash.out"][-2000:]
    mem = json.loads(b["crash_memcgids.json"])
    _check_memcgs(mem, b)
    _check_frag(json.loads(b["crash_frag.json"]), b, "buddy_after_crash")
    t0, t1 = map(float, b["crash_time"].split())
    print(f"crash live in the guest: {t1 - t0:.0f} s")


def test_drgn_live_inside_guest(guest_run):
    b = guest_run
    assert "drgn_memcgids.json" in b and b["drgn_memcgids.json"].strip(), b.get("drgn.err")
    mem = json.loads(b["drgn_memcgids.json"])
    _check_memcgs(mem, b)
    assert mem["summary"]["live"]["source"] == "live kernel"
    _check_frag(json.loads(b["drgn_frag.json"]), b, "buddy_after_drgn")
    t0, t1 = map(float, b["drgn_time"].split())
    print(f"crashext -k in the guest: {t1 - t0:.0f} s")
