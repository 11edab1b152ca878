"""Ground truth of a fixture: serial-console splitter and file parsers.

Stdlib only; imported by fixturelib (builder) and by tests.

Serial protocol (written by guest/init.sh; each marker on its own line,
the console adds '\\r'):

    @@CRASHEXT:START <scenario>@@
    @@CRASHEXT:BEGIN <name>@@
    <base64 of the file, any line wrapping>
    @@CRASHEXT:END <name> <sha256 hex> <size in bytes>@@
    ...
    (the buddyinfo block and the PANIC marker are written to /dev/kmsg, so
    on the console they carry a printk "[    1.234567] " time stamp)
    @@CRASHEXT:PLAIN buddyinfo@@
    <plain /proc/buddyinfo lines>
    @@CRASHEXT:PLAINEND buddyinfo <number of lines>@@
    @@CRASHEXT:PANIC@@
    (kernel panic follows)

Base64 lines contain only [A-Za-z0-9+/=]; any other line inside a block
(e.g. a kernel message that slipped through loglevel=1) is ignored, and the
sha256 + size check then decides whether the block survived intact.  A
guest-side failure prints '@@CRASHEXT:FAIL <message>@@'.
"""

import base64
import hashlib
import re
from pathlib import Path

MARK = re.compile(r"^@@CRASHEXT:(\w+)(?: (.*?))?@@$")
B64 = re.compile(r"^[A-Za-z0-9+/=]+$")
KMSG_PREFIX = re.compile(r"^\[\s*\d+\.\d+\]\s?(?=@@CRASHEXT:|Node )")

# files every fixture's truth/ has (cgroup v1 lacks cgroup_stat content but
# the file exists); order = order in which the guest emits them
REQUIRED = [
    "scenario", "uname_r", "uname_a", "cmdline", "proc_cgroups",
    "cgroup_mode", "cgroup_tree.tsv", "cgroup_stat", "memory_stat",
    "removed_charged.tsv", "removed_clean.tsv", "panic_string",
    "guest_checks", "meminfo", "vmstat", "zoneinfo", "pagetypeinfo",
    "extfrag_index", "unusable_index", "buddyinfo",
]


class TruthError(Exception):
    pass


def split_serial(serial_log, truth_dir):
    """Split the guest's serial transcript into truth_dir/<name>.

    Verifies every block (sha256 and size for base64 blocks, line count and
    format for plain ones) and that all REQUIRED files and the final PANIC
    marker are present; raises TruthError with one clear line otherwise."""
    text = Path(serial_log).read_bytes().decode("utf-8", "replace")
    lines = [ln.rstrip("\r").strip("\r") for ln in text.split("\n")]
    truth_dir = Path(truth_dir)
    truth_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    cur = None          # (kind, name, [lines])
    seen_panic = False
    started = False
    for ln in lines:
        # the buddyinfo block comes through printk (/dev/kmsg): drop the
        # console's "[    1.234567] " prefix
        ln = KMSG_PREFIX.sub("", ln)
        m = MARK.match(ln.strip())
        if m:
            kind, arg = m.group(1), (m.group(2) or "")
            if kind == "FAIL":
                raise TruthError("guest reported failure: %s" % arg)
            if kind == "START":
                started = True
                files.clear()
            elif kind in ("BEGIN", "PLAIN"):
                if cur:
                    raise TruthError("block %s not closed before %s"
                                     % (cur[1], arg))
                cur = (kind, arg.split()[0], [])
            elif kind == "END":
                name, digest, size = arg.split()
                if not cur or cur[0] != "BEGIN" or cur[1] != name:
                    raise TruthError("unexpected END %s" % name)
                try:
                    data = base64.b64decode("".join(cur[2]), validate=True)
                except ValueError as e:
                    raise TruthError("block %s: bad base64 (%s)" % (name, e))
                if len(data) != int(size) or \
                        hashlib.sha256(data).hexdigest() != digest:
                    raise TruthError(
                        "block %s corrupted on the serial console (sha256 or "
                        "size mismatch)" % name)
                files[name] = data
                cur = None
            elif kind == "PLAINEND":
                name, n = arg.split()
                if not cur or cur[0] != "PLAIN" or cur[1] != name:
                    raise TruthError("unexpected PLAINEND %s" % name)
                body = [x for x in cur[2] if x.strip()]
                if len(body) != int(n):
                    raise TruthError("plain block %s: %d lines, expected %s"
                                     % (name, len(body), n))
                if name == "buddyinfo":
                    for x in body:
                        if not BUDDY_LINE.match(x):
                            raise TruthError("buddyinfo line garbled: %r"
                                             % x)
                files[name] = ("\n".join(body) + "\n").encode()
                cur = None
            elif kind == "PANIC":
                seen_panic = True
            continue
        if cur:
            if cur[0] == "BEGIN":
                if B64.match(ln.strip()):
                    cur[2].append(ln.strip())
            else:
                cur[2].append(ln)
    if not started:
        raise TruthError("no @@CRASHEXT:START@@ marker on the serial console "
                         "(guest init never ran?)")
    if cur:
        raise TruthError("truth block %s never ended" % cur[1])
    missing = [n for n in REQUIRED if n not in files]
    if missing:
        raise TruthError("truth files missing from the serial console: %s"
                         % ", ".join(missing))
    if not seen_panic:
        raise TruthError("no @@CRASHEXT:PANIC@@ marker")
    for name, data in files.items():
        if "/" in name or name.startswith("."):
            raise TruthError("bad truth file name %r" % name)
        (truth_dir / name).write_bytes(data)
    return sorted(files)


