"""Build real Linux kernel crash dumps (vmcores) for crashext's tests.

Stdlib only.  The command line front end is ``tests/vmcore/build-fixture``;
pytest uses :func:`build_fixture` through ``tests/conftest.py``.  See
``docs/fixtures.md`` for the user documentation.

Pipeline (one fixture = one suite + one scenario):

1. resolve the Debian kernel (``linux-image-cloud-amd64`` and its ``-dbg``
   metapackage) of the suite with a private apt configuration,
2. download the concrete ``-unsigned`` and ``-dbg`` packages, extract only
   ``boot/vmlinuz``, ``boot/config``, the few modules the guest needs and the
   debug ``vmlinux``; cache them per suite + version, delete the .debs,
3. build a busybox-static initramfs running the scenario script,
4. boot it under QEMU/TCG, wait for the pvpanic ``GUEST_PANICKED`` QMP event,
   dump guest memory as ELF, fix the ELF layout for makedumpfile, shrink it
   with makedumpfile,
5. split the ground truth the guest printed on the serial console into
   ``DIR/truth/`` (see ``truth.py``) and write ``DIR/meta.json``.
"""

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import truth as truthmod  # noqa: E402

# Bump when the guest/init, the truth format or the dump pipeline changes in
# a way that should invalidate already built fixtures.
FORMAT_VERSION = 1

SUITES = {
    # suite: kernel series (informational; the real version is resolved)
    "bullseye": "5.10",
    "bookworm": "6.1",
    "trixie": "6.12",
    "trixie-backports": "7.3",
}
#: The Debian kernel (package version) each suite's fixtures are built with,
#: so docs regenerated from real runs do not change with every kernel Debian
#: publishes.  Debian's mirror drops superseded security builds within days:
#: when the pinned one is gone, the newest available is used with a one-line
#: warning (never a failure), and the pin is the one line to move.
PINNED_KERNELS = {
    "bullseye": "5.10.223-1",     # bullseye's main suite (the -security builds 404 here)
    "bookworm": "6.1.192-3",
    "trixie": "6.12.118-1",
    # the backports pool keeps only the current upload: expect the fallback
    "trixie-backports": "7.3.4-1~bpo13+1",
}
META_IMAGE = "linux-image-cloud-amd64"
META_DBG = "linux-image-cloud-amd64-dbg"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
APT_LISTS_MAX_AGE = 24 * 3600
UNAVAILABLE_RETRY = 24 * 3600

CI_SET = [(s, sc) for s in ("bookworm", "bullseye")
          for sc in ("memcg-churn", "nokmem", "fragmented", "cgroup-v1")] \
    + [("trixie", "memcg-churn")] \
    + [("trixie-backports", sc) for sc in ("memcg-churn", "fragmented")]
#: the other dumps the test suite opens (each test builds its own on first
#: use; build-all builds them beforehand, beside the CI set): memcgpins'
#: dump on every kernel, the 5.10 dump with 15,000 dying memcgs, and the
#: OOM kill's show_mem report.  tests/test_fixture_pins.py checks that
#: every literal vmcore(SUITE, SCENARIO) of the tests is in TEST_SET.
TEST_ONLY = [("bullseye", "memcg-many"), ("bookworm", "oom-showmem")] \
    + [(s, "memcg-pins") for s in ("bullseye", "bookworm", "trixie",
                                   "trixie-backports")]
TEST_SET = CI_SET + TEST_ONLY

# Kernel config symbol -> module file basename providing it when "=m".
# pvpanic: drivers/misc/pvpanic.c was a single module up to 5.11; since 5.12
# drivers/misc/pvpanic/{pvpanic,pvpanic-mmio,pvpanic-pci}.c (CONFIG_PVPANIC is
# then a bool menu, CONFIG_PVPANIC_MMIO drives the ACPI "QEMU0001" ISA device
# that "-device pvpanic" creates).  qemu_fw_cfg (drivers/firmware/
# qemu_fw_cfg.c, CONFIG_FW_CFG_SYSFS) writes VMCOREINFO into the fw_cfg file
# "etc/vmcoreinfo" of "-device vmcoreinfo" at probe time.
GUEST_MODULES = [
    ("CONFIG_PVPANIC", "pvpanic"),
    ("CONFIG_PVPANIC_MMIO", "pvpanic-mmio"),
    ("CONFIG_FW_CFG_SYSFS", "qemu_fw_cfg"),
]

DEFAULT_MEMORY = "512M"
DEFAULT_CPUS = 2
DEFAULT_TIMEOUT = 600          # seconds from QEMU start to GUEST_PANICKED
BASE_CMDLINE = ("console=ttyS0,115200 quiet loglevel=1 panic=0 oops=panic "
                "printk.devkmsg=on")

EXPECTED_PANIC = "sysrq triggered crash"   # drivers/tty/sysrq.c (5.10..6.12)


class FixtureError(Exception):
    """A fixture could not be built; the message is one clear line."""


def log(msg):
    print("[build-fixture %s] %s" % (time.strftime("%H:%M:%S"), msg),
          file=sys.stderr, flush=True)


def cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "crashext"


