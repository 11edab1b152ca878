"""Name the file behind a page cache mapping: inode, superblock, path.

``struct address_space`` -> ``host`` (the ``struct inode``) -> ``i_ino``,
``i_size``, ``i_nlink``, ``i_sb`` (``s_dev``, ``s_type->name``, ``s_id``)
and, through one of its dentries (``i_dentry``), the path: the dentry's
names up to the filesystem's root, then the mount points up to the root
mount (``sb->s_mounts`` -> ``struct mount``: ``mnt_mountpoint`` in
``mnt_parent``), as ``d_path()`` does for the first mount of the
superblock.  Dentry aliases hang off ``inode->i_dentry`` through
``dentry->d_u.d_alias`` since Linux kernel commit 946e51f2bf37 ("move
d_rcu from overlapping d_child to overlapping d_alias") (release not
checked; also backported to stable kernels), through ``dentry->d_alias``
before (v3.10, RHEL 7's 3.10.0-514).  Block device page cache (the ``bdev``
pseudo-filesystem) is named by its device.  Every read is defensive: what
cannot be read leaves that part None.

Naming thousands of files (a host with thousands of dying memcgs, each
holding a file of its own) reads each address_space, inode and dentry once,
by offset, through a cache of 4 KiB blocks (they sit side by side in slab
pages), and each directory's name once; anything that read cannot do falls
back to reading member by member.
"""

from typing import Any, Dict, List, Optional, Tuple

from ..errors import MissingSymbolError, ReadError
from .fields import StructFields
from .target import Target
from .walk import BlockCache, walk_hlist, walk_list

__all__ = ["FileNamer"]

#: dev_t inside the kernel: 12 bits of major, 20 of minor (include/linux/kdev_t.h)
_MINORBITS = 20
_MAX_DEPTH = 256


