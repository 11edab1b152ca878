"""One memory cgroup read from a kernel (used by :mod:`.memcg`).

:class:`Memcg` is what is read; :class:`MemcgLayout` is what this kernel's
memcg and cgroup structures look like, decided once from debug info;
:class:`MemcgReader` reads one memcg either member by member through the
access layer (every kernel generation, each unreadable member named) or,
on the layouts :class:`FastLayout` covers, from one read of its struct decoded
by offset, falling back to the first on any read error.
"""

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import MissingSymbolError, ReadError
from ..kernel.fields import StructFields
from ..kernel.target import KObj, Target
from ..kernel.walk import BlockCache

__all__ = ["Memcg", "MemcgLayout", "FastLayout", "MemcgReader", "optional_symbol",
           "optional_constant"]


@dataclass
class Memcg:
    """One ``struct mem_cgroup`` and what was read from it."""

    address: int
    path: str = "?"
    depth: int = 0
    cgroup_id: Optional[int] = None
    css_id: Optional[int] = None
    memcg_id: Optional[int] = None
    kmemcg_id: Optional[int] = None
    online: bool = False
    #: False when css.flags could not be read: online or dying is then unknown
    state_known: bool = False
    css_flags: List[str] = field(default_factory=list)
    refcount: Optional[int] = None
    ref_mode: str = "?"
    usage_pages: Optional[int] = None
    kmem_pages: Optional[int] = None
    kmem_state: Optional[str] = None
    kmem_flags: Optional[List[str]] = None
    sources: List[str] = field(default_factory=list)
    anomalies: List[str] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        if not self.state_known:
            return "unknown"
        return "online" if self.online else "dying"

    def to_json(self) -> Dict[str, Any]:
        return {
            "address": f"{self.address:#x}",
            "path": self.path,
            "depth": self.depth,
            "cgroup_id": self.cgroup_id,
            "css_id": self.css_id,
            "memcg_id": self.memcg_id,
            "kmemcg_id": self.kmemcg_id,
            "state": self.state,
            "css_flags": self.css_flags,
            "refcount": self.refcount,
            "ref_mode": self.ref_mode,
            "usage_pages": self.usage_pages,
            "kmem_pages": self.kmem_pages,
            "kmem_state": self.kmem_state,
            "kmem_flags": self.kmem_flags,
            "sources": self.sources,
            "anomalies": self.anomalies,
            "errors": self.errors,
        }


# -- small helpers ------------------------------------------------------------

def optional_symbol(t: Target, name: str) -> Optional[KObj]:
    try:
        return t.symbol(name)
    except MissingSymbolError:
        return None


def optional_constant(t: Target, name: str) -> Optional[int]:
    try:
        return t.constant(name)
    except MissingSymbolError:
        return None


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _s64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _counter(obj: KObj) -> int:
    """Value of an ``atomic_t`` / ``atomic_long_t`` or a plain integer."""
    try:
        return int(obj.counter)
    except MissingSymbolError:
        return int(obj)


# -- the layout of this kernel -------------------------------------------------------

def _mem_subsys_id(t: Target) -> Optional[int]:
    """The memory controller's index in ``cgroup->subsys[]``."""
    sid = optional_constant(t, "memory_cgrp_id")
    if sid is None:
        sid = optional_constant(t, "mem_cgroup_subsys_id")
    if sid is None:
        ss = optional_symbol(t, "mem_cgroup_subsys")
        if ss is not None and t.has_member("struct cgroup_subsys", "subsys_id"):
            sid = int(ss.subsys_id)
    return sid


def _memcg_on_dfl(t: Target) -> bool:
    """Whether the memory controller is on the default (v2) hierarchy."""
    dfl = optional_symbol(t, "cgrp_dfl_root")
    if dfl is not None and t.has_member("struct cgroup", "root"):
        try:
            root = t.symbol("root_mem_cgroup")
            return int(root.css.cgroup.root) == dfl.address
        except (ReadError, MissingSymbolError):
            pass
    return False


def _kn_id_mode(t: Target) -> Optional[str]:
    """How a kernfs node holds its id (the cgroup inode number): a u64
    kn->id since Linux kernel commit 67c0496e87d1 ("kernfs: convert
    kernfs_node->id from union kernfs_node_id to u64") (in v5.5); union
    kernfs_node_id with .ino v4.14-v5.4; kn->ino v3.14-v4.13."""
    if t.has_member("struct kernfs_node", "id.ino"):
        return "union"
    if t.has_member("struct kernfs_node", "id"):
        return "u64"
    if t.has_member("struct kernfs_node", "ino"):
        return "ino"
    return None


