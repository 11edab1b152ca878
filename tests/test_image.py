"""The container image (Dockerfile), built here with buildah by
scripts/build-image and run on the real 6.1 dump.

Slow (a few minutes: the base image is made once with debootstrap and kept
under ~/.cache/crashext/image; the image itself is rebuilt from this tree
every run): run by hand or once in CI.  Needs root, buildah and debootstrap,
and network access to the Debian archive and PyPI.

Inside the image, as its non-root user and through its entrypoint (what
`docker run IMAGE ARGS` executes): `crashext info` must report what the
guest recorded before the dump, `triage` must equal the same command run
standalone on this machine, and -- when the image has PyKdump -- Debian's
crash must load the pack from ~/.crashrc and list the guest's memcgs.
"""

import json
import re
import os
import shutil
import subprocess
import sys

import pytest

import crashext
from crashext.crashenv import pykdump_path

import jsoncmp

pytestmark = [pytest.mark.slow, pytest.mark.vmcore]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, "scripts", "build-image")
TAG = "localhost/crashext:test"
# where the data was read differs between host and container by design;
# the container also reads the dump from another path and its own kb directory
PLACE_KEYS = jsoncmp.PLACE_KEYS | {"sources", "kb_file"}


def strip_place(obj):
    return jsoncmp.strip_place(obj, PLACE_KEYS)


if os.geteuid() != 0:
    pytest.skip("building the image needs root (debootstrap, buildah mount)", allow_module_level=True)
for _tool in ("buildah", "debootstrap"):
    if shutil.which(_tool) is None:
        pytest.skip(f"{_tool} is not installed (scripts/setup installs it)", allow_module_level=True)


def _storage():
    out = subprocess.run([BUILD, "storage"], capture_output=True, text=True, check=True).stdout
    return out.split()


