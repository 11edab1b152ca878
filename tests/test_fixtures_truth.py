"""The real-dump fixtures themselves: the serial-console splitter, the truth
parsers, the ELF fix-up, and consistency of each built fixture's ground
truth (which is the kernel's own data, so it must agree with itself)."""

import base64
import hashlib
import struct
import subprocess

import pytest

from conftest import fixturelib, truthmod

CHURN_REMOVED_CHARGED = [
    "/kubepods/pod2/ctr1", "/kubepods/pod3/ctr2", "/kubepods/pod4/ctr1",
    "/kubepods/pod4/ctr2", "/kubepods/pod4/ctr3", "/kubepods/pod4",
]
CHURN_REMOVED_CLEAN = ["/kubepods/pod1/ctr3", "/system.slice/b.service"]


# ---------------------------------------------------------------- unit tests

def _block(name, data, corrupt=False):
    digest = hashlib.sha256(data).hexdigest()
    b64 = base64.b64encode(data).decode()
    lines = [b64[i:i + 76] for i in range(0, len(b64), 76)] or []
    if corrupt:
        lines[0] = lines[0][:-1] + ("A" if lines[0][-1] != "A" else "B")
    return ["@@CRASHEXT:BEGIN %s@@" % name] + lines + [
        "@@CRASHEXT:END %s %s %d@@" % (name, digest, len(data))]


BUDDY = ("Node 0, zone      DMA      0      0      0      0      0      1"
         "      1      1      0      1      3 \n"
         "Node 0, zone    DMA32      3     19     15      2      4      3"
         "      9      9      3      3    100 \n")


def _serial(tmp_path, corrupt=None, drop=None, noise=True):
    out = ["SeaBIOS junk", "@@CRASHEXT:START test@@"]
    for name in truthmod.REQUIRED:
        if name == "buddyinfo" or name == drop:
            continue
        data = ("content of %s\n" % name).encode() * 3
        out += _block(name, data, corrupt == name)
        if noise:
            out.append("[   12.345678] some kernel message: x = 1")
    # the buddyinfo block comes through /dev/kmsg: printk time stamps
    body = BUDDY.splitlines()
    out += ["[   14.700001] " + ln for ln in
            ["@@CRASHEXT:PLAIN buddyinfo@@"] + body + [
                "@@CRASHEXT:PLAINEND buddyinfo %d@@" % len(body),
                "@@CRASHEXT:PANIC@@"]]
    out += ["[   14.800000] Kernel panic - not syncing: sysrq triggered crash"]
    p = tmp_path / "serial.log"
    p.write_bytes("\r\n".join(out).encode())
    return p


def test_split_serial_roundtrip(tmp_path):
    names = truthmod.split_serial(_serial(tmp_path), tmp_path / "truth")
    assert set(names) == set(truthmod.REQUIRED)
    assert (tmp_path / "truth" / "meminfo").read_text() == \
        "content of meminfo\n" * 3
    assert (tmp_path / "truth" / "buddyinfo").read_text().splitlines() == \
        BUDDY.splitlines()


def test_split_serial_detects_corruption(tmp_path):
    with pytest.raises(truthmod.TruthError, match="zoneinfo corrupted"):
        truthmod.split_serial(_serial(tmp_path, corrupt="zoneinfo"),
                              tmp_path / "truth")


def test_split_serial_detects_missing(tmp_path):
    with pytest.raises(truthmod.TruthError, match="missing.*vmstat"):
        truthmod.split_serial(_serial(tmp_path, drop="vmstat"),
                              tmp_path / "truth")


def test_split_serial_guest_failure(tmp_path):
    p = tmp_path / "serial.log"
    p.write_text("@@CRASHEXT:FAIL insmod qemu_fw_cfg failed@@\n")
    with pytest.raises(truthmod.TruthError, match="insmod qemu_fw_cfg"):
        truthmod.split_serial(p, tmp_path / "truth")


def test_split_serial_truncated_buddyinfo(tmp_path):
    p = _serial(tmp_path)
    text = p.read_text().replace("PLAINEND buddyinfo 2", "PLAINEND buddyinfo 3")
    p.write_text(text)
    with pytest.raises(truthmod.TruthError, match="buddyinfo"):
        truthmod.split_serial(p, tmp_path / "truth")


def test_parse_buddyinfo():
    bi = truthmod.parse_buddyinfo(BUDDY)
    assert bi[(0, "DMA32")] == [3, 19, 15, 2, 4, 3, 9, 9, 3, 3, 100]
    assert len(bi[(0, "DMA")]) == 11