class FileNamer:
    """Describes files (by ``struct address_space`` address), caching
    superblocks and mount points."""

    def __init__(self, t: Target) -> None:
        self.t = t
        self._sb: Dict[int, Dict[str, Any]] = {}
        self._alias = "d_u.d_alias" if t.has_member("struct dentry", "d_u.d_alias") \
            else "d_alias"
        self.cache: Optional[BlockCache] = None if t.is_live else BlockCache(t, 256)
        #: dentry -> its names up to the filesystem root (None: unreadable)
        self._names: Dict[int, Optional[Tuple[str, ...]]] = {}
        try:
            self._fast: Optional[_Fast] = _Fast(t, self._alias)
        except MissingSymbolError:
            self._fast = None

    def mapping(self, mapping: int) -> Dict[str, Any]:
        """``{"inode", "ino", "size", "nlink", "dev", "fstype", "sb_id",
        "mount", "path", "problem"}`` for the file whose page cache is
        ``mapping`` (``mount``: where its filesystem is mounted)."""
        if self._fast is not None:
            try:
                got = self._mapping_fast(mapping)
            except ReadError:
                got = None
            if got is not None:
                return got
        out: Dict[str, Any] = {"mapping": f"{mapping:#x}", "inode": None, "ino": None,
                               "size": None, "nlink": None, "dev": None, "fstype": None,
                               "sb_id": None, "mount": None, "path": None, "problem": None}
        return self._mapping_slow(mapping, out)

    def _mapping_fast(self, mapping: int) -> Optional[Dict[str, Any]]:
        """:meth:`mapping` from reads by offset; None where the slow path
        must say what went wrong (no host, no dentry, a name that did not
        fit)."""
        f, cache = self._fast, self.cache
        # the inode whose i_data this mapping would be, if its i_data.host
        # says so (one read); else the mapping's host, then the inode
        inode = mapping - f.i_data_off
        try:
            v = f.inode.read(inode, cache)
        except ReadError:
            v = None
        if v is None or v["host"] != inode:
            inode = f.mapping.read(mapping, cache)["host"]
            if not inode:
                return None
            v = f.inode.read(inode, cache)
        sb = self.superblock(v["sb"])
        if sb["fstype"] == "bdev":
            path = f"(block device {_dev(v['rdev'])})"
        else:
            first = v["dentry"]
            if not first:
                return None
            names = self._names_fast(first - f.alias_off)
            if names is None:
                return None
            path = _join(sb["mount"], sb["fstype"], names)
            if v["nlink"] == 0:
                path += " (deleted)"
        return {"mapping": f"{mapping:#x}", "inode": f"{inode:#x}", "ino": v["ino"],
                "size": v["size"], "nlink": v["nlink"], "dev": sb["dev"],
                "fstype": sb["fstype"], "sb_id": sb["sb_id"], "mount": sb["mount"],
                "path": path, "problem": None}

    def _names_fast(self, dentry: int) -> Optional[Tuple[str, ...]]:
        names = self._names
        got = names.get(dentry, False)
        if got is not False:
            return got
        f, cache = self._fast, self.cache
        # most files sit in a directory already named: one dentry read
        v = f.dentry.read(dentry, cache)
        parent = v["parent"]
        base = names.get(parent) if parent != dentry else None
        if base is not None:
            name = _name(self.t, cache, v["name"])
            return None if name is None else base + (name,)
        chain: List[Tuple[int, Dict[str, int]]] = []
        d = dentry
        base: Optional[Tuple[str, ...]] = None
        for _ in range(_MAX_DEPTH):
            known = self._names.get(d, False)
            if known is not False:
                base = known
                break
            v = f.dentry.read(d, cache)
            if v["parent"] == d or not v["parent"]:
                base = ()
                self._names[d] = base
                break
            chain.append((d, v))
            d = v["parent"]
        if base is None:
            return None
        for node, v in reversed(chain):
            name = _name(self.t, cache, v["name"])
            if name is None:
                return None
            base = base + (name,)
            if node != dentry:
                self._names[node] = base
        # the file's own dentry is not kept: only directories are shared
        return base

    def _mapping_slow(self, mapping: int, out: Dict[str, Any]) -> Dict[str, Any]:
        t = self.t
        try:
            inode = int(t.object("struct address_space", mapping).host)
            if not inode:
                out["problem"] = "mapping without a host inode"
                return out
            out["inode"] = f"{inode:#x}"
            ino = t.object("struct inode", inode)
            out["ino"] = int(ino.i_ino)
            out["size"] = int(ino.i_size)
            out["nlink"] = _nlink(ino)
            sb = self.superblock(int(ino.i_sb))
            out.update({k: sb[k] for k in ("dev", "fstype", "sb_id", "mount")})
            if sb["fstype"] == "bdev":
                out["path"] = f"(block device {_dev(int(ino.i_rdev))})"
                return out
            path = self._path(inode, sb)
            if path is not None and out["nlink"] == 0:
                path += " (deleted)"
            out["path"] = path
            if path is None:
                out["problem"] = "no dentry names it"
        except (ReadError, MissingSymbolError) as exc:
            out["problem"] = exc.one_line()
        return out

    def superblock(self, sb: int) -> Dict[str, Any]:
        got = self._sb.get(sb)
        if got is not None:
            return got
        t = self.t
        info: Dict[str, Any] = {"dev": None, "fstype": None, "sb_id": None, "mount": None}
        try:
            s = t.object("struct super_block", sb)
            info["dev"] = _dev(int(s.s_dev))
            info["fstype"] = s.s_type.name.string(64)
            info["sb_id"] = s.s_id.string(64)
            info["mount"] = self._mount_point(s)
        except (ReadError, MissingSymbolError):
            pass
        self._sb[sb] = info
        return info

    # -- paths ---------------------------------------------------------------------
    def _dentry_names(self, dentry: int) -> Optional[List[str]]:
        """Names from ``dentry`` up to (not including) its filesystem root."""
        t = self.t
        names: List[str] = []
        for _ in range(_MAX_DEPTH):
            d = t.object("struct dentry", dentry)
            parent = int(d.d_parent)
            if parent == dentry or not parent:
                return list(reversed(names))
            names.append(d.d_name.name.string(256))
            dentry = parent
        return None

    def _path(self, inode: int, sb: Dict[str, Any]) -> Optional[str]:
        t = self.t
        head = t.object("struct inode", inode).i_dentry.address
        walk = walk_hlist(t, head, limit=16)
        alias_off = t.member_offset("struct dentry", self._alias)
        for node in walk:
            names = self._dentry_names(node - alias_off)
            if names is None:
                continue
            return _join(sb.get("mount"), sb.get("fstype"), names)
        return None

    def _mounts(self, s) -> List[int]:
        """The mounts of superblock ``s`` (``struct mount`` addresses).
        Since Linux kernel commit 09a1b33c080f ("preparations to taking
        MNT_WRITE_HOLD out of ->mnt_flags") (in v6.18) ``s_mounts`` is the
        first mount of an open-coded list through ``mnt_next_for_sb``; a
        list_head through ``mnt_instance`` before."""
        t = self.t
        if not t.has_member("struct super_block", "s_mounts"):
            return []
        head = s.s_mounts
        if head.type_name.rstrip().endswith("*"):
            out: List[int] = []
            m = int(head)
            while m and len(out) < 64 and m not in out:
                out.append(m)
                m = int(t.object("struct mount", m).mnt_next_for_sb)
            return out
        inst_off = t.member_offset("struct mount", "mnt_instance")
        return [node - inst_off for node in walk_list(t, head.address, limit=64)]

    def _mount_point(self, s) -> Optional[str]:
        """Where the first mount of superblock ``s`` is mounted, as a path."""
        t = self.t
        for mnt in self._mounts(s):
            parts: List[str] = []
            for _ in range(_MAX_DEPTH):
                m = t.object("struct mount", mnt)
                parent = int(m.mnt_parent)
                if parent == mnt or not parent:
                    return "/" + "/".join(reversed(parts)) if parts else "/"
                names = self._dentry_names(int(m.mnt_mountpoint))
                if names is None:
                    break
                parts.extend(reversed(names))
                mnt = parent
        return None


