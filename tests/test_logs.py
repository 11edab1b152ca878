"""Log normalisation and record extraction on real and hand-shaped input."""

import bz2
import gzip
import io
import lzma
import os
import random

import pytest
from hypothesis import given, settings, strategies as st

from crashext.errors import InputError
from crashext.sources import kmsg, logs, logscan

DATA = os.path.join(os.path.dirname(__file__), "data", "logs")
SEED = os.path.join(DATA, "rhel7-3.10.0-693.2.2-idr-bug.dmesg")


def norm(*lines):
    return list(logs.normalize(lines))


def test_dmesg_forms():
    a, = norm("[66249123.178811] docker-runc: page allocation failure: order:6, mode:0x10c0d0")
    assert a.ts == pytest.approx(66249123.178811) and a.text.startswith("docker-runc:")
    b, = norm("[Mon Apr 20 15:08:07 2020] CPU: 1 PID: 2 Comm: x Not tainted 5.4.19 #1")
    assert b.ts is None and b.stamp == "Mon Apr 20 15:08:07 2020" and b.text.startswith("CPU: 1")
    c, = norm("[   12.345678] [  T460] systemd[1]: hello")        # CONFIG_PRINTK_CALLER
    assert c.ts == pytest.approx(12.345678) and c.text == "systemd[1]: hello"
    d, = norm("<4>[    1.000000] Mem-Info:")                       # dmesg -r
    assert d.text == "Mem-Info:" and d.ts == 1.0


def test_syslog_and_journal_forms():
    lines = norm(
        "Apr 01 16:27:01 sm21 kernel: swapper/21: page allocation failure: order:0, mode:0x20",
        "Jul 16 11:53:25 host kernel: [1310061.327447] CPU: 44 PID: 24430 Comm: x Not tainted 4.15.0 #1",
        "Dec 23 21:21:21 systemd[1]: Starting something...",     # another program: dropped
        "Dec 23 21:21:28 kernel: mount-s3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0",
        "2024-02-09T08:09:39.123456+00:00 host kernel: Mem-Info:",
        "[ 1234.567890] host kernel: Node 0 DMA free:15908kB",     # journalctl -o short-monotonic
        "kernel: systemd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0",
    )
    texts = [l.text for l in lines]
    assert texts == [
        "swapper/21: page allocation failure: order:0, mode:0x20",
        "CPU: 44 PID: 24430 Comm: x Not tainted 4.15.0 #1",
        "mount-s3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0",
        "Mem-Info:",
        "Node 0 DMA free:15908kB",
        "systemd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0"]
    assert lines[0].stamp == "Apr 01 16:27:01"
    assert lines[1].ts == pytest.approx(1310061.327447)
    assert lines[4].ts == pytest.approx(1234.56789)


def test_rsyslog_012_escapes_split_lines():
    path = os.path.join(DATA, "mounts3-meminfo-012.log")
    lines = list(logs.log_lines(path))
    body = [l for l in lines if l.text.lstrip().startswith(("active_file", "unevictable",
                                                             "slab_reclaimable", "mapped",
                                                             "free:"))]
    # the one syslog line carried five show_mem lines joined by #012
    assert len(body) == 5 and all(l.cont for l in body)
    assert len({l.lineno for l in body}) == 1


def test_unprefixed_continuations_keep_their_record_time():
    lines = list(logs.log_lines(SEED))
    cont = [l for l in lines if l.cont]
    # the RHEL7 idr-bug log's Mem-Info counters lost their stamps (printk continuation lines)
    assert [l.text.split(":")[0] for l in cont] == [
        "active_file", "unevictable", "slab_reclaimable", "mapped", "free"]
    assert all(l.ts == pytest.approx(66249123.178901) for l in cont)


@pytest.mark.parametrize("opener,suffix", [(gzip.open, ".gz"), (lzma.open, ".xz"),
                                            (bz2.open, ".bz2")])
def test_compressed_same_as_plain(tmp_path, opener, suffix):
    raw = open(SEED, "rb").read()
    p = tmp_path / ("log" + suffix)
    with opener(p, "wb") as f:
        f.write(raw)
    plain = [(l.ts, l.text) for l in logs.log_lines(SEED)]
    packed = [(l.ts, l.text) for l in logs.log_lines(str(p))]
    assert packed == plain


def test_missing_and_directory_are_input_errors(tmp_path):
    with pytest.raises(InputError):
        list(logs.log_lines(str(tmp_path / "nope")))
    with pytest.raises(InputError):
        list(logs.log_lines(str(tmp_path)))


def test_truncated_gzip_is_one_input_error(tmp_path):
    p = tmp_path / "cut.gz"
    data = gzip.compress(open(SEED, "rb").read())
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        list(logs.log_lines(str(p)))


