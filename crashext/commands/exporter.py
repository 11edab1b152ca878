"""``exporter``: the warning signs of a running host as Prometheus metrics."""

import os
import signal
import threading

from ..errors import InputError, TargetError

NAME = "exporter"
SUMMARY = "serve dying memcgs, memcg/kmem ids, fragmentation and allocation failures to Prometheus"
DESCRIPTION = """\
Serve /metrics over HTTP for Prometheus (--listen, default :9640), or write
the same text for node_exporter's textfile collector (--textfile PATH), or
print it once (--once).  Needs the optional extra: pip install
'crashext[exporter]' (prometheus-client).

What it reads, as the other commands take it:
  default        this host: /proc, /sys/fs/cgroup and /dev/kmsg
  --proc DIR     /proc (or a saved copy: buddyinfo, zoneinfo, pagetypeinfo,
                 vmstat, cgroups, sys/kernel/osrelease)
  --sys DIR      cgroupfs (or a saved copy)
  --log PATH     a kernel log followed like tail -F (or /dev/kmsg)
  -k             also read the running kernel through drgn: kmem ids,
                 dying memcgs on cgroup v1, memcg anomalies
  --qemu SOCK -s VMLINUX
                 a QEMU guest's kernel through drgn (memcgs and free lists)
Kernel-memory metrics are read every --kernel-interval seconds in the
background, never during a scrape.

Every scrape reads the files anew.  A source that cannot be read counts in
crashext_exporter_scrape_errors_total{source} and leaves out only its own
metrics.  Metric names and the alert rules that use them: docs/exporter.md,
deploy/alerts.yml."""
TARGET = "optional"
#: a server loop makes no sense inside a crash session (and a dump does not change)
IN_CRASH = False

DEFAULT_LISTEN = ":9640"


def add_arguments(parser) -> None:
    out = parser.add_argument_group("output (one of)")
    out.add_argument("--listen", metavar="[ADDR]:PORT", default=None,
                     help=f"serve /metrics here (default {DEFAULT_LISTEN}: every address)")
    out.add_argument("--textfile", metavar="PATH",
                     help="write the metrics to PATH (atomically, for node_exporter's textfile "
                          "collector) and exit; with --interval, rewrite it every interval")
    out.add_argument("--once", action="store_true", help="print the metrics once and exit")
    src = parser.add_argument_group("sources")
    src.add_argument("--proc", metavar="DIR", help="read /proc text from DIR (default /proc)")
    src.add_argument("--sys", metavar="DIR",
                     help="read cgroupfs under DIR (default /sys/fs/cgroup)")
    src.add_argument("--log", metavar="PATH",
                     help="kernel log to follow (default /dev/kmsg when reading this host)")
    src.add_argument("--no-log", action="store_true", help="do not read a kernel log")
    src.add_argument("--release", metavar="RELEASE",
                     help="kernel release of a saved --proc (picks the watermark rule)")
    opt = parser.add_argument_group("tuning")
    opt.add_argument("--top", type=int, default=20, metavar="N",
                     help="label values kept per metric: parents of memcgs, process names "
                          "(default 20; the rest sum under \"_other\")")
    opt.add_argument("--kernel-interval", type=float, default=60.0, metavar="SECONDS",
                     help="how often kernel memory is read through drgn (default 60)")
    opt.add_argument("--no-memcgpins", action="store_true",
                     help="with -k or --qemu: do not read what holds the dying memcgs (a "
                          "pass over every page, the most of a kernel read on a large host)")
    opt.add_argument("--cgroupfs-interval", type=float, default=0.0, metavar="SECONDS",
                     help="walk cgroupfs every SECONDS in the background instead of at each "
                          "scrape (default 0: at each scrape; the walk is most of a scrape on a "
                          "host with tens of thousands of cgroups)")
    opt.add_argument("--interval", type=float, metavar="SECONDS",
                     help="with --textfile: rewrite the file every SECONDS until stopped")


def _listen(text: str):
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    try:
        p = int(port)
        if not 0 < p < 65536:
            raise ValueError
    except ValueError:
        raise InputError(f"--listen {text}: give [ADDRESS]:PORT with a port 1..65535")
    return host.strip("[]") or "0.0.0.0", p


def _check(args, ctx) -> None:
    modes = sum(bool(x) for x in (args.listen, args.textfile, args.once))
    if modes > 1:
        raise InputError("choose one of --listen, --textfile and --once")
    if args.interval is not None and not args.textfile:
        raise InputError("--interval goes with --textfile")
    if args.interval is not None and not args.interval > 0:
        raise InputError(f"--interval {args.interval}: must be a positive number of seconds")
    if args.cgroupfs_interval < 0:
        raise InputError(f"--cgroupfs-interval {args.cgroupfs_interval}: must be 0 or more")
    if not args.kernel_interval > 0:
        raise InputError(f"--kernel-interval {args.kernel_interval}: must be positive")
    if args.top < 1:
        raise InputError(f"--top {args.top}: must be at least 1")
    if getattr(args, "core", None):
        raise InputError("the exporter reads a running system: -k, --qemu, or /proc and "
                         "cgroupfs; a vmcore does not change (use memcgids, frag, triage)")
    if args.log and args.no_log:
        raise InputError("--log and --no-log contradict each other")
    for opt in ("proc", "sys"):
        v = getattr(args, opt)
        if v is not None and not os.path.isdir(v):
            raise InputError(f"--{opt} {v}: not a directory")