class _Fast:
    """The members the fast path reads, by offset (MissingSymbolError where
    the layout does not allow it)."""

    def __init__(self, t: Target, alias: str) -> None:
        nlink = "i_nlink" if t.has_member("struct inode", "i_nlink") else "__i_nlink"
        self.mapping = StructFields(t, "struct address_space", {"host": "host"})
        self.inode = StructFields(t, "struct inode", {
            "ino": "i_ino", "size": "i_size", "nlink": nlink, "sb": "i_sb",
            "dentry": "i_dentry.first", "rdev": "i_rdev", "host": "i_data.host"})
        #: a page-cache mapping is almost always its inode's own i_data
        self.i_data_off = t.member_offset("struct inode", "i_data")
        self.dentry = StructFields(t, "struct dentry", {"parent": "d_parent",
                                                        "name": "d_name.name"})
        self.alias_off = t.member_offset("struct dentry", alias)


def _name(t: Target, cache: Optional[BlockCache], ptr: int) -> Optional[str]:
    """A dentry name (NUL-terminated, at most 255 bytes) read in one go."""
    if not ptr:
        return ""
    off = ptr & 4095
    if cache is not None:  # the block, searched in place
        buf = cache.block(ptr - off)
        if buf is None:
            return None
    else:
        try:
            buf = t.read_bytes(ptr, min(256, 4096 - off))
        except ReadError:
            return None
        off = 0
    end = buf.find(b"\0", off, off + 256)
    if end < 0:
        return None  # crosses a page: the slow path reads it
    return buf[off:end].decode("utf-8", "replace")


def _join(mount: Optional[str], fstype: Optional[str], names) -> str:
    rel = "/".join(names)
    if mount is None:
        return f"{fstype or '?'}:/{rel}"
    return (mount.rstrip("/") + "/" + rel) if rel else mount


def _nlink(ino) -> Optional[int]:
    for name in ("i_nlink", "__i_nlink"):
        try:
            return int(ino.member(name))
        except MissingSymbolError:
            continue
    return None


def _dev(dev: int) -> str:
    return f"{dev >> _MINORBITS}:{dev & ((1 << _MINORBITS) - 1)}"