def test_buddy_line_total_checked_and_orders_from_sizes():
    b = kmsg.parse_buddy_line("Node 0 DMA32: 1501*4kB (UEM) 498*8kB (UEM) 271*16kB (UEM) "
                              "265*32kB (UEM) 154*64kB (UEM) 93*128kB (UEM) 10*256kB (M) "
                              "6*512kB (M) 2*1024kB (EM) 6*2048kB (M) 0*4096kB = 64532kB")
    assert b.counts == [1501, 498, 271, 265, 154, 93, 10, 6, 2, 6, 0]
    assert b.types[8] == "EM" and b.types[10] == ""
    assert b.total_kb == 64532 and b.total_ok
    bad = kmsg.parse_buddy_line("Node 0 DMA: 1*4kB (U) 1*8kB = 16kB")
    assert bad.total_ok is False and bad.computed_kb == 12
    cut = kmsg.parse_buddy_line("Node 0 Normal: 8454*4kB (UEM) 6702*8kB (UE")
    assert cut.total_ok is None and cut.counts[:2] == [8454, 6702]


def test_frames_mark_question_marks():
    f = kmsg.parse_frame("[<ffffffff810a93c0>] ? manage_workers.isra.24+0x2a0/0x2a0")
    assert f.unreliable and f.func == "manage_workers.isra.24" and f.offset == 0x2a0
    g = kmsg.parse_frame(" ? __nvme_submit_sync_cmd+0xc1/0x1f0 [nvme_core]")
    assert g.unreliable and g.module == "nvme_core"
    h = kmsg.parse_frame(" dump_stack+0x66/0x90")
    assert not h.unreliable and h.size == 0x90


def test_oops_headers_from_seed_match_crash_session():
    heads = list(kmsg.iter_oops(logs.log_lines(SEED)))
    assert len(heads) == 1
    h = heads[0]
    session = open(os.path.join(DATA, "rhel7-3.10.0-693.2.2-crash-session.txt")).read()
    # crash's own banner for this vmcore: PANIC: "kernel BUG at lib/idr.c:1157!", PID: 18614,
    # exception RIP: ida_simple_remove+65
    assert f'PANIC: "{h.message}"' in session
    assert f"PID: {h.pid}" in session
    assert h.rip_func == "ida_simple_remove" and int(h.rip.split("+")[1].split("/")[0], 16) == 65
    assert "[exception RIP: ida_simple_remove+65]" in session


def test_interleaved_failures_are_separate_records():
    recs = [r for r in kmsg.extract(logs.log_lines(os.path.join(DATA, "cortx-rhel7-interleaved.log")))
            if isinstance(r, kmsg.AllocFailure)]
    assert [r.comm for r in recs] == ["swapper/21", "swapper/44"]
    assert len(recs[0].trace) == 6 and recs[0].trace[-1].func == "__napi_alloc_skb"
    assert recs[1].cpu == 44 and not recs[1].trace and recs[1].partial


def test_truncated_report_is_partial_not_an_error():
    recs = list(kmsg.extract(logs.log_lines(os.path.join(DATA, "rpi-4.12-memalloc.log"))))
    a, = [r for r in recs if isinstance(r, kmsg.AllocFailure)]
    assert a.nodemask == "(null)" and a.release == "4.12.0-rc2-v8+"
    assert a.trace[-1].func == "__usb_hcd_giveback_urb"   # the cut frame after it is dropped


def test_slub_block():
    lines = norm("[ 1.0] SLUB: Unable to allocate memory on node -1, gfp=0x8020(GFP_ATOMIC|__GFP_ZERO)",
                 "[ 1.0]   cache: kmalloc-512, object size: 512, buffer size: 512, default order: 2, min order: 0",
                 "[ 1.0]   node 0: slabs: 1105, objs: 35360, free: 0",
                 "[ 1.1] eth0: link up")
    s, = [r for r in kmsg.extract(lines) if isinstance(r, kmsg.SlubFailure)]
    assert (s.node, s.gfp, s.gfp_names, s.cache, s.min_order) == \
        (-1, 0x8020, ["GFP_ATOMIC", "__GFP_ZERO"], "kmalloc-512", 0)
    assert s.nodes == [{"node": 0, "slabs": 1105, "objs": 35360, "free": 0}]


SEED_LINES = open(SEED, encoding="utf-8").read().splitlines()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=60))
def test_garbage_never_raises(lines):
    list(kmsg.extract(logs.normalize(lines)))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_truncated_and_interleaved_seed_never_raises(data):
    lines = list(SEED_LINES)
    cut_line = data.draw(st.integers(0, len(lines)))
    cut_char = data.draw(st.integers(0, 300))
    lines = lines[:cut_line] + ([lines[cut_line][:cut_char]] if cut_line < len(lines) else [])
    seed = data.draw(st.integers(0, 2**32))
    rnd = random.Random(seed)
    mixed = []
    other = [l[: rnd.randint(0, len(l))] for l in SEED_LINES]
    for l in lines:
        mixed.append(l)
        if rnd.random() < 0.2:
            mixed.append(rnd.choice(other))
    for rec in kmsg.extract(logs.normalize(mixed)):
        assert rec.lines[0] <= rec.lines[1] if hasattr(rec, "lines") else True