class MemcgLayout:
    """What this kernel's memcg/cgroup structures look like, decided once."""

    def __init__(self, t: Target) -> None:
        self.t = t
        self.css_tree = t.has_member("struct cgroup_subsys_state", "children")
        self.kernfs = t.has_member("struct cgroup", "kn")
        # the memory controller's index in cgroup->subsys[]
        self.mem_subsys_id = _mem_subsys_id(t)
        # v3.10: css->id is a struct css_id * (removed in v3.15 for an int id)
        self.css_id_is_ptr = t.has_type("struct css_id")
        self.css_id_int = not self.css_id_is_ptr and \
            t.has_member("struct cgroup_subsys_state", "id")
        self.cgroup_dentry = t.has_member("struct cgroup", "dentry")
        self.has_memcg_id = t.has_member("struct mem_cgroup", "id.id")
        self.has_kmemcg_id = t.has_member("struct mem_cgroup", "kmemcg_id")
        self.kmem_account_flags = t.has_member("struct mem_cgroup", "kmem_account_flags")
        self.kmem_state = t.has_member("struct mem_cgroup", "kmem_state")
        # usage counters: page_counter (v3.19+) or res_counter in bytes (3.10)
        self.res_counter = t.has_member("struct mem_cgroup", "res.usage")
        self.usage_member = None
        # Since Linux kernel commit bbec2e15170a ("mm: rename page_counter's
        # count/limit into usage/max") (in v4.16) the counter is usage, before count
        if t.has_member("struct mem_cgroup", "memory.usage"):
            self.usage_member = "usage"
        elif t.has_member("struct mem_cgroup", "memory.count"):
            self.usage_member = "count"
        self.kmem_counter = t.has_member("struct mem_cgroup", "kmem")
        # On the default (v2) hierarchy memcg->kmem is never charged: kmem is
        # charged to it only "if (!cgroup_subsys_on_dfl(memory_cgrp_subsys))"
        # (mm/memcontrol.c v5.10 __memcg_kmem_charge, v6.1 memcg_account_kmem).
        self.on_dfl = _memcg_on_dfl(t)
        if self.on_dfl:
            self.kmem_counter = False
        self.kn_id_mode = _kn_id_mode(t) if self.kernfs else None
        # Since Linux kernel commit 633488947ef6 ("kernfs: Use RCU to access
        # kernfs_node::parent.") (in v6.15), kernfs_node::parent is __parent.
        self.kn_parent = "__parent" if self.kernfs and \
            t.has_member("struct kernfs_node", "__parent") else "parent"
        # css flag names, values from debug info (masks on every version we read)
        self.css_flags: List[Tuple[str, int]] = []
        for name in ("CSS_NO_REF", "CSS_ROOT", "CSS_ONLINE", "CSS_RELEASED",
                     "CSS_VISIBLE", "CSS_DYING", "CSS_REMOVED"):
            v = optional_constant(t, name)
            if v is not None:
                self.css_flags.append((name, v))
        self.css_online = optional_constant(t, "CSS_ONLINE")
        # percpu_ref: its count is in percpu_ref_data since Linux kernel commit
        # 2b0d3d3e4fcf ("percpu_ref: reduce memory footprint of percpu_ref in fast
        # path") (in v5.9)
        self.percpu_ref = t.has_type("struct percpu_ref") and \
            t.has_member("struct cgroup_subsys_state", "refcnt.percpu_count_ptr")
        self.ref_data = t.has_member("struct percpu_ref", "data")
        ra = optional_constant(t, "__PERCPU_REF_ATOMIC")
        rd = optional_constant(t, "__PERCPU_REF_DEAD")
        self.ref_atomic = 1 if ra is None else ra   # include/linux/percpu-refcount.h v3.18+
        self.ref_dead = 2 if rd is None else rd
        self.kmem_bits: List[Tuple[str, int]] = []
        if self.kmem_account_flags:
            for name in ("KMEM_ACCOUNTED_ACTIVE", "KMEM_ACCOUNTED_ACTIVATED",
                         "KMEM_ACCOUNTED_DEAD", "KMEM_MAY_SHRINK"):
                v = optional_constant(t, name)
                if v is not None:
                    self.kmem_bits.append((name, v))
        self.kmem_state_names: Dict[int, str] = {}
        if self.kmem_state:
            try:
                self.kmem_state_names = {v: k for k, v in
                                         t.enum_constants("enum memcg_kmem_state").items()}
            except MissingSymbolError:
                pass