# ----------------------------------------------------------------------
# parsers
# ----------------------------------------------------------------------

BUDDY_LINE = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)((?:\s+\d+)+)\s*$")


def parse_buddyinfo(text):
    """{(node, zone): [free blocks per order]}"""
    out = {}
    for ln in text.splitlines():
        if not ln.strip():
            continue
        m = BUDDY_LINE.match(ln)
        if not m:
            raise TruthError("bad buddyinfo line %r" % ln)
        out[(int(m.group(1)), m.group(2))] = [int(x) for x in
                                               m.group(3).split()]
    return out


def parse_kv(text, sep=None):
    """'key value' lines (vmstat, memory.stat, cgroup.stat) -> {key: int}"""
    out = {}
    for ln in text.splitlines():
        if not ln.strip():
            continue
        parts = ln.split(sep) if sep else ln.split()
        if len(parts) != 2:
            raise TruthError("bad key/value line %r" % ln)
        out[parts[0].rstrip(":")] = int(parts[1])
    return out


def parse_meminfo(text):
    """{'MemTotal': kB, ..., 'HugePages_Total': count}"""
    out = {}
    for ln in text.splitlines():
        m = re.match(r"^([\w()]+):\s+(\d+)(?: kB)?$", ln)
        if not m:
            raise TruthError("bad meminfo line %r" % ln)
        out[m.group(1)] = int(m.group(2))
    return out


def parse_zoneinfo(text):
    """{(node, zone): {'nr_free_pages': n, 'min': .., 'low': ..,
    'high': .., 'spanned': .., 'present': .., 'managed': .., ...}}.
    Only the scalar 'name value' lines of each zone are kept (the per-cpu
    pageset section is skipped)."""
    out = {}
    cur = None
    in_pcp = False
    for ln in text.splitlines():
        m = re.match(r"^Node (\d+), zone\s+(\S+)", ln)
        if m:
            cur = out.setdefault((int(m.group(1)), m.group(2)), {})
            in_pcp = False
            continue
        if cur is None:
            continue
        s = ln.strip()
        if s.startswith("pagesets") or s.startswith("cpu:"):
            in_pcp = True
            continue
        if s.startswith("node_unreclaimable") or \
                s.startswith("start_pfn"):
            in_pcp = False
        if in_pcp:
            continue
        if s.startswith("pages free"):
            cur["nr_free_pages"] = cur.get("nr_free_pages",
                                           int(s.split()[2]))
            continue
        m = re.match(r"^(\w+)\s+(-?\d+)$", s)
        if m and m.group(1) not in cur:
            cur[m.group(1)] = int(m.group(2))
        if s.startswith("protection:"):
            cur["protection"] = [int(x) for x in
                                 re.findall(r"\d+", s)]
    return out


def parse_frag_index(text):
    """extfrag_index / unusable_index:
    {(node, zone): [float per order]}"""
    out = {}
    for ln in text.splitlines():
        m = re.match(r"^Node (\d+), zone\s+(\S+)\s+(.*)$", ln)
        if not m:
            if ln.strip():
                raise TruthError("bad index line %r" % ln)
            continue
        out[(int(m.group(1)), m.group(2))] = [float(x) for x in
                                               m.group(3).split()]
    return out