def _records(recs):
    out = []
    for r in recs:
        d = dict(r.__dict__)
        out.append((type(r).__name__, repr(sorted(d.items(), key=lambda kv: kv[0]))))
    return out


def test_gated_reading_finds_the_same_records(tmp_path):
    """The fast path (skip text between records) changes nothing a record holds."""
    import glob as _glob
    for path in sorted(_glob.glob(os.path.join(DATA, "*"))):
        slow = _records(kmsg.extract(logs.log_lines(path)))
        gate = logs.Gate()
        fast = _records(kmsg.extract(logs.gated_chunks(logs.text_chunks(path, 64), gate), gate))
        assert fast == slow, path


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_gated_equals_plain_on_interleavings(data):
    rnd = random.Random(data.draw(st.integers(0, 2**32)))
    noise = ["[ 1.0] eth0: link up", "random words BUG", "[ 2.0] Oops", "", "#012x"]
    mixed = []
    for l in SEED_LINES * 2:
        mixed.append(l[: rnd.randint(0, len(l))] if rnd.random() < 0.05 else l)
        if rnd.random() < 0.1:
            mixed.append(rnd.choice(noise))
    text = "\n".join(mixed)
    chunk = data.draw(st.integers(1, 500))
    slow = _records(kmsg.extract(logs.normalize(text.split("\n"))))
    gate = logs.Gate()
    chunks = [text[i:i + chunk] for i in range(0, len(text), chunk)]
    fast = _records(kmsg.extract(logs.gated_chunks(chunks, gate), gate))
    assert fast == slow


def test_gated_continuation_trigger_gets_previous_stamp():
    text = "[ 5.000000] eth0: up\n[ 6.000000] eth1: up\nkernel BUG at mm/x.c:1!\n"
    slow = list(kmsg.extract(logs.normalize(text.splitlines())))
    gate = logs.Gate()
    fast = list(kmsg.extract(logs.gated_chunks([text], gate), gate))
    # the unstamped line inherits the stamp of the line before it, skipped or not
    assert [r.ts for r in fast] == [r.ts for r in slow] == [6.0]


# -- the byte-level scan (gated_bytes): same lines as the decoded one ----------

def _finders():
    out = [("re", logscan.trigger_finder("re"))]
    try:
        out.append(("hyperscan", logscan.trigger_finder("hyperscan")))
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
    return out


@pytest.mark.parametrize("size", [64, 4096, 1 << 20])
def test_gated_bytes_equals_gated_chunks_on_every_log(size):
    import glob as _glob
    for path in sorted(_glob.glob(os.path.join(DATA, "*"))):
        slow = [(l.ts, l.text, l.lineno, l.stamp, l.cont) for l in logs.log_lines(path)]
        for name, finder in _finders():
            gate = logs.Gate()
            fast = _records(kmsg.extract(logscan.gated_bytes(logscan.byte_chunks(path, size), gate,
                                                          finder), gate))
            assert fast == _records(kmsg.extract(logs.log_lines(path))), (path, name)
            assert gate.lines == max([l[2] for l in slow], default=0), (path, name)


def test_gated_file_plain_and_compressed_equals_log_lines(tmp_path):
    import glob as _glob
    for path in sorted(_glob.glob(os.path.join(DATA, "*"))):
        want = _records(kmsg.extract(logs.log_lines(path)))
        gz = tmp_path / (os.path.basename(path) + ".gz")
        gz.write_bytes(gzip.compress(open(path, "rb").read()))
        for p in (path, str(gz)):
            gate = logs.Gate()
            assert _records(kmsg.extract(logscan.gated_file(p, gate), gate)) == want, p


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_gated_bytes_equals_plain_on_interleavings(data):
    """Random interleavings with non-ASCII text, invalid UTF-8, CRLF and
    stamp-less lines: the byte scan gives what the decoded scan gives."""
    rnd = random.Random(data.draw(st.integers(0, 2**32)))
    noise = [b"[ 1.0] eth0: link up", b"random words BUG", b"[ 2.0] Oops", b"",
             b"#012x", b"\xc3\xa9t\xc3\xa9 WARNING", b"[ 3.0] bad \xe2\x82\n", b"\xff\xfe",
             b"[ 4.0] caf\xc3\xa9 up\r", b"no stamp line"]
    mixed = []
    for l in SEED_LINES * 2:
        l = l.encode()
        mixed.append(l[: rnd.randint(0, len(l))] if rnd.random() < 0.05 else l)
        if rnd.random() < 0.15:
            mixed.append(rnd.choice(noise))
    raw = b"\n".join(mixed) + rnd.choice([b"", b"\n"])
    chunk = data.draw(st.integers(1, 700))
    text = raw.decode("utf-8", "replace")
    g0 = logs.Gate()
    slow = _records(kmsg.extract(logs.gated_chunks([text], g0), g0))
    for name, finder in _finders():
        gate = logs.Gate()
        chunks = [raw[i:i + chunk] for i in range(0, len(raw), chunk)]
        fast = _records(kmsg.extract(logscan.gated_bytes(chunks, gate, finder), gate))
        assert fast == slow, name
        assert gate.lines == g0.lines


