"""A real Debian root filesystem for the live-crash test, cached.

``rootfs_tree()`` debootstraps bookworm (minbase plus crash, Python 3.11's
shared library and stdlib, tabulate) once into
``~/.cache/crashext/live/rootfs-<key>/tree``; the key hashes every input
(suite, package list, mirror, this file's init script), so a change rebuilds
it.  ``build_image()`` then lays the per-run payload (crashext's source, the
PyKdump extension, the guest kernel's debug vmlinux, the script to run) over
a hard-linked copy of the tree and writes an ext4 image with
``mkfs.ext4 -d`` -- no loop mounts, no root filesystem of the host touched.

The guest boots it as root on NVMe (built into the Debian cloud kernel;
virtio-blk is a module there) with ``init=/crashext-init``, which mounts
/proc, /sys, /dev and runs ``/payload/run.sh``.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VMCORE_DIR = HERE.parent / "vmcore"
if str(VMCORE_DIR) not in sys.path:
    sys.path.insert(0, str(VMCORE_DIR))
import fixturelib  # noqa: E402  (tests/vmcore/fixturelib.py, shared)

SUITE = "bookworm"
# crash: Debian's crash 8.0.2 (the one PyKdump was built against);
# libpython3.11: the shared libpython mpykdump.so links; its -stdlib
# dependency gives /usr/lib/python3.11; python3: the -k fallback;
# libmpfr6: gdb 16's MPFR, which the crash 9.x of scripts/build-pykdump
# links (Debian's crash package brings the other libraries it links).
PACKAGES = ["crash", "libpython3.11", "python3", "python3-tabulate", "kmod", "libmpfr6"]

# PID 1 of the guest: mount the pseudo file systems, run the payload, power
# off.  Output goes to the serial console (ttyS0).
INIT = """#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tmpfs tmpfs /tmp
mkdir -p /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "@@CRASHEXT:LIVE_BOOTED@@"
if [ -x /payload/run.sh ]; then
    /payload/run.sh
    echo "@@CRASHEXT:LIVE_EXIT $?@@"
else
    echo "@@CRASHEXT:FAIL no /payload/run.sh@@"
fi
sync
echo o > /proc/sysrq-trigger
sleep 1000
"""


class RootfsError(Exception):
    """The root file system could not be built; one clear line."""


def rootfs_key(mirror):
    h = hashlib.sha256()
    for part in (SUITE, " ".join(PACKAGES), mirror, INIT, "v1"):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


def rootfs_tree(log=print):
    """The cached debootstrapped tree (built on first use, ~3-5 min)."""
    mirror, _security = fixturelib.machine_mirrors()
    key = rootfs_key(mirror)
    base = fixturelib.cache_root() / "live" / ("rootfs-" + key)
    tree = base / "tree"
    done = base / "done.json"
    with fixturelib.file_lock(base / ".lock"):
        if done.exists() and tree.is_dir():
            return tree
        if tree.exists():
            shutil.rmtree(tree)
        if not shutil.which("debootstrap"):
            raise RootfsError("debootstrap is not installed (apt-get install debootstrap)")
        t0 = time.monotonic()
        log("debootstrap %s into %s" % (SUITE, tree))
        p = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
             SUITE, str(tree), mirror],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            tail = " | ".join(p.stdout.strip().splitlines()[-3:])
            raise RootfsError("debootstrap failed (exit %d): %s" % (p.returncode, tail))
        init = tree / "crashext-init"
        init.write_text(INIT)
        init.chmod(0o755)
        # apt's package cache is not needed in the guest
        for deb in (tree / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        done.write_text(json.dumps({"key": key, "suite": SUITE, "packages": PACKAGES,
                                    "mirror": mirror,
                                    "seconds": round(time.monotonic() - t0, 1)}) + "\n")
        return tree


def _size_of(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def build_image(tree, payload, image, slack_mb=1024):
    """Write ``image``: ``tree`` with ``payload`` ({guest path: host path or
    bytes}) laid over it, as ext4 sized to fit plus ``slack_mb``."""
    image = Path(image)
    stage = image.with_suffix(".stage")
    if stage.exists():
        shutil.rmtree(stage)
    # hard links: no copy of the tree's ~300 MB (same file system as the cache)
    subprocess.run(["cp", "-al", str(tree), str(stage)], check=True)
    try:
        for gpath, src in payload.items():
            dest = stage / gpath.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, (bytes, str)) and not isinstance(src, Path):
                data = src.encode() if isinstance(src, str) else src
                dest.write_bytes(data)
                dest.chmod(0o755)
            elif Path(src).is_dir():
                shutil.copytree(src, dest, symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                try:
                    os.link(src, dest)
                except OSError:
                    shutil.copy2(src, dest)  # keeps the mode (a crash binary)
        size_mb = _size_of(stage) // (1 << 20) + slack_mb
        if image.exists():
            image.unlink()
        p = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "crashext-live", "-d", str(stage),
                            str(image), "%dM" % size_mb],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            raise RootfsError("mkfs.ext4 -d failed: %s" % p.stdout.strip().splitlines()[-1:])
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return image


if __name__ == "__main__":
    print(rootfs_tree(log=lambda m: print(m, file=sys.stderr)))
