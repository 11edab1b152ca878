"""Fuzz targets for every text parser, and a mutator seeded with real text.

Each target takes bytes, runs one parser the way crashext runs it on a file
or a pasted log, and lets only :class:`~crashext.errors.CrashextError`
(InputError, KbError: a one-line message for the user) through as an
expected outcome.  Anything else escaping is a bug.

Seeds are real inputs: the RHEL7 idr-bug host's kernel log and crash session
(the shared corpus, ../shared/corpus from the repository root), the test logs (tests/data/logs), the fixtures' /proc
captures (truth/), and the shipped knowledge-base files.  The mutator cuts,
splices, repeats and flips them, and swaps numbers for extreme ones, so the
parsers see almost-valid input, where bugs live.
"""

import glob
import io
import os
import random
import re
import tempfile
from typing import Callable, Dict, List

from crashext.errors import CrashextError
from tests.sharedcorpus import CORPUS as _SHARED_CORPUS

__all__ = ["TARGETS", "seeds", "mutate", "run_target"]

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CORPUS = str(_SHARED_CORPUS)
FIXTURES = os.environ.get("CRASHEXT_FIXTURE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "crashext", "fixtures")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def t_logs(data: bytes) -> None:
    from crashext.sources import kmsg, logs
    lines = list(logs.read_lines(io.BytesIO(data)))
    for rec in kmsg.extract(logs.normalize(lines)):
        repr(rec)
    for _ in kmsg.iter_oops(logs.normalize(lines)):
        pass
    for line in lines[:50]:
        kmsg.parse_frame(line)
        kmsg.parse_zone_line(line)
        kmsg.parse_buddy_line(line)


def t_allocfail(data: bytes) -> None:
    from crashext.analysis import allocreport
    from crashext.sources import logs
    lines = list(logs.read_lines(io.BytesIO(data)))
    rep = allocreport.analyze(logs.normalize(lines), "fuzz")
    # the gated path (what analyze_file uses) must not fail either
    gate = logs.Gate()
    allocreport.analyze(logs.gated_chunks(iter([_text(data)]), gate), "fuzz", None, None, 100000, gate)
    for g in rep.groups:
        repr(g)


_KB = []


def t_triage_log(data: bytes) -> None:
    """A log as ``triage --log`` reads it: records, the knowledge base's
    regexes, the diagnosis (with and without entries)."""
    from crashext.analysis.evidence import TriageInputs, triage
    from crashext.kb import load_kb
    from crashext.sources import logs
    if not _KB:
        _KB.append(load_kb())
    lines = list(logs.read_lines(io.BytesIO(data)))
    for entries in (_KB[0], []):
        rep = triage(TriageInputs(log_lines=logs.normalize(lines), entries=entries))
        assert rep["verdict"]["headline"]


def t_procfs(data: bytes) -> None:
    from crashext.sources import procfs
    text = _text(data)
    for fn in (procfs.parse_buddyinfo, procfs.parse_zoneinfo, procfs.parse_pagetypeinfo,
               procfs.parse_frag_index, procfs.parse_meminfo, procfs.parse_slabinfo):
        try:
            fn(text)
        except CrashextError:
            pass


def t_kb(data: bytes) -> None:
    from crashext import kb
    fd, path = tempfile.mkstemp(suffix=".toml")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        kb.load_file(path)
    finally:
        os.unlink(path)


def t_crash_session(data: bytes) -> None:
    from crashext.analysis import panic
    from crashext.sources import crashlog
    s = crashlog.parse_crash_session(_text(data))
    panic.panic_from_crash_session(s)


def t_sosreport(data: bytes) -> None:
    """Bytes as a sosreport archive: index it, read every part, run the readers."""
    from crashext.analysis import buddy_read
    from crashext.sources import sosreport, sosviews
    fd, path = tempfile.mkstemp(suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        sos = sosreport.SosReport(path)
        for rel, _what in sosreport.PARTS:
            sos.read(rel)
        sos.release(), sos.hostname(), sos.missing(), sos.taken_label()
        for i, _ln in enumerate(sos.log_lines()):
            if i > 5000:
                break
        for fn in (lambda: sosviews.read_cgroups(sos),
                   lambda: buddy_read.from_proc(sosviews.SosProcDir(sos))):
            try:
                fn()
            except CrashextError:
                pass
        sos.close()
    finally:
        os.unlink(path)


TARGETS: Dict[str, Callable[[bytes], None]] = {
    "sosreport": t_sosreport,
    "logs": t_logs,
    "allocfail": t_allocfail,
    "triage_log": t_triage_log,
    "procfs": t_procfs,
    "kb": t_kb,
    "crash_session": t_crash_session,
}


def run_target(name: str, data: bytes) -> None:
    """Run one target; CrashextError is an accepted answer, anything else raises."""
    try:
        TARGETS[name](data)
    except CrashextError as exc:
        msg = exc.one_line()
        assert msg and "\n" not in msg


def _read(path: str, limit: int = 200_000) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def seeds() -> Dict[str, List[bytes]]:
    """Real inputs per target (those present on this machine)."""
    logs_ = sorted(glob.glob(os.path.join(REPO, "tests", "data", "logs", "*")))
    logs_ += [p for p in glob.glob(os.path.join(CORPUS, "*.dmesg"))]
    logs_ += sorted(glob.glob(os.path.join(FIXTURES, "*", "*", "serial.log")))[:3]
    # a guest log with OOM kills and SysRq-m dumps (scenario oom-showmem)
    logs_ += sorted(glob.glob(os.path.join(FIXTURES, "*", "*", "truth", "dmesg")))[:1]
    procs = []
    for name in ("buddyinfo", "zoneinfo", "pagetypeinfo", "extfrag_index", "unusable_index",
                 "meminfo"):
        procs += sorted(glob.glob(os.path.join(FIXTURES, "*", "*", "truth", name)))[:3]
    kbs = sorted(glob.glob(os.path.join(REPO, "crashext", "kb", "*.toml")))
    sessions = glob.glob(os.path.join(CORPUS, "*crash-session*"))
    out = {
        "logs": [_read(p) for p in logs_ if os.path.isfile(p)],
        "procfs": [_read(p) for p in procs],
        "kb": [_read(p) for p in kbs],
        "crash_session": [_read(p) for p in sessions],
    }
    out["allocfail"] = out["triage_log"] = out["logs"]
    out["sosreport"] = _sos_seeds()
    for k, v in out.items():
        if not v:
            v.append(b"")
    return out


def _sos_seeds() -> List[bytes]:
    """Plain-tar sosreports built from a fixture's truth files (as
    tests/test_sosreport.py lays them out), so mutations hit tar headers and
    member text, not a compressed stream."""
    import tarfile
    out = []
    for truth in sorted(glob.glob(os.path.join(FIXTURES, "*", "*", "truth")))[:2]:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, rel in (("buddyinfo", "proc/buddyinfo"), ("zoneinfo", "proc/zoneinfo"),
                              ("pagetypeinfo", "proc/pagetypeinfo"), ("vmstat", "proc/vmstat"),
                              ("proc_cgroups", "proc/cgroups"),
                              ("uname_a", "sos_commands/kernel/uname_-a"),
                              ("dmesg", "sos_commands/kernel/dmesg")):
                p = os.path.join(truth, name)
                if not os.path.isfile(p):
                    continue
                data = _read(p, 100_000)
                ti = tarfile.TarInfo("sosreport-fuzz/" + rel)
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
        out.append(buf.getvalue())
    return out


_EXTREME = [b"0", b"-1", b"18446744072641761840", b"99999999999999999999999999",
            b"-9223372036854775809", b"0x", b"nan", b"1e309", b"\x00", b"\xff\xfe", "\u202e".encode()]


def _lines_op(data: bytearray, rng: random.Random, fn) -> bytearray:
    """``fn(line)`` on a run of up to 40 lines from a random one on."""
    lines = bytes(data).split(b"\n")
    i = rng.randrange(len(lines))
    k = rng.randint(1, 40)
    lines[i:i + k] = [fn(ln) for ln in lines[i:i + k]]
    return bytearray(b"\n".join(lines))


def _wrap(rng: random.Random):
    """A line broken at a space, as a mail or a terminal does (the rest on
    a line of its own, without a prefix)."""
    def fn(ln: bytes) -> bytes:
        spaces = [j for j, c in enumerate(ln) if c == 32 and j > 20]
        if not spaces:
            return ln
        j = rng.choice(spaces)
        return ln[:j] + b"\n" + ln[j + 1:]
    return fn


# The shapes users paste (a mail's quote marks, indentation, wrapped lines,
# lines cut before their total, a manual OOM kill's order=-1): each a
# mutation of a real log
_SHAPES = (
    lambda rng: (lambda ln: b"> " + ln),
    lambda rng: (lambda ln: rng.choice([b" ", b"  ", b"\t", b"> > ", b">"]) + ln),
    _wrap,
    lambda rng: (lambda ln: re.sub(rb"\s*= \d+kB\s*$", b"", ln)),
    lambda rng: (lambda ln: re.sub(rb"order[=:]\d+", rng.choice([b"order=-1", b"order:-1",
                                                                  b"order=99", b"order=64"]), ln)),
)


def mutate(rng: random.Random, seed: bytes, max_len: int = 64 * 1024) -> bytes:
    """One mutation of ``seed`` (1-4 edits)."""
    data = bytearray(seed[:max_len])
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9 + len(_SHAPES))
        if op >= 9:
            data = _lines_op(data, rng, _SHAPES[op - 9](rng))[:max_len]
            continue
        n = len(data)
        if op == 0 and n:                       # truncate
            del data[rng.randrange(n):]
        elif op == 1 and n:                     # delete a slice
            i = rng.randrange(n)
            del data[i:i + rng.randint(1, 200)]
        elif op == 2:                           # insert random bytes
            i = rng.randrange(n + 1)
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif op == 3 and n:                     # flip bytes
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(n)] = rng.randrange(256)
        elif op == 4 and n:                     # replace a number with an extreme one
            digits = [i for i in range(0, n, max(1, n // 200)) if 48 <= data[i] <= 57]
            if digits:
                i = rng.choice(digits)
                j = i
                while j < n and 48 <= data[j] <= 57:
                    j += 1
                data[i:j] = rng.choice(_EXTREME)
        elif op == 5 and n:                     # duplicate a line block
            lines = bytes(data).split(b"\n")
            i = rng.randrange(len(lines))
            k = rng.randint(1, 20)
            lines[i:i] = lines[i:i + k] * rng.randint(1, 5)
            data = bytearray(b"\n".join(lines)[:max_len])
        elif op == 6 and n:                     # shuffle some lines
            lines = bytes(data).split(b"\n")
            i = rng.randrange(len(lines))
            block = lines[i:i + 30]
            rng.shuffle(block)
            lines[i:i + 30] = block
            data = bytearray(b"\n".join(lines))
        elif op == 7:                           # line endings and separators
            data = bytearray(bytes(data).replace(b"\n", rng.choice([b"\r\n", b"\r", b"#012", b"\n\n"])))
        elif op == 8 and n:                     # splice in a slice of itself
            i, j = sorted((rng.randrange(n), rng.randrange(n)))
            k = rng.randrange(n + 1)
            data[k:k] = data[i:j][:4096]
    return bytes(data[:max_len])
