"""PyKdump for Debian's crash binary: a crash tree configured, not compiled.

When the crash on PATH is Debian's package of a crash version that
scripts/build-pykdump builds (bookworm's crash 8.0.2), that binary is the
crash of the pair, and compiling crash and all of gdb again only to throw the
binary away costs about 21 CPU-minutes.  PyKdump's compile reads little of crash's
tree:

- its C files (``epython.c``, ``functions.c``) include crash's ``defs.h``,
  a source file, with ``-D X86_64`` and none of crash's other flags;
- its gdb glue (``gdbspec10.C``) includes gdb's ``defs.h``, ``gdbtypes.h``,
  ``expression.h`` and ``value.h`` with ``-I`` gdb's top, ``bfd``,
  ``include``, ``gdb`` and ``gnulib/import`` (the crash.mk that
  scripts/build-pykdump writes), and through them what configure and make
  generate: ``gdb/config.h``, ``gdb/nm.h``, ``gdbsupport/config.h``,
  ``gnulib/config.h``, bfd's ``bfd.h`` and ``bfdver.h``, and gnulib's
  replacement headers (``gnulib/import/string.h`` and the others).

``configure_tree`` makes exactly those, the way crash's Makefile makes them
in a full build (`make lzo snappy zstd`): crash's configure, gdb's top-level
configure with the flags of crash's ``gdb_merge`` target, the configures of
gdb's libraries and of gdb, and the make targets that write the headers.
Nothing is compiled but crash's small ``configure`` program.
"""
import hashlib
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional

__all__ = ["HeadersError", "SystemCrash", "system_crash", "configure_tree",
           "gdb_merge_configure_args", "GDB_GENERATED"]


class HeadersError(Exception):
    pass


class SystemCrash(NamedTuple):
    """Debian's crash binary a PyKdump build pairs with."""
    path: str
    package: str        #: the Debian package's version, e.g. "8.0.2-1"
    sha256: str

    def describe(self) -> str:
        return "Debian's %s %s (package crash, not built here)" % (self.path, self.package)


def system_crash(path: str, version: str, env: dict) -> Optional[SystemCrash]:
    """The crash at ``path`` when Debian's package ``crash`` installed it and
    it says it is crash ``version``, else None (a crash built by hand may be
    built with other options: it gets a full build)."""
    if not os.access(path, os.X_OK):
        return None

    def out(argv):
        p = subprocess.run(argv, capture_output=True, text=True, env=env)
        return p.stdout if p.returncode == 0 else ""

    if not out(["dpkg-query", "-S", path]).startswith("crash:"):
        return None
    said = re.search(r"^crash (\S+)", out([path, "--version"]), re.M)
    package = out(["dpkg-query", "-W", "-f=${Version}", "crash"]).strip()
    if not said or said.group(1) != version or not package:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return SystemCrash(path, package, h.hexdigest())


#: What gdb's top-level make builds before it configures gdb (libbfd,
#: gnulib's and gdbsupport's libraries), none of which PyKdump's compile
#: reads: make's -o takes them as made.
GDB_PREREQS = ["all-gnulib", "all-gdbsupport", "all-bfd", "all-intl", "all-libiconv",
               "all-sim", "configure-sim"]

#: The generated files of gdb's tree that gdbspec10.C includes (one of
#: gnulib's replacement headers stands for all of them)
GDB_GENERATED = ["gdb/config.h", "gdb/nm.h", "gdbsupport/config.h", "gnulib/config.h",
                 "bfd/bfd.h", "bfd/bfdver.h", "gnulib/import/string.h"]

#: gdb's configure links one test program each against the built libbfd.a
#: to see whether bfd has ELF and Mach-O support.  Without libbfd.a they are
#: given the answers the full build's configure prints for this tree
#: ("checking for ELF support in BFD... yes", Mach-O "no"); they set HAVE_ELF
#: in gdb/config.h, which no header gdbspec10.C includes reads.
GDB_BFD_ANSWERS = {"gdb_cv_var_elf": "yes", "gdb_cv_var_macho": "no"}


def gdb_merge_configure_args(makefile: Path) -> List[str]:
    """The arguments of gdb's configure in crash's gdb_merge target, with
    ${GDB_CONF_FLAGS} as crash's configure set it in ``makefile``."""
    text = makefile.read_text()
    m = re.search(r"^gdb_merge:.*?\./configure \$\{GDB_CONF_FLAGS\} (.*?); *\\?\n",
                  text, re.M | re.S)
    conf = re.search(r"^GDB_CONF_FLAGS=(.*)$", text, re.M)
    if not m or not conf:
        raise HeadersError("crash's Makefile has no gdb configure line in its gdb_merge target")
    return shlex.split(conf.group(1)) + shlex.split(re.sub(r"\\\n\s*", " ", m.group(1)))


def configure_tree(run: Callable, crash_dir: Path, gdb_version: str, goals: List[str],
                   rpmpkg: str, env: dict, gdb_flags: dict) -> None:
    """Configure the unpacked, patched crash tree ``crash_dir`` and generate
    the headers PyKdump includes.  ``run(argv, cwd, what, env=)`` runs one
    step (the builder's, which logs it and raises on failure)."""
    gdb = crash_dir / ("gdb-%s" % gdb_version)
    genv = dict(env, **gdb_flags)
    # crash's `all` target: build crash's configure and run it with the
    # options of the make goals (it writes TARGET, GDB and the flags into
    # crash's Makefile, CFLAGS.extra and LDFLAGS.extra)
    run(["make", "make_configure"], crash_dir, "building crash's configure", env=env)
    opts = [a for g in goals for a in ("-x", g)]
    run(["./configure"] + opts + ["-p", "RPMPKG=%s" % rpmpkg, "-b"], crash_dir,
        "configuring crash", env=env)
    # crash's gdb_merge target: gdb's top-level configure
    run(["./configure"] + gdb_merge_configure_args(crash_dir / "Makefile"), gdb,
        "configuring gdb %s" % gdb_version, env=genv)
    # then gdb's make, which configures each directory before building it
    run(["make", "configure-libiberty", "configure-intl", "configure-bfd",
         "configure-gnulib", "configure-gdbsupport"], gdb, "configuring gdb's libraries",
        env=genv)
    # bfd.h (bfd-in2.h sized for the host) and bfdver.h
    run(["make", "-C", "bfd", "bfd.h", "bfdver.h"], gdb, "generating bfd's headers", env=genv)
    # gnulib's replacement headers (its BUILT_SOURCES), not its library
    imp = gdb / "gnulib" / "import"
    (imp / "crashext-headers.mk").write_text("crashext-headers: $(BUILT_SOURCES)\n")
    run(["make", "-f", "Makefile", "-f", "crashext-headers.mk", "crashext-headers"], imp,
        "generating gnulib's headers", env=genv)
    run(["make", "configure-gdb"] + [a for t in GDB_PREREQS for a in ("-o", t)], gdb,
        "configuring gdb", env=dict(genv, **GDB_BFD_ANSWERS))
    missing = [h for h in GDB_GENERATED if not (gdb / h).is_file()]
    if missing:
        raise HeadersError("gdb %s's configure did not write %s" % (gdb_version, ", ".join(missing)))