@contextlib.contextmanager
def file_lock(path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run(cmd, check=True, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run(cmd, text=True, **kw)
    if check and p.returncode != 0:
        err = (p.stderr or "").strip().splitlines()
        raise FixtureError("%s failed (exit %d): %s" % (
            " ".join(map(str, cmd[:3])), p.returncode,
            err[-1] if err else "no output"))
    return p


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_size(s):
    """'512M' / '2G' / '1024' (MiB) -> MiB."""
    m = re.fullmatch(r"\s*(\d+)\s*([MmGg]?)i?[Bb]?\s*", str(s))
    if not m:
        raise FixtureError("bad memory size %r (use e.g. 512M or 2G)" % s)
    n = int(m.group(1))
    return n * 1024 if m.group(2).lower() == "g" else n


# --------------------------------------------------------------------------
# apt: private configuration per suite, reusing the machine's mirror hosts
# --------------------------------------------------------------------------

def machine_mirrors():
    """(debian_uri, security_uri) taken from /etc/apt/sources.list*."""
    uris = []
    files = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        files += sorted(p for p in d.iterdir()
                        if p.suffix in (".list", ".sources"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for m in re.finditer(r"^URIs:\s*(.+)$", text, re.M):
                uris += m.group(1).split()
        else:
            for line in text.splitlines():
                line = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
                if len(line) >= 2 and line[0] == "deb":
                    uris.append(line[1])
    debian = next((u for u in uris
                   if re.search(r"/debian/?$", u)), None)
    security = next((u for u in uris
                     if re.search(r"/debian-security/?$", u)), None)
    if debian is None:
        raise FixtureError("no Debian archive URI found in "
                           "/etc/apt/sources.list*; cannot download kernels")
    debian = debian.rstrip("/")
    if security is None:
        security = debian + "-security"
    return debian, security.rstrip("/")


class Apt:
    """apt-get/apt-cache with a private sources.list, lists and cache."""

    def __init__(self, suite):
        if suite not in SUITES:
            raise FixtureError("unknown suite %r (choose from %s)"
                               % (suite, ", ".join(SUITES)))
        self.suite = suite
        self.dir = cache_root() / "apt" / suite
        self.lists = self.dir / "lists"
        self.cache = self.dir / "cache"
        self.parts = self.dir / "empty.d"
        self.sources = self.dir / "sources.list"
        for d in (self.lists / "partial", self.cache / "archives" / "partial",
                  self.parts):
            d.mkdir(parents=True, exist_ok=True)
        debian, security = machine_mirrors()
        kr = "[signed-by=%s]" % KEYRING if os.path.exists(KEYRING) else ""
        text = "deb %s %s %s main\n" % (kr, debian, suite)
        if not suite.endswith("-backports"):   # backports has no -security suite
            text += "deb %s %s %s-security main\n" % (kr, security, suite)
        if not self.sources.exists() or self.sources.read_text() != text:
            self.sources.write_text(text)
            for p in self.lists.glob("*_Packages*"):
                p.unlink()

    def opts(self):
        return [
            "-o", "Dir::Etc::sourcelist=%s" % self.sources,
            "-o", "Dir::Etc::sourceparts=%s" % self.parts,
            "-o", "Dir::Etc::preferencesparts=%s" % self.parts,
            "-o", "Dir::State::Lists=%s" % self.lists,
            "-o", "Dir::Cache=%s" % self.cache,
            "-o", "Dir::Cache::archives=%s" % (self.cache / "archives"),
            "-o", "APT::Get::List-Cleanup=0",
            "-o", "Acquire::Languages=none",
            "-o", "APT::Architecture=amd64",
            "-o", "APT::Architectures=amd64",
            "-o", "APT::Sandbox::User=root",
            "-o", "Debug::NoLocking=1",
        ]

    def update(self, refresh=False):
        lists = list(self.lists.glob("*_Packages*"))
        fresh = lists and all(time.time() - p.stat().st_mtime
                              < APT_LISTS_MAX_AGE for p in lists)
        if fresh and not refresh:
            return
        log("apt-get update (%s, private lists in %s)" % (self.suite,
                                                         self.lists))
        p = run(["apt-get", "-q", "update"] + self.opts(), check=False)
        if p.returncode != 0 or "Err:" in p.stdout:
            if lists:
                log("apt-get update failed, using the old lists: "
                    + (p.stderr.strip().splitlines() or ["?"])[-1])
            else:
                raise FixtureError("apt-get update for %s failed: %s" % (
                    self.suite, (p.stderr.strip().splitlines()
                                 or ["no output"])[-1]))
        for p2 in self.lists.glob("*_Packages*"):
            os.utime(p2)

    def cache_cmd(self, *args):
        return run(["apt-cache"] + self.opts() + list(args)).stdout

    def versions(self, pkg):
        """All versions of pkg, newest first."""
        out = self.cache_cmd("madison", pkg)
        vers = []
        for line in out.splitlines():
            parts = [x.strip() for x in line.split("|")]
            if len(parts) >= 2 and parts[0] == pkg and parts[1] not in vers:
                vers.append(parts[1])
        import functools

        def cmp(a, b):
            if a == b:
                return 0
            r = subprocess.run(["dpkg", "--compare-versions", a, "gt", b])
            return -1 if r.returncode == 0 else 1
        return sorted(vers, key=functools.cmp_to_key(cmp))

    def depends(self, pkg, version):
        out = self.cache_cmd("show", "%s=%s" % (pkg, version))
        m = re.search(r"^Depends:\s*(.+)$", out, re.M)
        if not m:
            raise FixtureError("%s=%s has no Depends" % (pkg, version))
        return [d.strip().split()[0] for d in m.group(1).split(",")]

    def download(self, pkg, version, dest):
        """apt-get download into dest; returns the .deb path (or raises)."""
        dest.mkdir(parents=True, exist_ok=True)
        fname = "%s_%s_amd64.deb" % (pkg, version.replace(":", "%3a"))
        path = dest / fname
        if path.exists():
            return path
        p = run(["apt-get", "-q", "download", "%s=%s" % (pkg, version)]
                + self.opts(), check=False, cwd=dest)
        if p.returncode != 0 or not path.exists():
            err = (p.stderr.strip().splitlines() or ["no output"])[-1]
            raise FixtureError("apt-get download %s=%s failed: %s"
                               % (pkg, version, err))
        return path


# --------------------------------------------------------------------------
# kernel: resolve, download, extract, cache
# --------------------------------------------------------------------------

class Kernel:
    def __init__(self, suite, version, image_pkg, dbg_pkg, cache_dir,
                 more_pkgs=()):
        self.suite = suite
        self.version = version          # Debian package version
        self.image_pkg = image_pkg      # ...-unsigned, or linux-binary-ABI
        self.dbg_pkg = dbg_pkg
        #: the split layout's other image parts (linux-modules-ABI,
        #: linux-base-ABI), read with image_pkg
        self.more_pkgs = list(more_pkgs)
        self.dir = Path(cache_dir)

    @property
    def info(self):
        return json.loads((self.dir / "kernel.json").read_text())

    @property
    def release(self):
        return self.info["release"]

    @property
    def vmlinuz(self):
        return self.dir / ("vmlinuz-" + self.release)

    @property
    def vmlinux(self):
        return self.dir / ("vmlinux-" + self.release)

    @property
    def config(self):
        return parse_config(self.dir / ("config-" + self.release))

    def complete(self):
        return (self.dir / "kernel.json").exists()


def parse_config(path):
    cfg = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"(CONFIG_\w+)=(.*)", line)
        if m:
            cfg[m.group(1)] = m.group(2).strip('"')
    return cfg


def kernel_candidates(apt):
    """[(version, image_pkg, dbg_pkg[, more_pkgs])] newest first, from the
    metapackages.

    Up to 6.12 (and 6.19 in trixie-backports) the image is one package,
    ``linux-image-ABI-unsigned`` (boot/vmlinuz-REL, boot/config-REL,
    lib/modules/REL/...).  Debian's 7.x packages in trixie-backports have
    no such package: ``linux-image-ABI`` is empty and depends on
    ``linux-binary-ABI`` (usr/lib/modules/REL/vmlinuz),
    ``linux-modules-ABI`` (the modules) and ``linux-base-ABI``
    (usr/lib/modules/REL/config); those are the 4th element."""
    out = []
    img_versions = set(apt.versions(META_IMAGE))
    for ver in apt.versions(META_DBG):
        if ver not in img_versions:
            continue
        dbg = [d for d in apt.depends(META_DBG, ver) if d.endswith("-dbg")]
        img = [d for d in apt.depends(META_IMAGE, ver)
               if d.startswith("linux-image-")]
        if not dbg or not img:
            continue
        image_pkg = img[0] if img[0].endswith("-unsigned") \
            else img[0] + "-unsigned"
        dbg_pkg = dbg[0]
        more = []
        if not apt.versions(image_pkg) and apt.versions(img[0]):
            parts = apt.depends(img[0], ver)
            binary = [d for d in parts if d.startswith("linux-binary-")]
            more = [d for d in parts if d.startswith(("linux-modules-",
                                                      "linux-base-"))]
            if not binary or len(more) != 2:
                continue
            image_pkg = binary[0]
        # the concrete packages come from src:linux; same version as the
        # metapackages (src:linux-signed-amd64 builds them with that version)
        if ver not in apt.versions(dbg_pkg) or any(
                ver not in apt.versions(p) for p in [image_pkg] + more):
            continue
        out.append((ver, image_pkg, dbg_pkg, more) if more
                   else (ver, image_pkg, dbg_pkg))
    if not out:
        raise FixtureError("no %s/%s versions found for %s" % (
            META_IMAGE, META_DBG, apt.suite))
    return out


def pin_first(suite, cands):
    """cands with the suite's pinned version first; if the mirror no longer
    has it, cands as they are (newest first) and a one-line warning."""
    pin = PINNED_KERNELS.get(suite)
    if pin is None:
        return cands
    pinned = [c for c in cands if c[0] == pin]
    if not pinned:
        log("warning: pinned %s kernel %s is gone from the mirror; using %s "
            "(move PINNED_KERNELS in tests/vmcore/fixturelib.py)"
            % (suite, pin, cands[0][0] if cands else "none"))
        return cands
    return pinned + [c for c in cands if c[0] != pin]


def get_kernel(suite, refresh=False, timings=None):
    """Resolve and (if needed) download+extract the suite's kernel."""
    timings = {} if timings is None else timings
    t0 = time.monotonic()
    apt = Apt(suite)
    kroot = cache_root() / "kernels" / suite
    with file_lock(kroot / ".lock"):
        apt.update(refresh=refresh)
        # resolving costs a dozen apt-cache runs (~5 s); memoize it per
        # state of the private package lists
        sig = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime))
                     for p in apt.lists.glob("*_Packages*"))
        memo = apt.dir / "resolved.json"
        cands = None
        try:
            m = json.loads(memo.read_text())
            if m["sig"] == json.loads(json.dumps(sig)):
                cands = [tuple(c) for c in m["candidates"]]
        except (OSError, ValueError, KeyError):
            pass
        if cands is None:
            cands = kernel_candidates(apt)
            memo.write_text(json.dumps({"sig": sig, "candidates": cands}))
        timings["resolve"] = round(time.monotonic() - t0, 2)
        cands = pin_first(suite, cands)
        errors = []
        for ver, image_pkg, dbg_pkg, *more in cands:
            k = Kernel(suite, ver, image_pkg, dbg_pkg, kroot / ver,
                       more[0] if more else ())
            if k.complete():
                return k
            bad = kroot / (ver + ".unavailable")
            if bad.exists() and time.time() - bad.stat().st_mtime \
                    < UNAVAILABLE_RETRY and not refresh:
                errors.append("%s: marked unavailable" % ver)
                continue
            try:
                fetch_kernel(apt, k, timings)
                return k
            except FixtureError as e:
                if "download" in str(e):
                    # e.g. the newest bullseye-security build 404s: fall
                    # back to the next (older, main suite) version
                    log("%s; trying an older version" % e)
                    bad.write_text(str(e) + "\n")
                    errors.append(str(e))
                    continue
                raise
        raise FixtureError("no usable kernel for %s: %s"
                           % (suite, "; ".join(errors)))