def _qemu72_like_elf(path, phnum=3):
    """ELF header, one section header at 64, phdrs after it (QEMU 7.2)."""
    shoff, phoff = 64, 128
    data_start = phoff + 56 * phnum
    eh = bytearray(64)
    eh[:16] = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    struct.pack_into("<HHIQQQIHHHHHH", eh, 16, 4, 62, 1, 0, phoff, shoff,
                     0, 64, 56, phnum, 64, 1, 0)
    sh = bytearray(64)
    struct.pack_into("<I", sh, 0x2C, phnum)
    ph = b"".join(struct.pack("<IIQQQQQQ", 1, 7, data_start + i * 4096,
                              0, i * 4096, 4096, 4096, 0)
                  for i in range(phnum))
    path.write_bytes(bytes(eh) + bytes(sh) + ph + b"\xAA" * 4096 * phnum)
    return ph


def test_fix_elf_layout(tmp_path):
    p = tmp_path / "core.elf"
    ph = _qemu72_like_elf(p)
    assert fixturelib.fix_elf_layout(p) is True
    d = p.read_bytes()
    phoff, shoff = struct.unpack_from("<QQ", d, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", d, 0x36)
    assert (phoff, shoff, phnum, shnum) == (64, 0, 3, 0)
    assert d[64:64 + len(ph)] == ph
    assert d[64 + len(ph):128 + len(ph)] == b"\0" * 64
    assert d[128 + len(ph):] == b"\xAA" * 4096 * 3
    assert fixturelib.fix_elf_layout(p) is False     # idempotent


def test_cpio_newc(tmp_path):
    c = fixturelib.Cpio()
    c.dir("bin")
    c.file("bin/x", b"hello", 0o755)
    c.chardev("dev/console", 5, 1)
    data = c.finish()
    assert data.startswith(b"070701")
    assert data.endswith(b"\0") and b"TRAILER!!!" in data
    assert len(data) % 4 == 0


def test_scenario_headers():
    for name in ("memcg-churn", "nokmem", "fragmented", "cgroup-v1",
                 "memcg-many"):
        path = fixturelib.find_scenario(name)
        opts = fixturelib.scenario_options(path)
        assert "memory" in opts, name
        assert path.read_text().startswith("# " + name + ":"), name


# ------------------------------------------------------- built fixtures

CI_SET = fixturelib.CI_SET


def _reparents_lru_pages(fx):
    """Whether the fixture's kernel hands a memcg's LRU pages to its parent
    when the memcg goes offline, so that pages left charged to a removed
    cgroup (the tmpfs files of memcg-churn) no longer keep it dying: its
    vmlinux defines lru_reparent_memcg() (7.3: yes; 5.10, 6.1, 6.12: no).
    That is the "Eliminate Dying Memory Cgroup" series (Muchun Song, Qi
    Zheng); the mainline commit and its first release are unconfirmed here.
    (Debian's System.map files are one-line placeholders: binutils' nm
    reads the symbol table of the debug vmlinux instead.)"""
    out = subprocess.run(["nm", str(fx.vmlinux)], capture_output=True, text=True,
                         check=True).stdout
    assert " T panic\n" in out, "nm found no kernel symbols in %s" % fx.vmlinux
    return " T lru_reparent_memcg\n" in out


def _zone_free_pages(zoneinfo):
    return {z: v["nr_free_pages"] for z, v in zoneinfo.items()
            if v.get("present", v.get("spanned", 0))}


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", CI_SET,
                         ids=["%s-%s" % x for x in CI_SET])
