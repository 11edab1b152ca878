"""Boot a fixture kernel under QEMU and keep it running for live tests.

Reuses tests/vmcore/fixturelib.py (kernel download and cache, initramfs,
QMP client); only the QEMU life cycle differs from a dump build: the guest
does not panic, the host waits for a marker on the serial console, and two
QMP sockets are opened -- ``ctl.sock`` for the harness (stop, cont, quit)
and ``qmp.sock`` for the tool under test (drgn's ``set_qemu_qmp``; QEMU
serves one client per QMP socket).

Serial protocol of tests/live/scenarios/*.sh (each marker on its own line):
``@@CRASHEXT:LBEGIN name@@`` base64 ``@@CRASHEXT:LEND name sha256@@`` blocks,
an ``LPLAIN``/``LPLAINEND`` plain block, ``@@CRASHEXT:LIVE_READY@@`` when the
guest is quiescent, ``@@CRASHEXT:FAIL msg@@`` on a guest-side failure.
"""

import base64
import contextlib
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VMCORE_DIR = HERE.parent / "vmcore"
if str(VMCORE_DIR) not in sys.path:
    sys.path.insert(0, str(VMCORE_DIR))
import fixturelib  # noqa: E402

SCENARIOS = HERE / "scenarios"
MARK = re.compile(r"@@CRASHEXT:(\w+)(?: (.*?))?@@")


class GuestError(Exception):
    """The guest did not come up as expected; one line plus the serial tail."""


def read_serial(path):
    try:
        text = Path(path).read_bytes().decode("utf-8", "replace")
    except OSError:
        return []
    return [ln.replace("\r", "") for ln in text.split("\n")]


def parse_blocks(lines):
    """{name: text} of the LBEGIN/LEND (sha256-checked) and LPLAIN blocks."""
    out = {}
    cur = None
    for ln in lines:
        m = MARK.search(ln)
        if m:
            kind, arg = m.group(1), (m.group(2) or "")
            if kind in ("LBEGIN", "LPLAIN"):
                cur = (kind, arg.split()[0], [])
            elif kind == "LEND" and cur:
                name, digest = arg.split()
                data = base64.b64decode("".join(cur[2]))
                if hashlib.sha256(data).hexdigest() != digest:
                    raise GuestError("block %s garbled on the serial console" % name)
                out[name] = data.decode()
                cur = None
            elif kind == "LPLAINEND" and cur:
                out[cur[1]] = "\n".join(x for x in cur[2] if x.strip()) + "\n"
                cur = None
            continue
        if cur:
            cur[2].append(ln.strip() if cur[0] == "LBEGIN" else ln)
    return out


class LiveGuest:
    """``with LiveGuest(...) as g:`` boots; ``g.wait_for("LIVE_READY")``;
    ``g.qmp_socket`` for drgn; ``g.ctl.cmd("stop")``; killed on exit."""

    def __init__(self, workdir, kernel, initrd=None, cmdline="", memory="512M", cpus=2,
                 drives=(), extra=()):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.kernel = kernel
        self.serial = self.dir / "serial.log"
        self.qmp_socket = self.dir / "qmp.sock"
        self.ctl_socket = self.dir / "ctl.sock"
        cmd = [
            "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max,la57=off",
            "-smp", str(cpus), "-m", memory, "-vga", "none", "-nographic",
            "-monitor", "none", "-nic", "none", "-no-reboot",
            "-device", "pvpanic", "-device", "vmcoreinfo",
            "-kernel", str(kernel.vmlinuz),
            "-append", " ".join(filter(None, [fixturelib.BASE_CMDLINE, cmdline])),
            "-serial", "file:%s" % self.serial,
            "-qmp", "unix:%s,server=on,wait=off" % self.ctl_socket,
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_socket,
        ]
        if initrd:
            cmd += ["-initrd", str(initrd)]
        for i, img in enumerate(drives):
            cmd += ["-drive", "file=%s,if=none,id=d%d,format=raw" % (img, i),
                    "-device", "nvme,serial=crashext%d,drive=d%d" % (i, i)]
        cmd += list(extra)
        self.cmd = cmd
        self.proc = None
        self.ctl = None
        self.t0 = None

    def __enter__(self):
        for p in (self.serial, self.qmp_socket, self.ctl_socket):
            if p.exists():
                p.unlink()
        self.log = open(self.dir / "qemu.log", "w")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.ctl = fixturelib.QMP(self.ctl_socket, time.monotonic() + 30)
        return self

    def __exit__(self, *exc):
        try:
            if self.ctl:
                try:
                    self.ctl.cmd("quit", timeout=10)
                except Exception:
                    pass
                self.ctl.close()
        finally:
            if self.proc and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.log.close()

    def tail(self, n=20):
        return "\n".join(read_serial(self.serial)[-n:])

    def wait_for(self, marker, timeout):
        """Seconds until ``@@CRASHEXT:<marker>...@@`` appears on the console."""
        end = time.monotonic() + timeout
        while True:
            lines = read_serial(self.serial)
            for ln in lines:
                m = MARK.search(ln)
                if not m:
                    continue
                if m.group(1) == "FAIL":
                    raise GuestError("guest: %s\n%s" % (m.group(2), self.tail()))
                if m.group(1) == marker:
                    return round(time.monotonic() - self.t0, 1)
            if self.proc.poll() is not None:
                raise GuestError("QEMU exited (%s) before %s\n%s"
                                 % (self.proc.returncode, marker, self.tail()))
            if time.monotonic() > end:
                raise GuestError("no %s within %ds\n%s" % (marker, timeout, self.tail()))
            time.sleep(0.5)

    def blocks(self):
        return parse_blocks(read_serial(self.serial))


def live_initramfs(kernel, scenario, dest):
    """The fixture initramfs (busybox, modules, helpers) with a live scenario."""
    path = fixturelib.find_scenario(str(SCENARIOS / (scenario + ".sh")))
    sopts = fixturelib.scenario_options(path)
    helpers = fixturelib.build_helpers(sopts, Path(dest).parent)
    return fixturelib.build_initramfs(kernel, path, sopts, helpers, dest), sopts


@contextlib.contextmanager
def ready_guest(kernel, scenario, workdir, timeout=600):
    """A guest running live scenario ``scenario`` once it printed
    LIVE_READY; GuestError (one line and the serial tail) if it did not."""
    initrd, sopts = live_initramfs(kernel, scenario, Path(workdir) / "initrd.gz")
    with LiveGuest(workdir, kernel, initrd=initrd, memory=sopts.get("memory", "512M")) as g:
        g.wait_for("LIVE_READY", timeout)
        yield g