def _counters():
    out = [("bytes", logscan.newline_counter("bytes"))]
    try:
        out.append(("numpy", logscan.newline_counter("numpy")))
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
    return out


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300000), st.data())
def test_newline_counters_agree_with_bytes_count(raw, data):
    """Each counter gives bytes.count's number on any span, the numpy one
    included on spans long enough for it to take over (>= 64 KiB)."""
    buf = bytearray(raw + b"\n" * data.draw(st.integers(0, 100000)))
    lo = data.draw(st.integers(0, len(buf)))
    hi = data.draw(st.integers(lo, len(buf)))
    for name, count in _counters():
        assert count(buf, lo, hi) == bytes(buf[lo:hi]).count(b"\n"), name
    buf += b"x"   # the numpy view on buf is gone: buf can still be resized


def test_growing_counter_counts_the_same_before_and_after_it_switches():
    """The default counter counts with bytes.count, then (past its
    threshold, here 100 KB) with numpy when installed: the same numbers."""
    rnd = random.Random(5)
    buf = bytearray(rnd.choice(b"ab\n") for _ in range(400000))
    count = logscan.growing_counter(after=100000)
    pos = 0
    while pos < len(buf):
        end = min(len(buf), pos + rnd.randint(1, 90000))
        assert count(buf, pos, end) == buf.count(b"\n", pos, end)
        pos = end


def test_read_windows_cut_at_newlines_and_grow_for_long_lines():
    """Every window of the chunked reader ends at a newline (or at the end of
    the input), they join back to the input, and a line longer than the
    read size (here 64 bytes) grows the buffer instead of being split."""
    raw = b"".join(b"x" * n + b"\n" for n in (3, 200, 0, 64, 65, 1000, 7)) + b"tail"
    got = []
    for buf, lo, hi in logscan.read_windows(io.BytesIO(raw), "t", size=64):
        part = bytes(buf[lo:hi])
        assert part.endswith(b"\n") or len(b"".join(got)) + len(part) == len(raw)
        got.append(part)
    assert b"".join(got) == raw


def test_gated_file_on_a_big_log_equals_log_lines(tmp_path):
    """A 9 MB log (the RHEL7 idr-bug log's failure every 2,000 lines among noise, some
    lines longer than a read, no newline at the end): the fast scan, with
    each newline counter and each finder, gives the records, line numbers
    and line count of the plain line-by-line reading."""
    rnd = random.Random(7)
    noise = ["[ 12.5] eth0: link up", "[ 12.6] " + "z" * 3000, "no stamp at all",
             "[ 13.0] caf\u00e9 " + "y" * 80]
    out = []
    while sum(map(len, out)) < 9_000_000:
        for _ in range(2000):
            out.append(rnd.choice(noise))
        out.extend(SEED_LINES)
    p = tmp_path / "big.log"
    p.write_text("\n".join(out), encoding="utf-8")
    want = _records(kmsg.extract(logs.log_lines(str(p))))
    assert len(want) >= 8
    for cname, counter in _counters():
        for fname, finder in _finders():
            gate = logs.Gate()
            got = _records(kmsg.extract(logscan.gated_file(str(p), gate, finder, counter), gate))
            assert got == want, (cname, fname)
            assert gate.lines == len(out), (cname, fname)


def test_byte_scan_and_line_gate_pick_the_same_lines():
    """The byte scan's literals and the line gate's regex pick the same lines,
    on every line of every real log here (a literal missing from one side
    would drop a kind of record from `allocfail FILE` only)."""
    import glob
    from crashext.sources.logs import TRIGGER, TRIGGER_LITERALS
    for lit in TRIGGER_LITERALS:
        assert TRIGGER.search(lit), lit
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "logs")
    for path in glob.glob(os.path.join(here, "*")):
        with open(path, errors="replace") as f:
            for line in f:
                assert bool(TRIGGER.search(line)) == any(lit in line for lit in TRIGGER_LITERALS), line
    for probe in ("SysRq : Show Memory", "Mem-Info:", "Mem-info:"):
        assert TRIGGER.search(probe) and any(lit in probe for lit in TRIGGER_LITERALS)
