"""The sources scripts/build-pykdump builds from, and the trees it makes of them.

The pinned archives (PINNED: name -> SHA-256, the values of
shared/third_party/SHA256SUMS), where one comes from when it is not there
(upstream git commits, GNU's gdb tarballs), the crash versions and the gdb
each one's Makefile patches (CRASHES), and Trees: a crash source tree with
the gdb tree its Makefile expects (gdb 10.2 for crash 8.0.x, made from
Debian's 10.1 and its branch updates; gdb 16.3 for crash 9.x), unbuilt.
What is compiled of them, and how it is cached, is build-pykdump's: a
change here that changes a tree bumps its CRASH_RECIPE (and RECIPE), as a
change there does, so that cached builds of the old trees are redone.
"""
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import NamedTuple

#: Pinned source archives: name -> SHA-256.  The same values as
#: shared/third_party/SHA256SUMS; a file with another checksum is refused.
PINNED = {
    "crash-8.0.2.tar.gz": "738e84c43a0bd953b126c5987cc9ae99f3ecabe537f5f625b528b365ed902c04",
    "crash-8.0.6.tar.gz": "f36949eecf303e7570850020936ae3a827ca54bf2f3bbb172382fd6f77ca7738",
    "gdb_10.1.orig.tar.xz": "d9108690ec1b818d3d4b21243a550083b8b82e36db07063bd89c4f1f73f5e1e7",
    "gdb_10.1-1.7.debian.tar.xz": "c54a774c8a75a3908724ab648be07dba8174eda7b8cd3de263bd97154516d8dd",
    "pykdump-bc2526c.tar.gz": "b2299f438d94fc537788718e5c2337a6696ec9425f411ee6b0559c4bfa519b9a",
    # GNU's own gdb 10.2, the upstream fallback for Debian's 10.1 package
    # above; the checksum is the one Yocto's crash recipe pins for it
    # (meta-openembedded, crash-cross-canadian: SRC_URI[gdb.sha256sum])
    "gdb-10.2.tar.gz": "b33ad58d687487a821ec8d878daab0f716be60d0936f2e3ac5cf08419ce70350",
    # crash master after 9.0.2 (Linux 7.1/7.2 support), `git archive` of
    # commit abcb45e, and Debian sid's crash 9.0.2 source package: its
    # orig-gdb component is gdb 16.3, its debian tarball carries the patch
    # that moves crash from gdb 16.2 to 16.3
    "crash-abcb45e.tar.gz": "e09cc7164fa8f27af425509b68e219ecdf0ee2f3dded9cf8e19f5d6edeef1f5d",
    "crash_9.0.2+~16.3.orig-gdb.tar.gz":
        "a33a7540f45a9b7b82aa21083866a34fc23236e7ac043ae22ea7dc5fb7cf6dde",
    "crash_9.0.2+~16.3-1.debian.tar.xz":
        "f81a1581b0deccf78021079eccc86e137e20afbc072a06a5935ba83a8dd8ae65",
    # GNU's gdb 16.3, the upstream fallback for Debian's orig-gdb component
    # (which is it with the GFDL manuals emptied); the checksum is the one
    # Homebrew's gdb formula, nixpkgs' gdb and Genode's gdb port pin for it
    "gdb-16.3.tar.xz": "bcfcd095528a987917acf9fff3f1672181694926cc18d609c99d0042c00224c5",
}

GNU_GDB_URL = "https://ftp.gnu.org/gnu/gdb/"

#: Upstream, for machines with internet and no local copy: git repository
#: and the commit the tag pointed at (the commit is what is checked).
UPSTREAM_GIT = {
    "crash-8.0.2.tar.gz": ("https://github.com/crash-utility/crash.git", "8.0.2",
                           "f1cd581d1c4a"),
    "crash-8.0.6.tar.gz": ("https://github.com/crash-utility/crash.git", "8.0.6",
                           "f13853cef53f"),
    # (the commit id the archive itself records: git get-tar-commit-id)
    "crash-abcb45e.tar.gz": ("https://github.com/crash-utility/crash.git",
                             "abcb45e7d443e693a59a759ca2862530e917c891",
                             "abcb45e7d443e693a59a759ca2862530e917c891"),
    "pykdump-bc2526c.tar.gz": ("https://github.com/stancheff/pykdump.git",
                               "bc2526c153adf02dcf9d2b3a13573804ae476a15",
                               "bc2526c153adf02dcf9d2b3a13573804ae476a15"),
}