def deb_members(deb, want, stop=None):
    """Stream `dpkg-deb --fsys-tarfile deb` and yield (TarInfo, fileobj)
    for members where want(name) is true.  Stops reading early when
    stop() is true."""
    p = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=p.stdout, mode="r|") as tf:
            for ti in tf:
                name = ti.name[2:] if ti.name.startswith("./") else ti.name
                if want(name, ti):
                    yield name, ti, tf.extractfile(ti) if ti.isreg() else None
                if stop and stop():
                    break
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()


def modinfo_depends(ko_bytes):
    """'depends=' of a kernel module's .modinfo ELF section."""
    data = ko_bytes
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise FixtureError("not an ELF64 module")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def sh(i):
        return struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
    strtab = sh(shstrndx)
    for i in range(shnum):
        s = sh(i)
        nameoff = strtab[4] + s[0]
        name = data[nameoff:data.index(b"\0", nameoff)]
        if name == b".modinfo":
            for item in data[s[4]:s[4] + s[5]].split(b"\0"):
                if item.startswith(b"depends="):
                    v = item[8:].decode()
                    return [x for x in v.split(",") if x]
            return []
    return []


def decompress_ko(name, data):
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc"], input=data, check=True,
                              stdout=subprocess.PIPE).stdout
    return data


