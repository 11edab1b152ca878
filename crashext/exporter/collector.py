"""One scrape: read each source, build its metric families, survive its errors.

:class:`Collector` is a ``prometheus_client`` custom collector.  Each scrape
reads the sources it was given, each on its own:

``cgroupfs``  memory cgroups from cgroupfs (``--sys``) and /proc/cgroups
              (at each scrape, or every ``cgroupfs_interval`` seconds in
              the background: the walk is most of a scrape's time on a
              host with tens of thousands of cgroups);
``cgroups``   /proc/cgroups alone (``--proc`` without ``--sys`` or a kernel):
              the memory controller's num_cgroups against the id limit;
``buddy``     free lists, indices and watermark verdicts from /proc text;
``vmstat``    compaction counters from /proc/vmstat;
``kernel``    memcgs, kmem ids, what holds the dying memcgs (the page pass
              of memcgpins, its summary kept) and, without /proc, the free
              lists, read through drgn, refreshed every ``kernel_interval``
              seconds in the background, never during a scrape;
``log``       allocation failures and OOM kills counted by
              :class:`~crashext.exporter.logwatch.LogWatcher`.

A source that fails (a missing or unreadable file, a malformed line, a
kernel read that broke) adds one to ``crashext_exporter_scrape_errors_total
{source=...}``, sets ``crashext_exporter_source_up{source=...}`` to 0 and
leaves out only its own metrics; the scrape still answers.  A source that
read but had to leave something out (e.g. no zoneinfo, so no watermarks; an
unreadable cgroup file) counts an error too and keeps what it read.  Each
distinct problem is written once to ``warn``.
"""

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..analysis import buddy_read
from ..analysis.memcg import memcg_scan
from ..analysis.memcgpins import TOP_FILES, memcg_pins
from ..errors import CrashextError
from ..sources import cgroupfs
from ..sources.procfs import ProcDir
from . import families

__all__ = ["Collector", "KernelCache", "Background", "SOURCES"]

SOURCES = ("cgroupfs", "cgroups", "buddy", "vmstat", "kernel", "log")