class Crash(NamedTuple):
    """How one crash version is built."""
    tarball: str            #: crash's source archive (unpacks as its name without .tar.gz)
    gdb: str                #: the gdb version crash's Makefile builds and patches
    gdb_sources: tuple      #: the pinned gdb archives that build it (they key the build)
    rpmpkg: str = ""        #: crash's own version string when the tag does not give it
    #: the Debian release whose package ``crash`` is this version, built
    #: with ``make lzo snappy zstd`` (debian/rules).  When that package's
    #: /usr/bin/crash is installed, only PyKdump is built, against a crash
    #: tree configured and header-generated as that build does it, and
    #: Debian's binary is the crash of the pair (see debian_crash()).
    debian: str = ""


#: The crash versions built, by the version `crash --version` prints.  crash
#: master names itself "9.0.2++" after the 9.0.2 tag; the build names the
#: commit instead (crash's own RPMPKG make variable), so `crash --version`
#: and crashext say which one it is.
CRASHES = {
    "8.0.2": Crash("crash-8.0.2.tar.gz", "10.2",
                   ("gdb_10.1.orig.tar.xz", "gdb_10.1-1.7.debian.tar.xz"),
                   debian="bookworm"),
    "8.0.6": Crash("crash-8.0.6.tar.gz", "10.2",
                   ("gdb_10.1.orig.tar.xz", "gdb_10.1-1.7.debian.tar.xz")),
    "9.0.2+abcb45e": Crash("crash-abcb45e.tar.gz", "16.3",
                           ("crash_9.0.2+~16.3.orig-gdb.tar.gz",
                            "crash_9.0.2+~16.3-1.debian.tar.xz"),
                           rpmpkg="9.0.2+abcb45e"),
}
CRASH_VERSIONS = tuple(CRASHES)
PYKDUMP_TARBALL = "pykdump-bc2526c.tar.gz"
PYKDUMP_DIR = "pykdump-bc2526c"

#: Debian's patch in crash_9.0.2+~16.3-1.debian.tar.xz that moves crash's
#: Makefile, configure.c and gdb patch from gdb 16.2 to 16.3
DEBIAN_GDB163_PATCH = "debian/patches/0003-Update-to-gdb-16.3.patch"


class BuildError(Exception):
    pass