def modname(path):
    base = path.rsplit("/", 1)[-1]
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


def fetch_kernel(apt, k, timings):
    debdir = cache_root() / "debs"
    t0 = time.monotonic()
    log("downloading %s and %s %s" % (", ".join([k.image_pkg] + k.more_pkgs),
                                      k.dbg_pkg, k.version))
    img_debs = [apt.download(p, k.version, debdir)
                for p in [k.image_pkg] + k.more_pkgs]
    dbg_deb = apt.download(k.dbg_pkg, k.version, debdir)
    timings["download"] = round(time.monotonic() - t0, 2)
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=k.dir.parent))
    try:
        # 1. image package(s): vmlinuz, config, System.map, wanted modules
        kos = {}         # modname -> (path in deb, bytes)
        boot = {}        # vmlinuz/config/System.map -> (release, bytes)
        # boot/FILE-REL in one -unsigned package; usr/lib/modules/REL/FILE
        # in 7.x's linux-binary-ABI (vmlinuz) and linux-base-ABI (config,
        # and a System.map that only points to the -dbg package's)
        boot_re = re.compile(r"boot/(vmlinuz|config|System\.map)-(.*)"
                             r"|usr/lib/modules/([^/]+)/(vmlinuz|config)")

        def want_img(name, ti):
            if ti.isreg() and boot_re.fullmatch(name):
                return True
            return bool(re.search(r"/modules/[^/]+/kernel/.*\.ko(\.\w+)?$",
                                  name))
        needed = None
        for img_deb in img_debs:
            for name, ti, f in deb_members(img_deb, want_img):
                m = boot_re.fullmatch(name)
                if m:
                    what, rel = (m.group(1), m.group(2)) if m.group(1) \
                        else (m.group(4), m.group(3))
                    boot[what] = (rel, f.read())
                else:
                    kos[modname(name)] = (name, f.read())
        names = ", ".join(d.name for d in img_debs)
        if not {"vmlinuz", "config"} <= set(boot):
            raise FixtureError("%s lack(s) the kernel image or its config"
                               % names)
        release = boot["vmlinuz"][0]
        for what, (rel, data) in boot.items():
            (tmp / ("%s-%s" % (what, rel))).write_bytes(data)
        cfg = parse_config(tmp / ("config-" + release))
        needed = []

        def add(mod):
            mod = mod.replace("-", "_")
            if mod in needed:
                return
            if mod not in kos:
                raise FixtureError("module %s not found in %s"
                                   % (mod, names))
            data = decompress_ko(kos[mod][0], kos[mod][1])
            for dep in modinfo_depends(data):
                add(dep)
            needed.append(mod)
            (tmp / "modules").mkdir(exist_ok=True)
            (tmp / "modules" / (mod + ".ko")).write_bytes(data)
        builtin = []
        for sym, mod in GUEST_MODULES:
            val = cfg.get(sym)
            if val == "m":
                add(mod)
            elif val == "y":
                builtin.append(sym)
        del kos
        # 2. dbg package: only the debug vmlinux, stop when found.  Up to
        # 6.12 it is usr/lib/debug/boot/vmlinux-REL, the 10th member or so;
        # in 7.x that is a symlink to usr/lib/debug/lib/modules/REL/vmlinux,
        # which comes after every module's debug file (member 1,274 of
        # 1,284 in 7.3.4's), so the whole tar is read.  7.x keeps the real
        # System.map there too (member 12).
        found = []
        vmlinux = tmp / ("vmlinux-" + release)
        dbg_names = ("usr/lib/debug/boot/vmlinux-" + release,
                     "usr/lib/debug/lib/modules/%s/vmlinux" % release)
        sysmap = "usr/lib/debug/lib/modules/%s/System.map" % release

        def want_dbg(name, ti):
            return ti.isreg() and (name in dbg_names or name == sysmap)
        for name, ti, f in deb_members(dbg_deb, want_dbg,
                                       stop=lambda: bool(found)):
            if name == sysmap:
                (tmp / ("System.map-" + release)).write_bytes(f.read())
                continue
            with open(vmlinux, "wb") as out:
                shutil.copyfileobj(f, out, 1 << 20)
            found.append(name)
        if not found:
            raise FixtureError("%s has neither %s"
                               % (dbg_deb.name, " nor ".join(dbg_names)))
        info = {
            "suite": k.suite, "version": k.version, "release": release,
            "image_pkg": k.image_pkg, "dbg_pkg": k.dbg_pkg,
            **({"more_pkgs": k.more_pkgs} if k.more_pkgs else {}),
            "modules": needed, "builtin": builtin,
            "extracted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / "kernel.json").write_text(json.dumps(info, indent=1) + "\n")
        if k.dir.exists():
            shutil.rmtree(k.dir)
        tmp.rename(k.dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    timings["extract"] = round(time.monotonic() - t0, 2)
    for deb in img_debs + [dbg_deb]:
        deb.unlink()
    log("kernel %s cached in %s (download %ss, extract %ss)" % (
        release, k.dir, timings["download"], timings["extract"]))


# --------------------------------------------------------------------------
# scenarios and the guest initramfs
# --------------------------------------------------------------------------

def find_scenario(scenario):
    p = Path(scenario)
    if not p.exists():
        for cand in (HERE / "scenarios" / scenario,
                     HERE / "scenarios" / (scenario + ".sh")):
            if cand.exists():
                p = cand
                break
        else:
            raise FixtureError("scenario %s not found (looked in %s)"
                               % (scenario, HERE / "scenarios"))
    return p.resolve()


def scenario_options(path):
    """Header lines '# crashext: key=value' of a scenario script."""
    opts = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"#\s*crashext:\s*([\w-]+)\s*=\s*(.*?)\s*$", line)
        if m:
            opts[m.group(1)] = m.group(2)
    return opts


def scenario_includes(path, sopts):
    """Other scenario files a scenario sources ('include=a,b'), available
    in the guest as /scenarios/<name>.sh."""
    return [find_scenario(x.strip()) for x in
            sopts.get("include", "").split(",") if x.strip()]


def scenario_name(path):
    return re.sub(r"\.sh$", "", Path(path).name)


def build_helpers(scenario_opts, outdir):
    """Compile the static C helpers a scenario asks for ('helpers=a,b')."""
    built = []
    for h in filter(None, scenario_opts.get("helpers", "").split(",")):
        h = h.strip()
        src = HERE / "guest" / (h + ".c")
        if not src.exists():
            raise FixtureError("helper source %s missing" % src)
        exe = outdir / Path(h).name
        run(["gcc", "-static", "-O2", "-Wall", "-o", str(exe), str(src)])
        built.append(exe)
    return built


class Cpio:
    """Minimal 'newc' cpio writer (no root needed for device nodes)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0,
            rdev[0], rdev[1], len(name_b), 0))
        self.ino += 1
        self.buf.write(hdr.encode() + name_b)
        self.buf.write(b"\0" * ((4 - (110 + len(name_b)) % 4) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * ((4 - len(data) % 4) % 4))

    def dir(self, name):
        self._entry(name, 0o040755, nlink=2)

    def file(self, name, data, mode=0o644):
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name, target):
        self._entry(name, 0o120777, target.encode())

    def chardev(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def build_initramfs(kernel, scenario, sopts, helpers, dest):
    busybox = shutil.which("busybox") or "/bin/busybox"
    bb = Path(busybox).read_bytes()
    if not _is_static(busybox):
        raise FixtureError("%s is not static; install busybox-static"
                           % busybox)
    c = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "lib",
              "lib/modules", "data", "truth", "run"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3)
    c.file("bin/busybox", bb, 0o755)
    c.symlink("bin/sh", "busybox")
    c.file("init", (HERE / "guest" / "init.sh").read_bytes(), 0o755)
    c.file("scenario.sh", Path(scenario).read_bytes(), 0o755)
    c.dir("scenarios")
    for inc in scenario_includes(scenario, sopts):
        c.file("scenarios/" + inc.name, inc.read_bytes(), 0o755)
    for h in helpers:
        c.file("bin/" + h.name, h.read_bytes(), 0o755)
    mods = kernel.info["modules"]
    for m in mods:
        c.file("lib/modules/%s.ko" % m,
               (kernel.dir / "modules" / (m + ".ko")).read_bytes())
    conf = {
        "SCENARIO": scenario_name(scenario),
        "CGROUP_MODE": sopts.get("cgroup", "v2"),
        "MODULES": " ".join(mods),
        "EXPECTED_PANIC": EXPECTED_PANIC,
    }
    c.file("etc/crashext.conf", "".join(
        "%s='%s'\n" % kv for kv in conf.items()).encode())
    data = gzip.compress(c.finish(), 6)
    Path(dest).write_bytes(data)
    return dest


def _is_static(path):
    p = subprocess.run(["file", "-L", str(path)], stdout=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        return True   # no file(1): trust it
    return "statically linked" in p.stdout or "static-pie" in p.stdout


# --------------------------------------------------------------------------
# QEMU + QMP
# --------------------------------------------------------------------------

class QMP:
    def __init__(self, path, deadline):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise FixtureError("QMP socket %s never appeared" % path)
                time.sleep(0.05)
        self.buf = b""
        self.events = []
        if self.recv(max(1, deadline - time.monotonic())) is None:
            raise FixtureError("no QMP greeting from QEMU")
        self.cmd("qmp_capabilities")

    def recv(self, timeout):
        """One JSON message, or None after timeout seconds."""
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                raise EOFError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, timeout=120, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        end = time.monotonic() + timeout
        while True:
            r = self.recv(max(0.01, end - time.monotonic()))
            if r is None:
                raise FixtureError("QMP %s: no reply" % name)
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise FixtureError("QMP %s: %s" % (name, r["error"]))
            return r.get("return")

    def event(self, names, timeout):
        for i, e in enumerate(self.events):
            if e["event"] in names:
                return self.events.pop(i)
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            r = self.recv(timeout=left)
            if r is None:
                return None
            if "event" in r:
                if r["event"] in names:
                    return r
                self.events.append(r)

    def close(self):
        self.sock.close()


def serial_tail(path, n=25):
    try:
        lines = Path(path).read_bytes().decode("utf-8", "replace") \
            .replace("\r", "").splitlines()
    except OSError:
        return "(no serial log)"
    return "\n".join(lines[-n:])


def scenario_disks(sopts, workdir):
    """QEMU arguments for the empty disks a scenario asks for
    ('disks=64M,32M'): each a sparse raw file in ``workdir`` behind its own
    NVMe controller, so the guest sees /dev/nvme0n1, /dev/nvme1n1, ... in
    that order (the cloud kernels build the NVMe driver in:
    CONFIG_BLK_DEV_NVME=y, and ext4; loop, zram and brd are modules the
    initramfs does not carry).  The files go with the build directory."""
    args = []
    for i, size in enumerate(x.strip() for x in
                             sopts.get("disks", "").split(",") if x.strip()):
        img = Path(workdir) / ("disk%d.img" % i)
        with open(img, "wb") as f:
            f.truncate(parse_size(size) << 20)
        args += ["-drive", "file=%s,if=none,format=raw,id=disk%d" % (img, i),
                 "-device", "nvme,drive=disk%d,serial=crashext%d" % (i, i)]
    return args


def run_qemu(kernel, initrd, cmdline, memory_mb, cpus, workdir, timeout,
             timings, extra_args=()):
    """Boot, wait for the panic, dump ELF.  Returns the ELF path."""
    serial = workdir / "serial.log"
    qmp_path = workdir / "qmp.sock"
    elf = workdir / "vmcore.elf"
    for p in (serial, qmp_path, elf):
        if p.exists() or p.is_symlink():
            p.unlink()
    cmd = [
        "qemu-system-x86_64", "-machine", "q35,accel=tcg",
        "-cpu", "max,la57=off", "-smp", str(cpus), "-m", "%dM" % memory_mb,
        "-vga", "none", "-nographic", "-monitor", "none", "-nic", "none",
        "-no-reboot", "-action", "panic=pause",
        "-device", "pvpanic", "-device", "vmcoreinfo",
        "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd),
        "-append", cmdline,
        "-serial", "file:%s" % serial,
        "-qmp", "unix:%s,server=on,wait=off" % qmp_path,
    ] + list(extra_args)
    qlog = open(workdir / "qemu.log", "w")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qlog,
                            stderr=subprocess.STDOUT, start_new_session=True)
    qmp = None

    def fail(msg):
        try:
            text = serial.read_bytes().decode("utf-8", "replace")
        except OSError:
            text = ""
        m = re.search(r"@@CRASHEXT:FAIL (.*?)@@", text)
        if m:
            msg = "guest: %s (%s)" % (m.group(1), msg)
        return FixtureError("%s; serial log tail:\n%s" % (
            msg, serial_tail(serial)))
    try:
        qmp = QMP(qmp_path, time.monotonic() + 30)
        deadline = t0 + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise fail("guest did not panic within %ds (timeout)"
                           % timeout)
            ev = qmp.event({"GUEST_PANICKED", "SHUTDOWN", "RESET",
                            "GUEST_CRASHLOADED"}, min(left, 2))
            if ev is None:
                if proc.poll() is not None:
                    raise fail("QEMU exited with %d before the panic"
                               % proc.returncode)
                continue
            if ev["event"] == "GUEST_PANICKED":
                break
            raise fail("guest %s instead of panicking" % ev["event"])
        timings["boot_to_panic"] = round(time.monotonic() - t0, 2)
        t1 = time.monotonic()
        qmp.cmd("dump-guest-memory", paging=False,
                protocol="file:%s" % elf, detach=True, format="elf")
        ev = qmp.event({"DUMP_COMPLETED"}, 600)
        if ev is None:
            raise fail("dump-guest-memory did not complete in 600s")
        if ev.get("data", {}).get("error"):
            raise fail("dump-guest-memory failed: %s" % ev["data"]["error"])
        timings["qemu_dump"] = round(time.monotonic() - t1, 2)
        try:
            qmp.cmd("quit")
        except (FixtureError, EOFError, OSError):
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        return elf
    except EOFError:
        raise fail("QEMU closed QMP unexpectedly (exit %s, see %s)" % (
            proc.poll(), workdir / "qemu.log"))
    finally:
        if qmp:
            qmp.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        qlog.close()
        if qmp_path.exists():
            qmp_path.unlink()


# --------------------------------------------------------------------------
# ELF fix-up for makedumpfile 1.7.2
# --------------------------------------------------------------------------

def fix_elf_layout(path):
    """Move the program headers of a QEMU 7.2 ELF dump to offset 64.

    QEMU 7.2 (dump/dump.c) writes the ELF header, then a section header
    table at offset 64 (e_shoff = 64) and only then the program headers;
    makedumpfile 1.7.2 assumes e_phoff == sizeof(Elf64_Ehdr) (64).  The
    section header only matters when e_phnum == PN_XNUM (0xffff, the real
    count in sh_info); otherwise we drop it.  The rewrite happens in place
    inside the [64, first data offset) gap, which always has room because
    QEMU's own headers were there."""
    with open(path, "r+b") as f:
        eh = bytearray(f.read(64))
        if eh[:4] != b"\x7fELF" or eh[4] != 2 or eh[5] != 1:
            raise FixtureError("%s is not a little-endian ELF64 dump" % path)
        (phoff, shoff) = struct.unpack_from("<QQ", eh, 0x20)
        (phentsize, phnum, shentsize, shnum, shstrndx) = \
            struct.unpack_from("<HHHHH", eh, 0x36)
        if phoff == 64:
            return False
        shdr = b""
        if shnum:
            f.seek(shoff)
            shdr = f.read(shentsize * shnum)
        real_phnum = phnum
        if phnum == 0xFFFF:
            real_phnum = struct.unpack_from("<I", shdr, 0x2C)[0]
        f.seek(phoff)
        ph = f.read(phentsize * real_phnum)
        data_start = min(struct.unpack_from("<Q", ph, i * phentsize + 8)[0]
                         for i in range(real_phnum))
        keep_sh = phnum == 0xFFFF
        new_phoff = 64
        new_shoff = 64 + len(ph) if keep_sh else 0
        end = 64 + len(ph) + (len(shdr) if keep_sh else 0)
        old_end = max(phoff + len(ph), shoff + len(shdr))
        if end > data_start:
            raise FixtureError("no room to move ELF program headers in %s"
                               % path)
        struct.pack_into("<QQ", eh, 0x20, new_phoff, new_shoff)
        if not keep_sh:
            struct.pack_into("<HHH", eh, 0x3A, 0, 0, 0)
        f.seek(0)
        f.write(eh)
        f.write(ph)
        if keep_sh:
            f.write(shdr)
        if old_end > end:
            f.write(b"\0" * (old_end - end))
    return True


# --------------------------------------------------------------------------
# the whole build
# --------------------------------------------------------------------------

class Fixture:
    def __init__(self, path):
        self.dir = Path(path)
        self.vmcore = self.dir / "vmcore"
        self.vmlinux = self.dir / "vmlinux"
        self.truth_dir = self.dir / "truth"
        self.serial_log = self.dir / "serial.log"
        self.meta = json.loads((self.dir / "meta.json").read_text())

    def __repr__(self):
        return "Fixture(%s)" % self.dir

    def truth(self):
        return truthmod.Truth(self.truth_dir)


PRINTK_REPLAY = "** replaying previous printk message **"


def drop_printk_replays(text):
    """The console transcript without the lines printk printed twice.

    When a console is taken over while it prints a record (7.3 under load;
    kernel/printk/printk.c console_prepend_replay()), the new owner prints
    the marker line PRINTK_REPLAY and then the whole record again: the
    line before the marker is the cut first copy, a prefix of the line
    after it.  That cut copy and the marker are dropped; a marker whose
    previous line is not such a prefix (the record had not begun) is
    dropped alone.  The stored serial.log keeps every line."""
    lines = text.split("\n")
    out = []
    for i, ln in enumerate(lines):
        core = ln.rstrip("\r")
        if core.endswith(PRINTK_REPLAY):
            cut = core[:-len(PRINTK_REPLAY)]
            after = lines[i + 1].rstrip("\r") if i + 1 < len(lines) else ""
            if not cut.strip() and out and out[-1].rstrip("\r") and \
                    after.startswith(out[-1].rstrip("\r")):
                out.pop()
            continue
        out.append(ln)
    return "\n".join(out)


def fixture_key(kernel, scenario, memory_mb, cpus, cmdline):
    h = hashlib.sha256()
    for part in (FORMAT_VERSION, kernel.suite, kernel.version,
                 sha256_file(scenario), memory_mb, cpus, cmdline,
                 sha256_file(HERE / "guest" / "init.sh"),
                 sha256_file(HERE / "truth.py")):
        h.update(str(part).encode() + b"\0")
    for inc in scenario_includes(scenario, scenario_options(scenario)):
        h.update(sha256_file(inc).encode())
    for h_src in sorted((HERE / "guest").glob("*.c")):
        h.update(h_src.name.encode() + sha256_file(h_src).encode())
    # Helpers in subdirectories of guest/ (e.g. scale/pagefrag) key only
    # the scenarios that use them: adding one keeps every other fixture's
    # key, so it is not rebuilt.
    for name in scenario_options(scenario).get("helpers", "").split(","):
        if "/" in name.strip():
            src = HERE / "guest" / (name.strip() + ".c")
            h.update(name.strip().encode() + sha256_file(src).encode())
    return h.hexdigest()[:24]


def reusable(out, key):
    try:
        meta = json.loads((out / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("key") == key and (out / "vmcore").exists()
            and (out / "vmlinux").exists()
            and (out / "truth" / "buddyinfo").exists())


def dump_level(suite):
    # makedumpfile 1.7.2 on 6.12 (trixie) classifies slab pages as user data
    # (page type/flags layout changed in 6.12), so "-d 31" drops slabs;
    # -d 17 = zero pages (1) + free pages (16) only.  7.3 (trixie-backports)
    # too: on its memcg-churn dump "-d 31" excluded 549 pages as user data
    # with AnonPages at 40 pages, and 11 of the 17 memcgs became unreadable.
    return 17 if suite in ("trixie", "trixie-backports") else 31


def check_tools(sopts):
    """One clear line for a missing host tool instead of a traceback."""
    need = {
        "qemu-system-x86_64": "qemu-system-x86",
        "makedumpfile": "makedumpfile",
        "apt-get": "apt", "apt-cache": "apt",
        "dpkg-deb": "dpkg", "dpkg": "dpkg",
    }
    if sopts.get("helpers"):
        need["gcc"] = "gcc libc6-dev"
    missing = sorted({pkg for tool, pkg in need.items()
                      if shutil.which(tool) is None})
    if not (shutil.which("busybox") or os.path.exists("/bin/busybox")):
        missing.append("busybox-static")
    if missing:
        raise FixtureError("missing host tools; apt-get install %s"
                           % " ".join(missing))


def _build_inputs(suite, scenario, memory=None, cpus=None, cmdline="",
                  refresh=False, timings=None):
    """What a fixture of ``scenario`` on ``suite`` is built from, as
    (scenario path, its options, memory MB, cpus, kernel command line,
    kernel, key): the one place the key's inputs are derived."""
    scenario = find_scenario(scenario)
    sopts = scenario_options(scenario)
    memory_mb = parse_size(memory or sopts.get("memory", DEFAULT_MEMORY))
    cpus = int(cpus or sopts.get("cpus", DEFAULT_CPUS))
    full_cmdline = " ".join(filter(None, [
        BASE_CMDLINE, sopts.get("cmdline", ""), cmdline]))
    kernel = get_kernel(suite, refresh=refresh, timings=timings)
    key = fixture_key(kernel, scenario, memory_mb, cpus, full_cmdline)
    return scenario, sopts, memory_mb, cpus, full_cmdline, kernel, key


def current_fixture(suite, scenario, out=None):
    """The fixture built in ``out`` (default: its default directory) when it
    is up to date, else None; nothing is built (the kernel is fetched if
    it is not cached, as its version is part of the key)."""
    out = Path(out or default_fixture_dir(suite, scenario)).resolve()
    key = _build_inputs(suite, scenario)[-1]
    return Fixture(out) if reusable(out, key) else None


def build_fixture(suite, scenario, out, memory=None, cpus=None,
                  cmdline="", refresh=False, keep_elf=False, timeout=None,
                  force=False):
    t_start = time.monotonic()
    timings = {}
    out = Path(out).resolve()
    scenario, sopts, memory_mb, cpus, full_cmdline, kernel, key = _build_inputs(
        suite, scenario, memory, cpus, cmdline, refresh, timings)
    check_tools(sopts)
    timeout = int(timeout or sopts.get("timeout", DEFAULT_TIMEOUT))
    out.parent.mkdir(parents=True, exist_ok=True)
    # The lock sits beside the fixture: the fixture directory itself is
    # replaced whole at the end, so a test that has it open never sees half
    # of an old fixture and half of a new one.
    with file_lock(out.with_name("." + out.name + ".lock")):
        if not force and reusable(out, key):
            log("reusing %s (key %s)" % (out, key))
            return Fixture(out)
        log("building %s/%s (kernel %s %s, %dM, cmdline %r) in %s" % (
            suite, scenario_name(scenario), kernel.release, kernel.version,
            memory_mb, full_cmdline, out))
        new = Path(tempfile.mkdtemp(prefix="." + out.name + ".new-",
                                    dir=out.parent))
        new.chmod(0o755)  # mkdtemp makes it private; fixtures are read by others
        try:
            meta = _build_into(new, kernel, suite, scenario, sopts, key,
                               memory_mb, cpus, full_cmdline, timeout,
                               keep_elf, timings, t_start)
        except BaseException:
            # keep the console of failed builds (CI artifacts) beside it
            if (new / "serial.log").exists():
                shutil.copyfile(new / "serial.log",
                                out.with_name(out.name + ".failed-serial.log"))
            shutil.rmtree(new, ignore_errors=True)
            raise
        if out.exists() or out.is_symlink():
            old = Path(tempfile.mkdtemp(prefix="." + out.name + ".old-",
                                        dir=out.parent))
            out.rename(old / "fixture")
            new.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            new.rename(out)
        log("done %s/%s in %.0fs: vmcore %.1f MB (ELF %.0f MB)" % (
            suite, meta["scenario"], timings["total"],
            meta["sizes"]["vmcore"] / 1e6, meta["sizes"]["elf"] / 1e6))
        return Fixture(out)


def _build_into(out, kernel, suite, scenario, sopts, key, memory_mb, cpus,
                full_cmdline, timeout, keep_elf, timings, t_start):
    """Build one fixture into the empty directory ``out``; returns its meta."""
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out) as tmpd:
        tmp = Path(tmpd)
        t0 = time.monotonic()
        helpers = build_helpers(sopts, tmp)
        initrd = build_initramfs(kernel, scenario, sopts, helpers,
                                 tmp / "initrd.gz")
        timings["initramfs"] = round(time.monotonic() - t0, 2)
        try:
            elf = run_qemu(kernel, initrd, full_cmdline, memory_mb, cpus,
                           tmp, timeout, timings,
                           extra_args=scenario_disks(sopts, tmp))
        finally:
            if (tmp / "serial.log").exists():
                shutil.copyfile(tmp / "serial.log", out / "serial.log")
        # truth first: a broken console transcript should fail early
        clean = tmp / "serial.clean"
        clean.write_bytes(drop_printk_replays(
            (out / "serial.log").read_bytes().decode("utf-8", "replace")).encode())
        truthmod.split_serial(clean, out / "truth")
        t0 = time.monotonic()
        fix_elf_layout(elf)
        timings["elf_fixup"] = round(time.monotonic() - t0, 2)
        elf_size = elf.stat().st_size
        t0 = time.monotonic()
        level = dump_level(suite)
        p = run(["makedumpfile", "-d", str(level), "-l", str(elf),
                 str(tmp / "vmcore")], check=False)
        if p.returncode != 0 or not (tmp / "vmcore").exists():
            raise FixtureError("makedumpfile -d %d -l failed: %s" % (
                level, " | ".join((p.stderr + p.stdout).strip()
                                  .splitlines()[-3:])))
        timings["makedumpfile"] = round(time.monotonic() - t0, 2)
        (tmp / "vmcore").rename(out / "vmcore")
        if keep_elf:
            elf.rename(out / "vmcore.elf")
    os.symlink(kernel.vmlinux, out / "vmlinux")
    timings["total"] = round(time.monotonic() - t_start, 2)
    meta = {
        "format": FORMAT_VERSION,
        "key": key,
        "suite": suite,
        "kernel_series": SUITES[suite],
        "kernel_release": kernel.release,
        "package_version": kernel.version,
        "image_package": kernel.image_pkg,
        "dbg_package": kernel.dbg_pkg,
        **({"more_packages": kernel.more_pkgs} if kernel.more_pkgs else {}),
        "scenario": scenario_name(scenario),
        "scenario_file": str(scenario),
        "scenario_sha256": sha256_file(scenario),
        "scenario_options": sopts,
        "cmdline": full_cmdline,
        "memory_mb": memory_mb,
        "cpus": cpus,
        "dump_level": level,
        "expected_panic": EXPECTED_PANIC,
        "timings_s": timings,
        "sizes": {
            "elf": elf_size,
            "vmcore": (out / "vmcore").stat().st_size,
            "vmlinux": kernel.vmlinux.stat().st_size,
        },
        "kernel_cache": str(kernel.dir),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def default_fixture_dir(suite, scenario):
    base = os.environ.get("CRASHEXT_FIXTURE_DIR")
    base = Path(base) if base else cache_root() / "fixtures"
    return base / suite / scenario_name(scenario)