# -- reading one memcg -----------------------------------------------------------------

class FastLayout:
    """Where the fast path finds what :meth:`MemcgReader.read_slow` reads member
    by member, on the layouts it covers: css tree, kernfs, percpu_ref with
    ``percpu_ref_data`` (v5.9+) and page_counter usage.  None of it exists
    (the constructor raises MissingSymbolError) on other kernels."""

    def __init__(self, t: Target, lay: MemcgLayout) -> None:
        if not (lay.css_tree and lay.kernfs and lay.css_id_int and lay.percpu_ref
                and lay.ref_data and lay.usage_member and lay.kn_id_mode == "u64"
                and lay.css_online is not None and not lay.kmem_account_flags):
            raise MissingSymbolError("memcg fast path: not this layout")
        members = {"flags": "css.flags", "cgroup": "css.cgroup", "css_id": "css.id",
                   "kids_next": "css.children.next", "kids_prev": "css.children.prev",
                   "pcp": "css.refcnt.percpu_count_ptr", "data": "css.refcnt.data",
                   "usage": f"memory.{lay.usage_member}.counter"}
        if lay.has_memcg_id:
            members["memcg_id"] = "id.id"
        if lay.has_kmemcg_id:
            members["kmemcg_id"] = "kmemcg_id"
        if lay.kmem_counter:
            members["kmem"] = f"kmem.{lay.usage_member}.counter"
        if lay.kmem_state:
            members["kmem_state"] = "kmem_state"
        self.memcg = StructFields(t, "struct mem_cgroup", members)
        self.children_off = t.member_offset("struct mem_cgroup", "css.children")
        self.count = StructFields(t, "struct percpu_ref_data", {"count": "count.counter"})
        self.kn_off = t.member_int_layout("struct cgroup", "kn")[0]
        self.kn = StructFields(t, "struct kernfs_node",
                               {"id": "id", "parent": lay.kn_parent, "name": "name"})