def say(msg):
    print("build-pykdump: " + msg, file=sys.stderr, flush=True)


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Trees:
    """Source trees, checked against PINNED, with every command they run
    written to one log (``log``, opened by the caller)."""

    def __init__(self, sources, jobs, log_path):
        self.sources = sources
        self.jobs = jobs
        self.log_path = log_path
        self.log = None

    # ---- running commands, everything into the log
    def run(self, argv, cwd, what, env=None):
        self.log.write("\n$ (cd %s; %s)\n" % (cwd, " ".join(map(str, argv))))
        self.log.flush()
        p = subprocess.run([str(a) for a in argv], cwd=cwd, env=env,
                           stdout=self.log, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise BuildError("%s failed (exit %d)" % (what, p.returncode))

    # ---- sources
    def source(self, name, dl_dir) -> Path:
        """The pinned archive `name`, checked; fetched from upstream if absent."""
        want = PINNED[name]
        if self.sources is not None and (self.sources / name).is_file():
            path = self.sources / name
        else:
            path = dl_dir / name
            if not path.is_file():
                self.fetch_upstream(name, path)
                return path          # checked by commit/tarball in fetch_upstream
        got = sha256(path)
        if got != want:
            raise BuildError("%s has SHA-256 %s, pinned %s: not the pinned source"
                             % (path, got[:16], want[:16]))
        return path

    def fetch_upstream(self, name, dest):
        say("%s not in %s: fetching it from upstream" % (name, self.sources))
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / (name + ".git")
        shutil.rmtree(tmp, ignore_errors=True)
        if name in UPSTREAM_GIT:
            url, ref, commit = UPSTREAM_GIT[name]
            prefix = name[:-len(".tar.gz")] + "/"
            try:
                self.run(["git", "init", "-q", "--bare", tmp], dest.parent, "git init")
                self.run(["git", "-C", tmp, "fetch", "-q", "--depth", "1", url, ref],
                         dest.parent, "fetching %s %s from %s (no network?)" % (name, ref, url))
                head = subprocess.run(["git", "-C", str(tmp), "rev-parse", "FETCH_HEAD"],
                                      capture_output=True, text=True).stdout.strip()
                if not head.startswith(commit):
                    raise BuildError("%s %s is commit %s upstream, pinned %s"
                                     % (url, ref, head[:12], commit[:12]))
                self.run(["git", "-C", tmp, "archive", "--format=tar.gz",
                          "--prefix=" + prefix, "-o", dest, "FETCH_HEAD"],
                         dest.parent, "git archive")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return
        raise BuildError("%s is not in %s and has no upstream fallback; "
                         "set CRASHEXT_SOURCES to a directory holding it" % (name, self.sources))

    def gnu_gdb(self, name, dl_dir, why) -> Path:
        """GNU's gdb tarball `name`, downloaded once and checked against PINNED."""
        dest = dl_dir / name
        if not dest.is_file():
            url = GNU_GDB_URL + name
            say("%s: downloading %s" % (why, url))
            dl_dir.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".part")
            try:
                with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
            except OSError as exc:
                raise BuildError("cannot download %s (no network?): %s" % (url, exc))
            tmp.rename(dest)
        return self.check_gnu_gdb(dest, name)

    @staticmethod
    def check_gnu_gdb(path, name) -> Path:
        got = sha256(path)
        if got != PINNED[name]:
            raise BuildError("%s has SHA-256 %s, pinned %s: not GNU's %s"
                             % (path, got[:16], PINNED[name][:16], name))
        return path

    def have(self, *names) -> bool:
        return self.sources is not None and all((self.sources / n).is_file() for n in names)

    # ---- the gdb 10.2 tree crash expects, made from Debian's 10.1 + updates
    def gdb_tree_10(self, crash_dir, dl_dir, gnu_gdb):
        gdb = crash_dir / "gdb-10.2"
        if gnu_gdb:
            gnu_gdb = self.check_gnu_gdb(gnu_gdb, "gdb-10.2.tar.gz")
        elif not self.have("gdb_10.1.orig.tar.xz", "gdb_10.1-1.7.debian.tar.xz"):
            gnu_gdb = self.gnu_gdb("gdb-10.2.tar.gz", dl_dir,
                                   "Debian's gdb 10.1 source is not in %s" % self.sources)
        if gnu_gdb:
            # a genuine gdb-10.2.tar.gz (GNU's) needs nothing of Debian's
            with tarfile.open(gnu_gdb) as t:
                t.extractall(crash_dir)
        else:
            orig = self.source("gdb_10.1.orig.tar.xz", dl_dir)
            deb = self.source("gdb_10.1-1.7.debian.tar.xz", dl_dir)
            self.run(["tar", "-xJf", orig], crash_dir, "unpacking gdb 10.1")
            self.run(["tar", "-xJf", deb, "debian/patches/branch-updates.diff"],
                     crash_dir, "unpacking Debian's gdb patches")
            # Debian's branch-updates.diff brings 10.1 to the gdb-10 branch
            # of 2021-01-03, which crash's gdb-10.2.patch applies to
            self.run(["patch", "-s", "-p1", "-d", "gdb-10.1", "-i",
                      crash_dir / "debian/patches/branch-updates.diff"],
                     crash_dir, "applying Debian's gdb-10 branch updates")
            shutil.rmtree(crash_dir / "debian")
            (crash_dir / "gdb-10.1").rename(gdb)
        # crash's own gdb patch (what its Makefile's gdb_patch does).  crash
        # 8.0.6's patch carries two gdb.texinfo hunks that do not apply to
        # this tree; they change documentation only, so rejects are allowed
        # there and nowhere else.
        self.log.write("\n$ patch -p0 --forward < gdb-10.2.patch\n")
        self.log.flush()
        p = subprocess.run(["patch", "-p0", "--forward", "-r", "-",
                            "-i", "gdb-10.2.patch"], cwd=crash_dir,
                           capture_output=True, text=True)
        self.log.write(p.stdout + p.stderr)
        bad_files, current = [], None
        for line in p.stdout.splitlines():
            m = re.match(r"patching file (\S+)", line)
            if m:
                current = m.group(1)
            elif "FAILED" in line and current and not current.endswith(".texinfo"):
                bad_files.append(current)
        if p.returncode not in (0, 1) or bad_files:
            raise BuildError("crash's gdb-10.2.patch does not apply%s"
                             % (": " + ", ".join(sorted(set(bad_files))) if bad_files else ""))
        shutil.copy(crash_dir / "gdb-10.2.patch", gdb / "gdb-10.2.patch")
        # With glibc >= 2.34 <signal.h> pulls in <unistd.h> (for SIGSTKSZ),
        # which gnulib's replacement refuses before config.h: gdb 10's
        # amd64-linux-siginfo.c includes <signal.h> ahead of gdb's
        # common-defs.h (which includes config.h).  Swap the two, as gdb 11
        # does; without it the gdb build stops on bookworm (glibc 2.36).
        sig = gdb / "gdb/nat/amd64-linux-siginfo.c"
        text = sig.read_text()
        wrong = '#include <signal.h>\n#include "gdbsupport/common-defs.h"\n'
        if wrong in text:
            sig.write_text(text.replace(
                wrong, '#include "gdbsupport/common-defs.h"\n#include <signal.h>\n', 1))
        elif not re.search(r'^#include "gdbsupport/common-defs.h"\n(?:.*\n)*?#include <signal.h>',
                           text, re.M):
            raise BuildError("%s: unexpected include order, cannot apply the glibc 2.34 fix" % sig)

    # ---- crash 9.x: its tree moved to gdb 16.3, and gdb 16.3's tree
    def to_gdb_163(self, crash_dir, dl_dir):
        """Debian's patch moving crash from gdb 16.2 to 16.3, where the tree
        still builds 16.2 (crash master at abcb45e does)."""
        if (crash_dir / "gdb-16.3.patch").is_file():
            return
        if not (crash_dir / "gdb-16.2.patch").is_file():
            raise BuildError("%s has no gdb-16.2.patch or gdb-16.3.patch: not a crash 9.x tree"
                             % crash_dir.name)
        deb = self.source("crash_9.0.2+~16.3-1.debian.tar.xz", dl_dir)
        self.run(["tar", "-xJf", deb, DEBIAN_GDB163_PATCH], crash_dir,
                 "unpacking Debian's crash patches")
        self.run(["patch", "-s", "-p1", "--forward", "-r", "-", "-i",
                  crash_dir / DEBIAN_GDB163_PATCH], crash_dir,
                 "applying Debian's gdb 16.3 patch to %s" % crash_dir.name)
        shutil.rmtree(crash_dir / "debian")

    def gdb_tree_16(self, crash_dir, dl_dir, gnu_gdb):
        orig = "crash_9.0.2+~16.3.orig-gdb.tar.gz"
        if gnu_gdb:
            tarball = self.check_gnu_gdb(gnu_gdb, "gdb-16.3.tar.xz")
        elif self.have(orig):
            tarball = self.source(orig, dl_dir)
        else:
            tarball = self.gnu_gdb("gdb-16.3.tar.xz", dl_dir,
                                   "Debian's gdb 16.3 (%s) is not in %s" % (orig, self.sources))
        # both unpack as gdb-16.3/, where crash's Makefile looks for it (it
        # downloads GNU's tarball only when that directory has no README)
        self.run(["tar", "-xf", tarball], crash_dir, "unpacking gdb 16.3")
        gdb = crash_dir / "gdb-16.3"
        if not (gdb / "README").is_file():
            raise BuildError("%s did not unpack as gdb-16.3/" % tarball.name)
        # crash's own gdb patch, as its Makefile's gdb_patch target applies
        # it; here every hunk must apply
        self.run(["patch", "-s", "-p0", "--forward", "-r", "-", "-i", "gdb-16.3.patch"],
                 crash_dir, "applying crash's gdb-16.3.patch")
        shutil.copy(crash_dir / "gdb-16.3.patch", gdb / "gdb-16.3.patch")

    # ---- crash
    def crash_tree(self, version, work, dl_dir, gnu_gdb):
        """crash's sources with the gdb tree its Makefile patches, unbuilt."""
        recipe = CRASHES[version]
        tarball = self.source(recipe.tarball, dl_dir)
        self.run(["tar", "-xzf", tarball], work, "unpacking crash %s" % version)
        crash_dir = work / recipe.tarball[:-len(".tar.gz")]
        # --gnu-gdb names one gdb tarball: it serves the builds of that gdb
        gnu = gnu_gdb if gnu_gdb and gnu_gdb.name.startswith("gdb-%s." % recipe.gdb) else None
        if recipe.gdb == "10.2":
            self.gdb_tree_10(crash_dir, dl_dir, gnu)
        else:
            self.to_gdb_163(crash_dir, dl_dir)
            self.gdb_tree_16(crash_dir, dl_dir, gnu)
        return crash_dir