def test_fixture_truth(vmcore, suite, scenario):
    fx = vmcore(suite, scenario)
    t = fx.truth()
    parsed = t.parse_all()
    assert set(truthmod.REQUIRED) <= set(parsed)
    meta = fx.meta
    assert meta["suite"] == suite and meta["scenario"] == scenario
    assert parsed["uname_r"] == meta["kernel_release"]
    assert parsed["scenario"] == scenario
    assert parsed["cmdline"] == meta["cmdline"]
    assert parsed["panic_string"] == "sysrq triggered crash"
    assert parsed["guest_checks"] == {"pvpanic": 1, "vmcoreinfo": 1}
    assert fx.vmcore.stat().st_size > 1 << 20
    assert fx.vmlinux.resolve().stat().st_size > 100 << 20

    # buddyinfo (read last) vs zoneinfo's nr_free_pages (read a little
    # earlier): sum(count << order) per zone must agree up to the churn of
    # the few commands in between (per-cpu lists are in neither)
    bi = parsed["buddyinfo"]
    zfree = _zone_free_pages(parsed["zoneinfo"])
    assert set(bi) <= set(zfree)
    for zone, counts in bi.items():
        total = sum(c << o for o, c in enumerate(counts))
        tol = max(1024, zfree[zone] // 50)
        assert abs(total - zfree[zone]) <= tol, (zone, total, zfree[zone])
    assert abs(sum(sum(c << o for o, c in enumerate(v))
                   for v in bi.values()) * 4
               - parsed["meminfo"]["MemFree"]) <= 8192 + \
        parsed["meminfo"]["MemFree"] // 50

    # extfrag/unusable index: one value per order for every populated zone
    for name in ("extfrag_index", "unusable_index"):
        for zone, vals in parsed[name].items():
            assert len(vals) == len(bi[zone]), (name, zone)

    # the serial console's panic line is the expected panic string
    serial = fx.serial_log.read_bytes().decode("utf-8", "replace")
    assert "Kernel panic - not syncing: sysrq triggered crash" in serial

    tree = {r["path"]: r for r in parsed["cgroup_tree.tsv"]}
    assert "/" in tree
    if scenario in ("memcg-churn", "nokmem", "cgroup-v1"):
        charged = [r["path"] for r in parsed["removed_charged.tsv"]]
        clean = [r["path"] for r in parsed["removed_clean.tsv"]]
        assert charged == CHURN_REMOVED_CHARGED
        assert clean == CHURN_REMOVED_CLEAN
        assert not (set(charged) | set(clean)) & set(tree)
        for r in parsed["removed_charged.tsv"] + parsed["removed_clean.tsv"]:
            assert r["ino"] > 1
        # cgroup ids (kernfs inode numbers) are unique
        inos = [r["ino"] for r in tree.values()] + [
            r["ino"] for r in parsed["removed_charged.tsv"]]
        assert len(inos) == len(set(inos))
        # every memcg removed while charged is still dying, the clean
        # ones are gone; a kernel that moves a dying memcg's LRU pages to
        # its parent when it goes offline frees those too
        dying = 0 if _reparents_lru_pages(fx) else len(charged)
        if parsed["cgroup_mode"] == "v2":
            assert tree["/"]["nr_dying_descendants"] == dying
            assert parsed["cgroup_stat"]["/"]["nr_dying_descendants"] == dying
            assert set(parsed["memory_stat"]) >= set(tree) - {"/"}
        else:
            mem = parsed["proc_cgroups"]["memory"]
            assert mem["hierarchy"] > 0
            assert mem["num_cgroups"] == len(tree) + len(charged)
        # charged containers hold their tmpfs file
        assert tree["/kubepods/pod3/ctr3"]["memory_current"] >= 768 * 1024
    if scenario == "nokmem":
        assert "cgroup.memory=nokmem" in parsed["cmdline"]
        for path, st in parsed["memory_stat"].items():
            if path != "/":
                assert st.get("slab", 0) == 0, path
    if scenario == "memcg-churn" and parsed["cgroup_mode"] == "v2":
        assert parsed["memory_stat"]["/kubepods/pod3/ctr3"]["slab"] > 0
    if scenario == "cgroup-v1":
        assert parsed["cgroup_mode"] == "v1"
    if scenario == "fragmented":
        # no free block >= pageblock order (9) left in the big zones, and
        # the kernel's own extfrag_index agrees (-1 = "would succeed")
        frag = parsed["extfrag_index"]
        big = [z for z in bi if z[1] in ("DMA32", "Normal")]
        assert big
        for zone in big:
            assert sum(bi[zone][9:]) <= 2, (zone, bi[zone])
            assert any(v != -1.0 for v in frag[zone][9:]), (zone,
                                                            frag[zone])


def test_printk_replay_drops_the_cut_copy(tmp_path):
    """A 7.3 guest's console under load (serial.log of a trixie-backports
    memcg-churn build): printk cut a record of the extfrag_index block,
    printed its marker and the record again; the splitter sees each record
    once, and a marker with no cut copy before it takes no other line."""
    lines = [
        "[  124.964127] @@CRASHEXT:PLAIN extfrag_index@@",
        "[  124.964231] Node 0, zone      DMA -1.000 -1.000 -1.000 -1.000 -1.000",
        "** replaying previous printk message **",
        "[  124.964231] Node 0, zone      DMA -1.000 -1.000 -1.000 -1.000 -1.000 -1.000"
        " -1.000 -1.000 -1.000 -1.000 -1.000 ",
        "[  124.964276] Node 0, zone    DMA32 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000"
        " -1.000 -1.000 -1.000 -1.000 -1.000 ",
        "** replaying previous printk message **",
        "[  124.964309] @@CRASHEXT:PLAINEND extfrag_index 2@@",
    ]
    got = fixturelib.drop_printk_replays("\r\n".join(lines) + "\r\n").split("\r\n")
    assert got == [lines[0]] + lines[3:5] + [lines[6], ""]