def _buildah(*args, **kw):
    return subprocess.run(["buildah", *_storage(), *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def image():
    proc = subprocess.run([BUILD, "--tag", TAG], capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    cfg = json.loads(_buildah("inspect", "--type", "image", TAG, check=True).stdout)
    return cfg["OCIv1"]["config"]


@pytest.fixture(scope="module")
def dumps(vmcore, tmp_path_factory):
    """The 6.1 dump as a user would mount it: a directory with vmcore and vmlinux.

    The fixture's vmcore is root-only (0600, as makedumpfile writes it) and
    its vmlinux a symlink out of the directory; the image's user is not
    root, so the test mounts a world-readable copy of the vmcore and the
    vmlinux file itself."""
    fx = vmcore("bookworm", "memcg-churn")
    d = tmp_path_factory.mktemp("dumps")
    shutil.copyfile(fx.vmcore, d / "vmcore")
    os.chmod(d / "vmcore", 0o644)
    return fx, d / "vmcore", os.path.realpath(fx.vmlinux)


@pytest.fixture(scope="module")
def ctr(image, dumps):
    name = _buildah("from", "--pull=never", "--quiet", TAG, check=True).stdout.strip()
    yield name
    _buildah("rm", name)


def in_image(ctr, image, dumps, *argv, entrypoint=True, extra_mounts=(), timeout=900):
    """Run argv in the container with the dump mounted at /dumps, as `docker run` would
    (the image's entrypoint first, its user, its working directory)."""
    _, core, vmlinux = dumps
    cmd = (list(image.get("Entrypoint") or []) if entrypoint else []) + list(argv)
    mounts = ["-v", f"{core}:/dumps/vmcore:ro", "-v", f"{vmlinux}:/dumps/vmlinux:ro", *extra_mounts]
    return _buildah("run", "--isolation", "chroot", *mounts, ctr, "--", *cmd, timeout=timeout)


def host_json(*args):
    proc = subprocess.run([sys.executable, "-m", "crashext", *args, "--json"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_image_config(image):
    assert image.get("User") == "crashext"
    assert image.get("WorkingDir") == "/dumps"
    assert image.get("Entrypoint") == ["/usr/local/bin/crashext-entrypoint"]


def test_version_and_user(ctr, image, dumps):
    proc = in_image(ctr, image, dumps, "--version")  # an option alone goes to crashext
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"crashext {crashext.__version__}"
    uid = in_image(ctr, image, dumps, "id", "-u")
    assert uid.stdout.strip() != "0"


def test_info_in_image(ctr, image, dumps):
    fx, core, vmlinux = dumps
    proc = in_image(ctr, image, dumps, "crashext", "info", "--json", "-c", "vmcore", "-s", "vmlinux")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["release"] == fx.meta["kernel_release"]
    assert info["panic"] == fx.meta["expected_panic"]
    assert strip_place(info) == strip_place(host_json("info", "-c", str(core), "-s", str(vmlinux)))


def test_triage_in_image(ctr, image, dumps):
    _, core, vmlinux = dumps
    proc = in_image(ctr, image, dumps, "triage", "--json", "-c", "vmcore", "-s", "vmlinux")
    assert proc.returncode == 0, proc.stderr
    inside = json.loads(proc.stdout)
    # the guest panicked through SysRq-c (tests/vmcore: echo c > /proc/sysrq-trigger)
    assert inside["verdict"]["deliberate"] is True
    assert inside["verdict"]["matches"][0]["id"] == "sysrq-triggered-crash"
    assert strip_place(inside) == strip_place(host_json("triage", "-c", str(core), "-s", str(vmlinux)))


def test_root_only_dump_is_one_line(ctr, image, dumps):
    """A root-only vmcore (what kdump writes) read by the image's user: one line, no traceback."""
    fx = dumps[0]
    if os.stat(fx.vmcore).st_mode & 0o004:
        pytest.skip("the fixture's vmcore is world-readable")
    proc = in_image(ctr, image, dumps, "info", "-c", "/dumps/rootonly", "-s", "vmlinux",
                    extra_mounts=["-v", f"{fx.vmcore}:/dumps/rootonly:ro"])
    assert proc.returncode == 2
    # buildah adds its own "exit status" lines after the command's stderr
    ours = [l for l in proc.stderr.splitlines() if l.startswith("crashext")]
    assert ours == ["crashext info: /dumps/rootonly: permission denied"]
    assert "Traceback" not in proc.stderr


def test_pykdumppath_is_what_crash_init_computes(ctr, image, dumps):
    """The image's build stage built crash 9.0.2+abcb45e (master after
    9.0.2, which opens 7.x dumps) and PyKdump for it; the crash on the
    image's PATH is that one, and ~/.crashrc loads its PyKdump."""
    env = dict(e.split("=", 1) for e in image.get("Env", []))
    proc = in_image(ctr, image, dumps, "crash-init", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["mpykdump_exists"], data
    assert data["mpykdump"] == "/opt/pykdump/crash-9.0.2+abcb45e/mpykdump.so"
    version = in_image(ctr, image, dumps, "crash", "--version", entrypoint=False)
    assert re.search(r"^crash 9\.0\.2\+abcb45e$", version.stdout, re.M), version.stdout
    assert env["PYKDUMPPATH"].split(":") == data["pykdumppath"]
    rc = in_image(ctr, image, dumps, "cat", "/home/crashext/.crashrc")
    assert rc.stdout.splitlines() == data["crashrc"]


def test_crash_in_image_loads_the_pack(ctr, image, dumps):
    fx = dumps[0]
    proc = in_image(ctr, image, dumps, "sh", "-c",
                    "printf 'memcgids\\nq\\n' | crashext-entrypoint crash -s vmlinux vmcore", entrypoint=False)
    text = proc.stdout + proc.stderr
    assert "crashext: registered" in text, text[-3000:]
    assert "Traceback" not in text
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[0].startswith("ffff") and parts[1] in ("online", "dying"):
            rows[next(p for p in parts if p.startswith("/"))] = (parts[1], int(parts[2]))
    truth = fx.truth()
    want = {r["path"]: ("online", int(r["ino"])) for r in truth["cgroup_tree.tsv"]}
    want.update({r["path"]: ("dying", int(r["ino"])) for r in truth["removed_charged.tsv"]})
    assert rows == want