def parse_pagetypeinfo(text):
    """{'pageblock_order': n, 'free': {(node, zone, type): [per order]},
    'blocks': {(node, zone): {type: count}},
    'capped': [(node, zone, type, order) printed as '>100000']}"""
    out = {"free": {}, "blocks": {}, "capped": []}
    header = None
    for ln in text.splitlines():
        m = re.match(r"^Page block order:\s+(\d+)", ln)
        if m:
            out["pageblock_order"] = int(m.group(1))
            continue
        m = re.match(r"^Pages per block:\s+(\d+)", ln)
        if m:
            out["pages_per_block"] = int(m.group(1))
            continue
        m = re.match(r"^Node\s+(\d+), zone\s+(\S+), type\s+(\S+)\s+(.*)$",
                     ln)
        if m:
            # mm/vmstat.c pagetypeinfo_showfree_print() (5.5+) stops
            # counting a free list at 100000 and prints ">100000"
            key = (int(m.group(1)), m.group(2), m.group(3))
            vals = []
            for order, x in enumerate(m.group(4).split()):
                if x.startswith(">"):
                    out["capped"].append(key + (order,))
                    x = x[1:]
                vals.append(int(x))
            out["free"][key] = vals
            continue
        if ln.startswith("Number of blocks type"):
            header = ln.split()[4:]
            continue
        m = re.match(r"^Node (\d+), zone\s+(\S+)\s+([\d\s]+)$", ln)
        if m and header:
            out["blocks"][(int(m.group(1)), m.group(2))] = dict(
                zip(header, [int(x) for x in m.group(3).split()]))
    return out


def parse_sections(text):
    """'# <cgroup path>' headed sections (memory_stat, cgroup_stat) ->
    {path: {key: int}}"""
    out = {}
    cur = None
    for ln in text.splitlines():
        if ln.startswith("# "):
            cur = out.setdefault(ln[2:].strip(), {})
            continue
        if not ln.strip():
            continue
        if cur is None:
            raise TruthError("section line before a '# path' header")
        k, v = ln.split()
        cur[k] = int(v)
    return out


def parse_tsv(text):
    """TSV with a header line; '-' means not available -> None; digits ->
    int."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    header = lines[0].split("\t")
    rows = []
    for ln in lines[1:]:
        vals = ln.split("\t")
        if len(vals) != len(header):
            raise TruthError("bad TSV row %r (header %r)" % (ln, header))
        row = {}
        for k, v in zip(header, vals):
            row[k] = None if v == "-" else int(v) if re.fullmatch(
                r"-?\d+", v) else v
        rows.append(row)
    return rows


def parse_proc_cgroups(text):
    """{controller: {'hierarchy': n, 'num_cgroups': n, 'enabled': n}}"""
    out = {}
    for ln in text.splitlines():
        if ln.startswith("#") or not ln.strip():
            continue
        name, hier, num, en = ln.split()
        out[name] = {"hierarchy": int(hier), "num_cgroups": int(num),
                     "enabled": int(en)}
    return out


PARSERS = {
    "scenario": str.strip,
    "uname_r": str.strip,
    "uname_a": str.strip,
    "cmdline": str.strip,
    "cgroup_mode": str.strip,
    "panic_string": str.strip,
    "proc_cgroups": parse_proc_cgroups,
    "cgroup_tree.tsv": parse_tsv,
    "cgroup_stat": parse_sections,
    "memory_stat": parse_sections,
    "removed_charged.tsv": parse_tsv,
    "removed_clean.tsv": parse_tsv,
    "guest_checks": lambda t: parse_kv(t, sep="="),
    "meminfo": parse_meminfo,
    "vmstat": parse_kv,
    "zoneinfo": parse_zoneinfo,
    "pagetypeinfo": parse_pagetypeinfo,
    "extfrag_index": parse_frag_index,
    "unusable_index": parse_frag_index,
    "buddyinfo": parse_buddyinfo,
}


class Truth:
    """Lazy parsed view of a fixture's truth/ directory:
    Truth(dir)['zoneinfo'] -> parsed, Truth(dir).raw('zoneinfo') -> str."""

    def __init__(self, truth_dir):
        self.dir = Path(truth_dir)
        self._cache = {}

    def names(self):
        return sorted(p.name for p in self.dir.iterdir() if p.is_file())

    def raw(self, name):
        return (self.dir / name).read_text()

    def __getitem__(self, name):
        if name not in self._cache:
            parser = PARSERS.get(name, lambda t: t)
            self._cache[name] = parser(self.raw(name))
        return self._cache[name]

    def parse_all(self):
        return {n: self[n] for n in self.names()}