def make_collector(args, ctx, warn=None, one_shot=False):
    """The collector for these options (its kernel cache, log watcher and background
    cgroupfs walk are started by run())."""
    try:
        from ..exporter import collector
        from ..exporter import logwatch
    except ImportError as exc:
        if "prometheus_client" in str(exc):
            raise InputError("the exporter needs prometheus-client: pip install "
                             "'crashext[exporter]' (or python3-prometheus-client)") from exc
        raise
    if getattr(args, "qemu", None) or args.proc is not None or args.sys is not None:
        # a guest's kernel, or saved trees: only what was named (this host's
        # /proc is not the guest's, and a saved /proc goes with no live cgroupfs)
        proc, sys_dir = args.proc, args.sys
    else:
        proc, sys_dir = "/proc", "/sys/fs/cgroup"
    kernel = None
    if ctx.has_target:
        kernel = collector.KernelCache(ctx.target, args.kernel_interval, frag=proc is None,
                                       pins=not args.no_memcgpins)
    log = None
    if not args.no_log:
        path = args.log
        if path is None and proc is not None and os.path.realpath(proc) == "/proc":
            path = "/dev/kmsg"
        if path is not None:
            counts = logwatch.LogCounts(top=args.top)
            log = logwatch.LogWatcher(logwatch.open_source(path, counts), counts)
    c = collector.Collector(proc=proc, sys_dir=sys_dir, kernel=kernel, log=log, top=args.top,
                            release=args.release, warn=warn,
                            cgroupfs_interval=0.0 if one_shot else args.cgroupfs_interval)
    if not c.sources():
        raise InputError("nothing to read: give --proc/--sys, --log, -k or --qemu")
    return c


def _text(c) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    reg = CollectorRegistry(auto_describe=False)
    reg.register(c)
    return generate_latest(reg)


def _write_textfile(c, path: str) -> None:
    data = _text(c)
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # node_exporter never sees half a file
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise InputError(f"--textfile {path}: cannot write: {exc.strerror or exc}")


def _stop_event():
    ev = threading.Event()

    def handler(signum, frame):
        ev.set()

    for s in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(s, handler)
        except ValueError:  # not the main thread (tests calling run())
            pass
    return ev


def run(args, ctx) -> int:
    for opt, default in (("listen", None), ("textfile", None), ("once", False), ("proc", None),
                         ("sys", None), ("log", None), ("no_log", False), ("release", None),
                         ("top", 20), ("kernel_interval", 60.0), ("interval", None),
                         ("cgroupfs_interval", 0.0)):
        if not hasattr(args, opt):
            setattr(args, opt, default)
    _check(args, ctx)
    one_shot = bool(args.once or (args.textfile and args.interval is None))
    c = make_collector(args, ctx, warn=ctx.warn, one_shot=one_shot)
    if c.kernel is not None:
        c.kernel.refresh()  # the first read, before the first scrape
        _, error, _, _ = c.kernel.get()
        if error and not c.kernel.opened:
            raise TargetError(error)  # the kernel could not even be opened
    if c.log is not None:
        if one_shot:
            c.log.read_once()
        else:
            c.log.start()
    if one_shot:
        if args.textfile:
            _write_textfile(c, args.textfile)
        else:
            ctx.out.write(_text(c).decode("utf-8"))
            ctx.out.flush()
        return 0
    if c.kernel is not None:
        c.kernel.start()
    if c.cgroupfs_bg is not None:
        c.cgroupfs_bg.start()
    stop = _stop_event()
    try:
        if args.textfile:
            while not stop.is_set():
                _write_textfile(c, args.textfile)
                stop.wait(args.interval)
            return 0
        return _serve(c, args.listen or DEFAULT_LISTEN, stop, ctx)
    finally:
        if c.log is not None:
            c.log.stop()
        if c.kernel is not None:
            c.kernel.stop()
        if c.cgroupfs_bg is not None:
            c.cgroupfs_bg.stop()


def _serve(c, listen: str, stop, ctx) -> int:
    from prometheus_client import CollectorRegistry, start_http_server
    host, port = _listen(listen)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(c)
    try:
        server, thread = start_http_server(port, addr=host, registry=reg)
    except OSError as exc:
        raise InputError(f"--listen {listen}: cannot listen: {exc.strerror or exc}")
    bound = server.server_address[1]
    ctx.err.write(f"crashext exporter: serving http://{host}:{bound}/metrics "
                  f"(sources: {', '.join(c.sources())})\n")
    ctx.err.flush()
    try:
        while not stop.is_set():
            stop.wait(1.0)
    finally:
        server.shutdown()
        server.server_close()
    return 0

