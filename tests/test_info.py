"""``crashext info`` and the dump/vmlinux checks, on real dumps.

Truth comes from the guest: its serial console (what the kernel printed as
it panicked), truth/uname_r, truth/meminfo.  Broken inputs are made from the
same real files: truncated copies, another kernel's vmlinux, garbage.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

SUITES = ["bullseye", "bookworm", "trixie", "trixie-backports"]


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "crashext", *args],
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def serial_panic(fx):
    text = open(fx.serial_log, encoding="utf-8", errors="replace").read()
    m = re.search(r"\[\s*(\d+\.\d+)\] Kernel panic - not syncing: (.*?)\r?$", text, re.M)
    assert m, "the guest's serial console shows no panic line"
    return float(m.group(1)), m.group(2).strip()


@pytest.mark.vmcore
@pytest.mark.parametrize("suite", SUITES)
def test_info_matches_what_the_guest_said(vmcore, suite):
    fx = vmcore(suite, "memcg-churn")
    rc, out, err = run_cli("info", "--json", "-c", str(fx.vmcore), "-s", str(fx.vmlinux))
    assert rc == 0, err
    info = json.loads(out)
    release = open(os.path.join(fx.truth_dir, "uname_r")).read().strip()
    assert info["release"] == release
    panic_ts, panic_msg = serial_panic(fx)
    assert info["panic"] == panic_msg == "sysrq triggered crash"
    memtotal_kb = int(re.search(r"MemTotal:\s+(\d+) kB",
                                open(os.path.join(fx.truth_dir, "meminfo")).read()).group(1))
    assert info["memory_bytes"] == memtotal_kb * 1024
    assert info["page_size"] == 4096
    assert info["machine"] == "x86_64"
    assert info["cpus"] == fx.meta["cpus"]
    # the dump was taken right after the panic line was printed
    assert panic_ts - 0.5 <= info["uptime_seconds"] <= panic_ts + 2.0
    assert info["errors"] == {}


@pytest.mark.vmcore
def test_info_table_shows_panic_in_quotes(vmcore):
    fx = vmcore("bookworm", "memcg-churn")
    rc, out, _ = run_cli("info", "-c", str(fx.vmcore), "-s", str(fx.vmlinux))
    assert rc == 0
    assert re.search(r'^\s*PANIC: "sysrq triggered crash"$', out, re.M)


@pytest.mark.vmcore
def test_wrong_vmlinux_names_both_releases(vmcore):
    a = vmcore("bookworm", "memcg-churn")
    b = vmcore("bullseye", "memcg-churn")
    rc, out, err = run_cli("info", "-c", str(a.vmcore), "-s", str(b.vmlinux))
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert a.meta["kernel_release"] in lines[0] and b.meta["kernel_release"] in lines[0]
    assert "Traceback" not in err


def _build_id(vmlinux):
    """The GNU build-id note of a vmlinux as binutils' readelf prints it."""
    out = subprocess.run(["readelf", "-n", str(vmlinux)], capture_output=True, text=True,
                         check=True).stdout
    return re.search(r"Build ID: ([0-9a-f]+)", out).group(1)


@pytest.mark.vmcore
@pytest.mark.parametrize("dump,other", [("trixie-backports", "trixie"),
                                        ("trixie", "trixie-backports")])
def test_wrong_vmlinux_across_7x_names_both_build_ids(vmcore, dump, other):
    """A 7.x dump with a 6.12 vmlinux and the other way round: one line
    naming both kernels and both build-ids (the dump's is its own vmlinux's,
    which VMCOREINFO carries since 5.9)."""
    a = vmcore(dump, "memcg-churn")
    b = vmcore(other, "memcg-churn")
    rc, out, err = run_cli("info", "-c", str(a.vmcore), "-s", str(b.vmlinux))
    assert rc == 2 and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert a.meta["kernel_release"] in lines[0] and b.meta["kernel_release"] in lines[0]
    assert _build_id(a.vmlinux)[:12] in lines[0] and _build_id(b.vmlinux)[:12] in lines[0]
    # every command refuses the pair the same way
    for cmd in ("memcgids", "frag", "triage"):
        rc, out, err2 = run_cli(cmd, "-c", str(a.vmcore), "-s", str(b.vmlinux))
        assert rc == 2 and err2.strip().splitlines() == [lines[0].replace("info:", cmd + ":", 1)]


@pytest.mark.vmcore
@pytest.mark.parametrize("cut", ["header", "bitmap", "middle", "last-page"])
def test_truncated_dump_is_one_line_never_a_traceback(vmcore, tmp_path, cut):
    fx = vmcore("bookworm", "memcg-churn")
    size = os.path.getsize(fx.vmcore)
    keep = {"header": 100, "bitmap": 8192, "middle": size // 2, "last-page": size - 4096}[cut]
    broken = tmp_path / "vmcore"
    with open(fx.vmcore, "rb") as src, open(broken, "wb") as dst:
        dst.write(src.read(keep))
    rc, out, err = run_cli("info", "-c", str(broken), "-s", str(fx.vmlinux))
    assert "Traceback" not in err
    if cut in ("header", "bitmap"):
        assert rc == 2 and len(err.strip().splitlines()) == 1
        assert "truncated" in err
    else:
        # the page data is cut: say so, and answer what the dump still holds
        assert "truncated vmcore" in err
        assert rc in (0, 2)
        if rc == 0:
            assert "RELEASE: " + fx.meta["kernel_release"] in out


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"\x7fELF" + b"\0" * 10])
def test_garbage_vmcore(tmp_path, content):
    p = tmp_path / "vmcore"
    p.write_bytes(content)
    vml = tmp_path / "vmlinux"
    vml.write_bytes(b"not elf")
    rc, out, err = run_cli("info", "-c", str(p), "-s", str(vml))
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_files_and_flags():
    rc, _, err = run_cli("info", "-c", "/nonexistent/vmcore", "-s", "/nonexistent/vmlinux")
    assert rc == 2 and "no such file" in err
    rc, _, err = run_cli("info")
    assert rc == 2 and "-c VMCORE" in err
    rc, _, err = run_cli("info", "-c", "x", "-k")
    assert rc == 2 and "choose one" in err


@pytest.mark.vmcore
def test_stripped_vmlinux_says_no_debug_info(vmcore, tmp_path):
    fx = vmcore("bullseye", "memcg-churn")
    objcopy = shutil.which("objcopy")
    if objcopy is None:
        pytest.skip("objcopy (binutils) is not installed")
    stripped = tmp_path / "vmlinux"
    subprocess.run([objcopy, "--strip-debug", str(fx.vmlinux), str(stripped)], check=True)
    rc, _, err = run_cli("info", "-c", str(fx.vmcore), "-s", str(stripped))
    assert rc == 2 and "no debug info" in err and "Traceback" not in err


@pytest.mark.vmcore
def test_swapped_arguments(vmcore):
    fx = vmcore("bookworm", "memcg-churn")
    rc, _, err = run_cli("info", "-c", str(fx.vmlinux), "-s", str(fx.vmcore))
    assert rc == 2 and "not a core dump" in err