class _Partial(Exception):
    """A source read, but with problems: its families are kept."""

    def __init__(self, kept: List, problems: List[str]) -> None:
        super().__init__("; ".join(problems))
        self.families = kept


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, CrashextError):
        return exc.one_line()
    if isinstance(exc, _Partial):
        return str(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _memcg_pins(t) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(the memcgpins summary of ``t``, None) or (None, why not): what holds
    the dying memcgs fails alone, the memcg counts are kept."""
    try:
        return memcg_pins(t, top=TOP_FILES).summary, None
    except Exception as exc:  # reported by the scrape as a problem of the kernel source
        return None, _one_line(exc)


def _memcg_counts(t) -> Tuple[Dict[str, Any], Any]:
    """The summary of a memcg walk and the families' counts of its rows,
    the rows kept in a temporary file while counted: an exporter on a host
    with tens of thousands of memcgs keeps counts between scrapes, not rows."""
    with memcg_scan(t, spool=True) as scan:
        return scan.summary, families.kernel_memcg_counts(scan.rows())


class KernelCache:
    """What drgn reads, kept between scrapes and refreshed every ``interval`` s."""

    def __init__(self, factory: Callable, interval: float, frag: bool,
                 pins: bool = True) -> None:
        self.factory = factory
        self.interval = interval
        self.frag = frag
        self.pins = pins
        self._lock = threading.Lock()
        self._target = None
        self.data: Optional[Dict] = None
        self.error: Optional[str] = None
        self.read_at: Optional[float] = None
        self.read_seconds: Optional[float] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def refresh(self) -> None:
        t0 = time.monotonic()
        try:
            if self._target is None:
                self._target = self.factory()
            t = self._target
            memcg = _memcg_counts(t)
            if t.is_live and memcg[0]["walk_problem"]:
                memcg = _memcg_counts(t)  # a memcg freed mid-walk: once more
            fr = None
            if self.frag:
                fr = buddy_read.from_target(t, progress=False)
            data = {"memcg": memcg, "frag": fr, "release": t.release, "source": t.source,
                    "pins": _memcg_pins(t) if self.pins else None, "page_size": t.page_size}
            with self._lock:
                self.data, self.error = data, None
                self.read_at, self.read_seconds = time.time(), time.monotonic() - t0
        except Exception as exc:  # a failed read is reported by the scrape, not raised
            with self._lock:
                self.data, self.error = None, _one_line(exc)

    @property
    def opened(self) -> bool:
        return self._target is not None

    def get(self):
        with self._lock:
            return self.data, self.error, self.read_at, self.read_seconds

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="crashext-kernel", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


class Background:
    """A reading repeated every ``interval`` seconds in a thread; scrapes take the last one."""

    def __init__(self, read: Callable, interval: float, name: str) -> None:
        self.read = read
        self.interval = interval
        self.name = name
        self._lock = threading.Lock()
        self._result = None
        self._error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def refresh(self) -> None:
        try:
            res, err = self.read(), None
        except Exception as exc:  # reported by the scrape that takes it
            res, err = None, exc
        with self._lock:
            self._result, self._error = res, err

    def get(self):
        """The last result, or raise the last reading's exception."""
        with self._lock:
            if self._error is not None:
                raise self._error
            return self._result

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


class Collector:
    """The exporter's metrics, read anew at each scrape (see the module docstring)."""

    def __init__(self, proc: Optional[str] = None, sys_dir: Optional[str] = None,
                 kernel: Optional[KernelCache] = None, log=None, top: int = 20,
                 release: Optional[str] = None, warn: Optional[Callable[[str], None]] = None,
                 cgroupfs_interval: float = 0.0) -> None:
        self.proc = proc
        self.sys_dir = sys_dir
        self.kernel = kernel
        self.log = log
        self.top = top
        self.release = release
        self.warn = warn
        self.errors: Dict[str, int] = {s: 0 for s in self.sources()}
        self.up: Dict[str, int] = {}
        self.scrapes = 0
        self._said: Dict[str, Optional[str]] = {}
        self._lock = threading.Lock()
        self._info = None
        #: cgroupfs walked in the background every cgroupfs_interval s (0: at each scrape)
        self.cgroupfs_bg: Optional[Background] = None
        if cgroupfs_interval > 0 and "cgroupfs" in self.sources():
            self.cgroupfs_bg = Background(self._read_cgroupfs, cgroupfs_interval,
                                          "crashext-cgroupfs")

    def sources(self) -> List[str]:
        out = []
        if self.sys_dir and self.kernel is None:
            out.append("cgroupfs")
        if self.proc and not self.sys_dir and self.kernel is None:
            out.append("cgroups")
        if self.proc:
            out += ["buddy", "vmstat"]
        if self.kernel is not None:
            out.append("kernel")
        if self.log is not None:
            out.append("log")
        return out

    def describe(self):
        return []  # no collect() at registration: the first read happens at a scrape

    # -- sources -------------------------------------------------------------------------

    def _read_cgroupfs(self):
        return cgroupfs.read_cgroupfs(self.sys_dir, proc=self.proc)

    def _cgroupfs(self) -> List:
        problems: List[str] = []
        if self.cgroupfs_bg is not None:
            rep = self.cgroupfs_bg.get()
        else:
            rep = self._read_cgroupfs()
        out = families.cgroupfs_families(rep, self.top)
        problems += rep.summary["errors"]
        if rep.summary["walk_problem"]:
            problems.append(rep.summary["walk_problem"])
        if problems:
            raise _Partial(out, problems)
        return out

    def _cgroups(self) -> List:
        """/proc/cgroups without a cgroup tree: the ids in use, no per-cgroup counts."""
        text = ProcDir(self.proc).read("cgroups")
        if text is None:
            raise CrashextError(f"{self.proc}/cgroups: missing or unreadable")
        rep = cgroupfs.proc_cgroups_report(text, f"{self.proc}/cgroups", self.proc, None)
        out = families.cgroupfs_families(rep, self.top)
        if rep.summary["errors"]:
            raise _Partial(out, rep.summary["errors"])
        return out

    def _buddy(self) -> List:
        rep = buddy_read.from_proc(ProcDir(self.proc), release=self.release)
        if not rep.zones:
            raise CrashextError(f"{self.proc}: no populated zones in buddyinfo")
        self._info = (rep.release, rep.rule, rep.source)
        out = families.frag_families(rep)
        if rep.errors:
            raise _Partial(out, rep.errors)
        return out

    def _vmstat(self) -> List:
        text = ProcDir(self.proc).read("vmstat")
        if text is None:
            raise CrashextError(f"{self.proc}/vmstat: missing or unreadable")
        return families.vmstat_families(families.parse_vmstat(text))

    def _kernel(self) -> List:
        data, error, read_at, secs = self.kernel.get()
        out: List = []
        age = GaugeMetricFamily("crashext_exporter_kernel_read_timestamp_seconds",
                                "When the kernel-memory metrics were last read (Unix time)")
        dur = GaugeMetricFamily("crashext_exporter_kernel_read_duration_seconds",
                                "How long the last read of kernel memory took")
        if read_at is not None:
            age.add_metric([], read_at)
            dur.add_metric([], secs)
        out += [age, dur]
        if data is None:
            raise _Partial(out, [error or "kernel not read yet"])
        summary, counts = data["memcg"]
        out += families.kernel_memcg_families(summary, counts, self.top)
        if data["frag"] is not None:
            out += families.frag_families(data["frag"])
            self._info = (data["release"], data["frag"].rule, data["source"])
        elif self._info is None:
            self._info = (data["release"], None, data["source"])
        problems = []
        if summary["walk_problem"]:
            problems.append("memcg walk: " + summary["walk_problem"])
        pins, why = data["pins"] or (None, None)   # None: --no-memcgpins
        if pins is not None:
            out += families.memcgpins_families(pins, data["page_size"])
            problems += ["memcgpins: " + w for w in pins["warnings"]]
        elif why is not None:
            problems.append("memcgpins: " + why)
        if problems:
            raise _Partial(out, problems)
        return out

    def _log(self) -> List:
        snap = self.log.counts.snapshot()
        if self.log.problem and not snap["lines"]:
            # nothing read at all: zero counts would claim a quiet log
            raise CrashextError(self.log.problem)
        out = families.log_families(snap)
        if self.log.problem:
            raise _Partial(out, [self.log.problem])
        return out

    # -- the scrape ----------------------------------------------------------------------

    def _say(self, source: str, problem: Optional[str]) -> None:
        if self.warn is not None and problem and self._said.get(source) != problem:
            self.warn(f"{source}: {problem}")
        self._said[source] = problem

    def collect(self):
        with self._lock:  # one scrape at a time: the counters are per exporter
            t0 = time.monotonic()
            self.scrapes += 1
            out: List = []
            for source in self.sources():
                try:
                    out += getattr(self, "_" + source)()
                    self.up[source] = 1
                    self._say(source, None)
                except _Partial as part:
                    out += part.families
                    self.up[source] = 1
                    self.errors[source] += 1
                    self._say(source, _one_line(part))
                except Exception as exc:  # the scrape answers whatever one source does
                    self.up[source] = 0
                    self.errors[source] += 1
                    self._say(source, _one_line(exc))
            if self._info is not None:
                out.append(families.kernel_info_family(*self._info))
            err = CounterMetricFamily("crashext_exporter_scrape_errors",
                                      "Scrapes in which a source could not be read in full, "
                                      "by source", labels=["source"])
            up = GaugeMetricFamily("crashext_exporter_source_up",
                                   "1 if the source was read in the last scrape (perhaps with "
                                   "parts missing: see scrape_errors), 0 if it failed",
                                   labels=["source"])
            for s in self.sources():
                err.add_metric([s], self.errors[s])
                up.add_metric([s], self.up.get(s, 0))
            n = CounterMetricFamily("crashext_exporter_scrapes", "Scrapes served",
                                    value=self.scrapes)
            d = GaugeMetricFamily("crashext_exporter_scrape_duration_seconds",
                                  "How long this scrape took to read its sources",
                                  value=time.monotonic() - t0)
            out += [err, up, n, d]
        return iter(out)