class MemcgReader:
    def __init__(self, t: Target, lay: MemcgLayout, root_addr: int) -> None:
        self.t = t
        self.lay = lay
        self.root_addr = root_addr
        self._kn_path: Dict[int, Tuple[str, int]] = {}
        self._cg_path: Dict[int, Tuple[str, int]] = {}
        #: kernfs_node -> its id (the cgroup inode number), read with its path
        self._kn_id: Dict[int, int] = {}
        try:
            self.fast: Optional[FastLayout] = FastLayout(t, lay)
        except MissingSymbolError:
            self.fast = None
        self._checks = 16
        #: blocks shared by the tree walk and the fast reads (dumps only):
        #: memcgs, their cgroups and kernfs nodes sit in slab pages read once.
        #: 256 blocks (1 MiB): on the scale dump 4.5% more reads than 1,024
        #: (4 MiB), no slower (docs/performance.md)
        self.cache: Optional[BlockCache] = None if t.is_live else BlockCache(t, 256)
        #: the memcg whose css.children the last read saw empty, if it did
        self._childless: Optional[int] = None

    def children_empty(self, addr: int) -> bool:
        """Whether the last read, that of ``addr``, found ``css.children``
        pointing to itself both ways: an empty list, which a walk would end
        at once without a word.  The walk asks right after each read."""
        return addr == self._childless

    def read(self, addr: int) -> Memcg:
        """One memcg: from one read of its struct where the layout allows
        (:class:`FastLayout`), member by member otherwise or if any of that read
        fails (the slow path then says which member could not be read)."""
        self._childless = None
        if self.fast is not None:
            try:
                m = self.read_fast(addr)
            except ReadError:
                return self.read_slow(addr)
            if self._checks <= 0:
                return m
            # the first memcgs are read both ways: a backend whose layout
            # answers disagree with its own member reads loses the fast path
            self._checks -= 1
            slow = self.read_slow(addr)
            if slow.to_json() != m.to_json():
                self.fast = None
            return slow
        return self.read_slow(addr)

    def read_fast(self, addr: int) -> Memcg:
        f, lay, cache = self.fast, self.lay, self.cache
        v = f.memcg.read(addr, cache)
        # everything that can fail is read before the Memcg is built
        cg = v["cgroup"]
        if cache is not None:
            kn = cache.word(cg + f.kn_off)
            if kn is None:
                raise ReadError(f"cannot read cgroup {cg:#x}", cg)
        else:
            kn = self.t.read_pointer(cg + f.kn_off)
        path, depth = self._kernfs_path_fast(kn)
        ino = self._kn_id[kn]
        ptr = v["pcp"]
        refcount = None
        if ptr & lay.ref_dead:
            ref_mode = "dead"
        elif ptr & lay.ref_atomic:
            ref_mode = "atomic"
        else:
            ref_mode = "percpu"
        if ref_mode != "percpu":
            refcount = _s64(f.count.read(v["data"], cache)["count"])
        flags = v["flags"]
        m = Memcg(address=addr, path=path, depth=depth, cgroup_id=ino,
                  css_id=_s32(v["css_id"]), online=bool(flags & lay.css_online),
                  state_known=True, css_flags=[n for n, bit in lay.css_flags if flags & bit],
                  refcount=refcount, ref_mode=ref_mode, usage_pages=_s64(v["usage"]))
        head = addr + f.children_off
        if v["kids_next"] == head and v["kids_prev"] == head:
            self._childless = addr
            # no memcg below this one, so no path is built on its node's:
            # only the parents' paths stay cached (memory flat in the leaves)
            self._kn_path.pop(kn, None)
            self._kn_id.pop(kn, None)
        if "memcg_id" in v:
            m.memcg_id = _s32(v["memcg_id"])
        if "kmemcg_id" in v:
            m.kmemcg_id = _s32(v["kmemcg_id"])
        if "kmem" in v:
            m.kmem_pages = _s64(v["kmem"])
        if "kmem_state" in v:
            m.kmem_state = lay.kmem_state_names.get(v["kmem_state"], str(v["kmem_state"]))
        return m

    def _kernfs_path_fast(self, kn: int) -> Tuple[str, int]:
        """:meth:`_kernfs_path` from one read per kernfs_node (id, parent,
        name pointer) and one of its name; each node once per walk.  Raises
        ReadError where the slow path might differ (an unterminated name)."""
        got = self._kn_path.get(kn)
        if got is not None and kn in self._kn_id:
            return got
        f = self.fast
        chain = []
        vals = {}
        node = kn
        while node and (node not in self._kn_path or node not in self._kn_id):
            chain.append(node)
            if len(chain) > 4096:
                raise ReadError(f"kernfs parent chain from {kn:#x} does not end")
            vals[node] = f.kn.read(node, self.cache)
            node = vals[node]["parent"]
        base = self._kn_path.get(node, ("", -1)) if node else ("", -1)
        # the top of a chain that ends at NULL is the root directory: no name read
        named = chain if node else chain[:-1]
        names = {n: self._name(vals[n]["name"]) for n in named}
        for n in reversed(chain):
            if base[1] < 0:  # the hierarchy's root directory
                base = ("/", 0)
            else:
                base = ((base[0].rstrip("/") + "/" + names[n]), base[1] + 1)
            self._kn_path[n] = base
            self._kn_id[n] = vals[n]["id"]
        return self._kn_path[kn]

    def _name(self, ptr: int) -> str:
        """The kernfs name at ``ptr`` as ``KObj.string(256)`` gives it."""
        if ptr == 0:
            return ""
        n = min(256, 4096 - (ptr & 4095))
        raw = self.cache.read(ptr, n) if self.cache is not None else self.t.read_bytes(ptr, n)
        end = raw.find(b"\0")
        if end < 0:  # longer, or crossing a page: the slow path reads it
            raise ReadError("kernfs name not terminated in the bytes read", ptr)
        return raw[:end].decode("utf-8", "replace")

    def read_slow(self, addr: int) -> Memcg:
        m = Memcg(address=addr)
        t, lay = self.t, self.lay
        memcg = t.object("struct mem_cgroup", addr)
        css = memcg.css

        def attempt(what: str, fn: Callable[[], None]) -> None:
            try:
                fn()
            except (ReadError, MissingSymbolError) as exc:
                m.errors.append(f"{what}: {exc.one_line()}")

        def flags() -> None:
            v = int(css.flags)
            m.css_flags = [n for n, bit in lay.css_flags if v & bit]
            if lay.css_online is not None:
                m.online = bool(v & lay.css_online)
            m.state_known = True
        attempt("css.flags", flags)

        def path() -> None:
            cg = int(css.cgroup)
            m.path, m.depth = self.cgroup_path(cg)
            m.cgroup_id = self.cgroup_ino(cg)
        attempt("cgroup", path)

        def css_id() -> None:
            if lay.css_id_is_ptr:
                p = int(css.id)
                m.css_id = int(css.id.id) if p else None
            elif lay.css_id_int:
                m.css_id = _s32(int(css.id))
        attempt("css.id", css_id)

        if lay.has_memcg_id:
            attempt("id", lambda: setattr(m, "memcg_id", _s32(int(memcg.id.id))))
        if lay.has_kmemcg_id:
            attempt("kmemcg_id", lambda: setattr(m, "kmemcg_id", _s32(int(memcg.kmemcg_id))))
        attempt("css.refcnt", lambda: self._refcount(m, css))

        def usage() -> None:
            if lay.usage_member:
                m.usage_pages = _s64(_counter(memcg.memory.member(lay.usage_member)))
                if lay.kmem_counter:
                    m.kmem_pages = _s64(_counter(memcg.kmem.member(lay.usage_member)))
            elif lay.res_counter:
                m.usage_pages = int(memcg.res.usage) // t.page_size
                if lay.kmem_counter:
                    m.kmem_pages = int(memcg.kmem.usage) // t.page_size
        attempt("usage", usage)

        def kmem() -> None:
            if lay.kmem_account_flags:
                v = int(memcg.kmem_account_flags)
                m.kmem_flags = [n for n, bit in lay.kmem_bits if v & (1 << bit)]
            if lay.kmem_state:
                v = int(memcg.kmem_state)
                m.kmem_state = lay.kmem_state_names.get(v, str(v))
        attempt("kmem", kmem)
        if m.errors:
            m.anomalies.append("unreadable")
        return m

    def _refcount(self, m: Memcg, css: KObj) -> None:
        lay = self.lay
        ref = css.refcnt
        if not lay.percpu_ref:
            m.refcount = _counter(ref)
            m.ref_mode = "atomic"
            return
        ptr = int(ref.percpu_count_ptr)
        if ptr & lay.ref_dead:
            m.ref_mode = "dead"
        elif ptr & lay.ref_atomic:
            m.ref_mode = "atomic"
        else:
            m.ref_mode = "percpu"
            return
        count = ref.data.count if lay.ref_data else ref.count
        m.refcount = _s64(_counter(count))

    # paths --------------------------------------------------------------------
    def cgroup_path(self, cg: int) -> Tuple[str, int]:
        if self.lay.kernfs:
            kn = int(self.t.object("struct cgroup", cg).kn)
            return self._kernfs_path(kn)
        return self._cgroup_name_path(cg)

    def _kernfs_path(self, kn: int) -> Tuple[str, int]:
        chain = []
        node = kn
        while node and node not in self._kn_path:
            chain.append(node)
            if len(chain) > 4096:
                raise ReadError(f"kernfs parent chain from {kn:#x} does not end")
            node = int(self.t.object("struct kernfs_node", node).member(self.lay.kn_parent))
        base = self._kn_path.get(node, ("", -1)) if node else ("", -1)
        for n in reversed(chain):
            obj = self.t.object("struct kernfs_node", n)
            if base[1] < 0:  # the hierarchy's root directory
                base = ("/", 0)
            else:
                name = obj.name.string(256)
                base = ((base[0].rstrip("/") + "/" + name), base[1] + 1)
            self._kn_path[n] = base
        return self._kn_path[kn]

    def _cgroup_name_path(self, cg: int) -> Tuple[str, int]:
        # v3.10: cgroup->name is a struct cgroup_name (rcu string), the root's "/"
        chain = []
        node = cg
        while node and node not in self._cg_path:
            chain.append(node)
            if len(chain) > 4096:
                raise ReadError(f"cgroup parent chain from {cg:#x} does not end")
            node = int(self.t.object("struct cgroup", node).parent)
        base = self._cg_path.get(node, ("", -1)) if node else ("", -1)
        for n in reversed(chain):
            if base[1] < 0:
                base = ("/", 0)
            else:
                obj = self.t.object("struct cgroup", n)
                name = obj.name.name.string(256)
                base = (base[0].rstrip("/") + "/" + name, base[1] + 1)
            self._cg_path[n] = base
        return self._cg_path[cg]

    def cgroup_ino(self, cg: int) -> Optional[int]:
        t, lay = self.t, self.lay
        cgrp = t.object("struct cgroup", cg)
        if lay.kernfs:
            kn = cgrp.kn
            if lay.kn_id_mode == "u64":
                # fs/kernfs: on 64-bit ino_t the whole id is the inode number
                return int(kn.id)
            if lay.kn_id_mode == "union":
                return int(kn.id.ino)
            if lay.kn_id_mode == "ino":
                return int(kn.ino)
            return None
        if lay.cgroup_dentry:
            dentry = int(cgrp.dentry)
            if dentry:
                inode = int(cgrp.dentry.d_inode)
                if inode:
                    return int(cgrp.dentry.d_inode.i_ino)
        return None
