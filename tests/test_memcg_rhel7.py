"""memcgids on a SYNTHETIC RHEL7 / 3.10 kernel (no 3.10 kernel can be booted here).

The structures below are stated from the upstream v3.10 sources (RHEL7's
3.10.0-693 keeps their layout for what we read):

- include/linux/cgroup.h v3.10: ``struct cgroup_subsys_state { struct cgroup
  *cgroup; atomic_t refcnt; unsigned long flags; struct css_id __rcu *id;
  struct work_struct dput_work; }``; css flag masks ``CSS_ROOT = 1 << 0``,
  ``CSS_ONLINE = 1 << 1``; ``struct cgroup { unsigned long flags; int id;
  atomic_t count; struct list_head sibling, children, files; struct cgroup
  *parent; struct dentry *dentry; struct cgroup_name __rcu *name; struct
  cgroup_subsys_state *subsys[CGROUP_SUBSYS_COUNT]; ... }``; ``struct
  cgroup_name { struct rcu_head rcu_head; char name[]; }``; ``struct
  cgroup_subsys { ...; int subsys_id; ...; bool use_id; ...; struct idr idr;
  ... }``; ``enum cgroup_subsys_id`` from include/linux/cgroup_subsys.h
  (cpuset, cpu_cgroup, cpuacct, mem_cgroup, ... without CONFIG_CGROUP_DEBUG).
- kernel/cgroup.c v3.10: ``struct css_id { struct cgroup_subsys_state __rcu
  *css; unsigned short id; unsigned short depth; struct rcu_head rcu_head;
  unsigned short stack[0]; }``.
- include/linux/idr.h v3.10: ``IDR_BITS 8``; ``struct idr_layer { int prefix;
  DECLARE_BITMAP(bitmap, IDR_SIZE); struct idr_layer *ary[1 << IDR_BITS]; int
  count; int layer; struct rcu_head rcu_head; }``; ``struct idr { struct
  idr_layer *hint, *top, *id_free; int layers; int id_free_cnt; int cur;
  spinlock_t lock; }``.
- include/linux/res_counter.h v3.10: ``struct res_counter { unsigned long long
  usage, max_usage, limit, soft_limit, failcnt; spinlock_t lock; struct
  res_counter *parent; }`` (bytes).
- mm/memcontrol.c v3.10: ``struct mem_cgroup { struct cgroup_subsys_state css;
  struct res_counter res; ...; struct res_counter memsw; struct res_counter
  kmem; bool use_hierarchy; unsigned long kmem_account_flags; ...; struct
  list_head memcg_slab_caches; struct mutex slab_caches_mutex; int kmemcg_id;
  ... }``; the anonymous enum of kmem_account_flags *bit numbers*
  ``KMEM_ACCOUNTED_ACTIVE = 0, KMEM_ACCOUNTED_ACTIVATED, KMEM_ACCOUNTED_DEAD``;
  ``static struct mem_cgroup *root_mem_cgroup``; ``int
  memcg_limited_groups_array_size``; ``struct cgroup_subsys mem_cgroup_subsys``.
- include/linux/slab.h v3.10: ``struct memcg_cache_params { bool
  is_root_cache; union { struct kmem_cache *memcg_caches[0]; struct { struct
  mem_cgroup *memcg; struct list_head list; struct kmem_cache *root_cache;
  bool dead; atomic_t nr_pages; struct work_struct destroy; }; }; }`` (80 bytes).

The RHEL7 idr-bug state (rhel7-3.10.0-693.2.2-idr-bug.dmesg): a child memcg whose
``memcg_propagate_kmem`` copied ACTIVE|ACTIVATED from its parent, whose
``memcg_update_cache_sizes`` failed (order-6 allocation), left with
``kmemcg_id == -1``; freeing it hits ``BUG_ON(id < 0)``.
"""

import io
import json

import pytest

drgn = pytest.importorskip("drgn")

from crashext.analysis.memcg import ANOMALIES, kmalloc_order, memcg_report, next_array_resize  # noqa: E402
from synth import SynthKernel  # noqa: E402

MEM_SUBSYS_ID = 3
SUBSYS_COUNT = 12
PAGE = 4096
ACTIVE, ACTIVATED, DEAD = 0, 1, 2


def rhel7_types(k: SynthKernel) -> None:
    k.struct("callback_head", [("struct callback_head *", "next"), ("void *", "func")])
    k.types["struct rcu_head"] = k.types["struct callback_head"]
    k.struct("work_struct", [("atomic_long_t", "data"), ("struct list_head", "entry"),
                             ("void *", "func")])
    k.struct("cgroup_subsys_state", [("struct cgroup *", "cgroup"), ("atomic_t", "refcnt"),
                                     ("unsigned long", "flags"), ("struct css_id *", "id"),
                                     ("struct work_struct", "dput_work")])
    k.struct("css_id", [("struct cgroup_subsys_state *", "css"), ("unsigned short", "id"),
                        ("unsigned short", "depth"), ("struct rcu_head", "rcu_head"),
                        ("unsigned short [0]", "stack")])
    # char name[] is a flexible array member (synth.struct lays out complete types only)
    k.types["struct cgroup_name"] = k.prog.struct_type("cgroup_name", 16, [
        drgn.TypeMember(k.types["struct rcu_head"], "rcu_head", 0),
        drgn.TypeMember(k.prog.array_type(k.types["char"]), "name", 16 * 8)])
    k.struct("inode", [("unsigned long", "i_ino")])  # only the member we read
    k.struct("dentry", [("unsigned int", "d_flags"), ("struct inode *", "d_inode")])
    k.struct("cgroup", [("unsigned long", "flags"), ("int", "id"), ("atomic_t", "count"),
                        ("struct list_head", "sibling"), ("struct list_head", "children"),
                        ("struct list_head", "files"), ("struct cgroup *", "parent"),
                        ("struct dentry *", "dentry"), ("struct cgroup_name *", "name"),
                        (f"struct cgroup_subsys_state *[{SUBSYS_COUNT}]", "subsys"),
                        ("void *", "root")])
    k.struct("idr_layer", [("int", "prefix"), ("unsigned long [4]", "bitmap"),
                           ("struct idr_layer *[256]", "ary"), ("int", "count"),
                           ("int", "layer"), ("struct rcu_head", "rcu_head")])
    k.struct("idr", [("struct idr_layer *", "hint"), ("struct idr_layer *", "top"),
                     ("struct idr_layer *", "id_free"), ("int", "layers"),
                     ("int", "id_free_cnt"), ("int", "cur"), ("unsigned int", "lock")])
    k.struct("cgroup_subsys", [("void *", "css_alloc"), ("int", "subsys_id"), ("int", "active"),
                               ("int", "disabled"), ("int", "early_init"), ("bool", "use_id"),
                               ("char *", "name"), ("struct idr", "idr")])
    k.struct("res_counter", [("unsigned long long", "usage"), ("unsigned long long", "max_usage"),
                             ("unsigned long long", "limit"), ("unsigned long long", "soft_limit"),
                             ("unsigned long long", "failcnt"), ("unsigned int", "lock"),
                             ("struct res_counter *", "parent")])
    k.struct("mem_cgroup", [("struct cgroup_subsys_state", "css"), ("struct res_counter", "res"),
                            ("struct res_counter", "memsw"), ("struct res_counter", "kmem"),
                            ("bool", "use_hierarchy"), ("unsigned long", "kmem_account_flags"),
                            ("struct list_head", "memcg_slab_caches"), ("int", "kmemcg_id")])
    k.struct("kmem_cache_cpu", [("void **", "freelist"), ("unsigned long", "tid")])  # SLUB
    k.struct("memcg_cache_params", [("bool", "is_root_cache"), ("void *", "memcg"),
                                    ("struct list_head", "list"), ("void *", "root_cache"),
                                    ("bool", "dead"), ("atomic_t", "nr_pages"),
                                    ("struct work_struct", "destroy")])
    k.enum(None, {"CSS_ROOT": 1 << 0, "CSS_ONLINE": 1 << 1})
    k.enum(None, {"KMEM_ACCOUNTED_ACTIVE": ACTIVE, "KMEM_ACCOUNTED_ACTIVATED": ACTIVATED,
                  "KMEM_ACCOUNTED_DEAD": DEAD})
    k.enum("cgroup_subsys_id", {"cpuset_subsys_id": 0, "cpu_cgroup_subsys_id": 1,
                                "cpuacct_subsys_id": 2, "mem_cgroup_subsys_id": MEM_SUBSYS_ID,
                                "devices_subsys_id": 4, "CGROUP_SUBSYS_COUNT": SUBSYS_COUNT})


class Rhel7:
    """A 3.10 memory cgroup hierarchy laid out in synthetic memory."""

    def __init__(self, array_size: int = 4, size: int = 4 << 20, more_types=None) -> None:
        self.k = k = SynthKernel(size=size)
        rhel7_types(k)
        if more_types is not None:  # other tests' structures (memcgpins: the page array)
            more_types(k)
        self.subsys = k.variable("mem_cgroup_subsys", "struct cgroup_subsys")
        k.set(self.subsys, "subsys_id", MEM_SUBSYS_ID)
        k.set(self.subsys, "use_id", 1)
        self.arr = k.variable("memcg_limited_groups_array_size", "int")
        k.write_u32(self.arr.address_, array_size)
        self.rootvar = k.variable("root_mem_cgroup", "struct mem_cgroup *")
        self.idr_ids = {}
        self.next_ino = 100
        self.root = self.add(None, "/", kmemcg_id=-1, flags=0, css_flags=0b11)
        k.write_u64(self.rootvar.address_, self.root["memcg"])

    def _list_init(self, addr):
        self.k.write_u64(addr, addr)
        self.k.write_u64(addr + 8, addr)

    def _list_add_tail(self, head, node):
        k = self.k
        prev = int.from_bytes(k.mem[head + 8 - k.base:head + 16 - k.base], "little")
        k.write_u64(node, head)
        k.write_u64(node + 8, prev)
        k.write_u64(prev, node)
        k.write_u64(head + 8, node)

    def add(self, parent, name, kmemcg_id, flags, css_flags=0b10, linked=True,
            usage_bytes=0, kmem_bytes=0, refcnt=1):
        k = self.k
        cg = k.new("struct cgroup")
        self._list_init(cg.sibling.address_)
        self._list_init(cg.children.address_)
        nm = k.alloc(16 + len(name) + 1)   # rcu_head, then name[]
        k.set_string(nm + 16, name)
        k.set(cg, "name", nm)
        inode = k.new("struct inode", i_ino=self.next_ino)
        self.next_ino += 1
        dentry = k.new("struct dentry", d_inode=inode.address_)
        k.set(cg, "dentry", dentry.address_)
        memcg = k.new("struct mem_cgroup")
        k.set(memcg, "css.cgroup", cg.address_)
        k.set(memcg, "css.refcnt.counter", refcnt)
        k.set(memcg, "css.flags", css_flags)
        k.set(memcg, "kmemcg_id", kmemcg_id)
        k.set(memcg, "kmem_account_flags", flags)
        k.set(memcg, "res.usage", usage_bytes)
        k.set(memcg, "kmem.usage", kmem_bytes)
        k.write_u64(cg.subsys.address_ + 8 * MEM_SUBSYS_ID, memcg.address_)
        # css id: allocated from mem_cgroup_subsys.idr (ids from 1)
        cid = len(self.idr_ids) + 1
        css_id = k.new("struct css_id", css=memcg.address_, id=cid)
        k.set(memcg, "css.id", css_id.address_)
        self.idr_ids[cid] = css_id.address_
        if parent is not None:
            k.set(cg, "parent", parent["cgroup"])
            if linked:  # cgroup_destroy_locked unlinks a removed cgroup at rmdir
                parent_cg = drgn.Object(k.prog, k.types["struct cgroup"], address=parent["cgroup"])
                self._list_add_tail(parent_cg.children.address_, cg.sibling.address_)
        return {"cgroup": cg.address_, "memcg": memcg.address_, "css_id": cid,
                "ino": self.next_ino - 1}

    def finish(self):
        """Build the one-layer idr (ids < 256) of css_ids and return the target."""
        k = self.k
        layer = k.new("struct idr_layer", layer=0)
        for cid, addr in self.idr_ids.items():
            k.write_u64(layer.ary.address_ + 8 * cid, addr)
        k.set(self.subsys, "idr.top", layer.address_)
        k.set(self.subsys, "idr.layers", 1)
        return k.target()


def by_path(report):
    return {m.path: m for m in report.memcgs}


def test_seed_state_is_flagged_and_clean_memcgs_are_not():
    h = Rhel7()
    on = (1 << ACTIVE) | (1 << ACTIVATED)
    docker = h.add(h.root, "docker", kmemcg_id=0, flags=on)
    good = h.add(docker, "good", kmemcg_id=1, flags=on, usage_bytes=10 * PAGE)
    # the RHEL7 idr-bug log: parent's flags copied, cache growth failed, id left at -1
    bad = h.add(docker, "bad", kmemcg_id=-1, flags=on)
    plain = h.add(h.root, "plain", kmemcg_id=-1, flags=0)  # no kmem limit: not accounted
    r = memcg_report(h.finish())
    paths = by_path(r)
    assert set(paths) == {"/", "/docker", "/docker/good", "/docker/bad", "/plain"}
    assert paths["/docker/bad"].anomalies == ["kmemcg-id-unassigned"]
    for p in ("/", "/docker", "/docker/good", "/plain"):
        assert paths[p].anomalies == [], p
    assert paths["/docker/good"].kmem_flags == ["KMEM_ACCOUNTED_ACTIVE", "KMEM_ACCOUNTED_ACTIVATED"]
    assert paths["/docker/good"].usage_pages == 10
    assert paths["/docker/bad"].cgroup_id == bad["ino"]
    assert paths["/docker/good"].css_id == good["css_id"]
    assert r.summary["flagged"] == 1
    assert r.summary["anomalies"] == {"kmemcg-id-unassigned": 1}
    assert "kmemcg-id-unassigned" in ANOMALIES
    assert plain["memcg"] in {m.address for m in r.memcgs}


def test_only_activated_bit_with_unassigned_id_is_flagged_too():
    h = Rhel7()
    m = h.add(h.root, "half", kmemcg_id=-1, flags=1 << ACTIVATED)
    r = memcg_report(h.finish())
    assert by_path(r)["/half"].anomalies == ["kmemcg-id-unassigned"]
    assert m["memcg"] == by_path(r)["/half"].address


def test_removed_memcg_found_through_css_id_idr_and_marked_dying():
    h = Rhel7()
    on = 1 << ACTIVE
    h.add(h.root, "live", kmemcg_id=0, flags=on)
    # removed (rmdir): unlinked from the parent, CSS_ONLINE cleared, still referenced
    gone = h.add(h.root, "gone", kmemcg_id=1, flags=on | (1 << DEAD), css_flags=0,
                 linked=False, refcnt=3)
    r = memcg_report(h.finish())
    m = by_path(r)["/gone"]
    assert m.address == gone["memcg"]
    assert not m.online and m.state == "dying"
    assert m.sources == ["css_id_idr"]
    assert m.refcount == 3
    assert m.anomalies == []          # expected on 3.10, not "not-in-tree"
    assert r.summary["dying"] == 1 and r.summary["online"] == 2
    assert "css_id_idr" in r.summary["sources"]


def test_duplicate_and_over_capacity_kmemcg_ids():
    h = Rhel7(array_size=4)
    on = 1 << ACTIVE
    h.add(h.root, "a", kmemcg_id=2, flags=on)
    h.add(h.root, "b", kmemcg_id=2, flags=on)
    h.add(h.root, "c", kmemcg_id=7, flags=on)
    r = memcg_report(h.finish())
    p = by_path(r)
    assert p["/a"].anomalies == ["kmemcg-id-duplicate"]
    assert p["/b"].anomalies == ["kmemcg-id-duplicate"]
    assert p["/c"].anomalies == ["kmemcg-id-over-capacity"]
    assert r.summary["kmem_ids_in_use"] == 2


def test_next_resize_reproduces_the_seed_order6_allocation():
    # 3.10 memcg_caches_array_size: size = 2 * num_groups, num_groups = id + 1
    # where the next id needing growth equals the current array size; the
    # allocation is size * 8 + sizeof(struct memcg_cache_params) (80 here).
    # An array of 8190 ids means the next growth asks for 2 * 8191 = 16382
    # entries: 131136 bytes, just over 128 KiB, so kmalloc_large order 6 —
    # the "order:6" of the RHEL7 idr-bug log's page allocation failure.
    h = Rhel7(array_size=8190)
    t = h.finish()
    r = next_array_resize(t, 8190)
    assert r["size"] == 16382
    assert r["bytes"] == 16382 * 8 + 80
    assert r["order"] == 6
    assert r["vmalloc_fallback"] is False
    # SLUB kmalloc caches serve up to 2 pages; beyond that pages of get_order()
    assert kmalloc_order(t, 8192) is None
    assert kmalloc_order(t, 8193) == 2
    assert kmalloc_order(t, 128 * 1024) == 5


def test_command_output_and_json(capsys):
    from crashext.commands import Context
    from crashext.commands import memcgids
    h = Rhel7()
    on = (1 << ACTIVE) | (1 << ACTIVATED)
    d = h.add(h.root, "docker", kmemcg_id=0, flags=on)
    h.add(d, "bad", kmemcg_id=-1, flags=on)
    t = h.finish()

    class A:
        json = False
        dying = False
        flagged = True
        tree = False
    out = io.StringIO()
    ctx = Context(out=out, err=io.StringIO(), target_factory=lambda: t)
    assert memcgids.run(A, ctx) == 0
    text = out.getvalue()
    first = text.splitlines()[0]
    assert "3 memcgs" in first and "1 flagged" in first
    body = text.split("\n\n", 1)[1].splitlines()
    assert body[0].split()[0] == "MEMCG"
    assert len(body) == 2 and "/docker/bad" in body[1] and "kmemcg-id-unassigned" in body[1]
    A.json = True
    out2 = io.StringIO()
    ctx = Context(out=out2, err=io.StringIO(), target_factory=lambda: t)
    memcgids.run(A, ctx)
    data = json.loads(out2.getvalue())
    assert [m["path"] for m in data["memcgs"]] == ["/docker/bad"]
    assert data["memcgs"][0]["kmemcg_id"] == -1
    assert data["summary"]["kmem_id_capacity"] == 4


def test_rows_kept_in_a_temporary_file_equal_rows_kept_in_memory():
    """memcgids writes each memcg to a temporary file as it is read and
    flags what a later one decides (a duplicate id) only when it reads the
    rows back: the same rows, anomalies, order and summary as the report
    kept in memory, however often the rows are read back."""
    from crashext.analysis.memcg import memcg_scan
    h = Rhel7(array_size=4)
    on = 1 << ACTIVE
    a = h.add(h.root, "a", kmemcg_id=2, flags=on)
    h.add(a, "a1", kmemcg_id=-1, flags=on)                 # the RHEL7 idr-bug state
    h.add(h.root, "b", kmemcg_id=2, flags=on)              # duplicate of /a's id
    h.add(h.root, "c", kmemcg_id=7, flags=on)              # over capacity
    h.add(h.root, "zgone", kmemcg_id=3, flags=on | (1 << DEAD), css_flags=0,
          linked=False, refcnt=3)                          # only in the css id idr
    h.add(h.root, "lost", kmemcg_id=2, flags=on, linked=False)   # online, unlinked
    t = h.finish()
    want = memcg_report(t)
    with memcg_scan(t, spool=True) as scan:
        for _ in range(2):
            got = [m.to_json() for m in scan.rows()]
            assert got == [m.to_json() for m in want.memcgs]
        assert scan.summary == want.summary
    p = by_path(want)
    assert p["/a"].anomalies == p["/b"].anomalies == ["kmemcg-id-duplicate"]
    assert p["/lost"].anomalies == ["not-in-tree", "kmemcg-id-duplicate"]
    assert p["/a/a1"].anomalies == ["kmemcg-id-unassigned"]
    assert p["/c"].anomalies == ["kmemcg-id-over-capacity"]
    assert p["/zgone"].anomalies == [] and p["/zgone"].sources == ["css_id_idr"]
    assert [m.path for m in want.memcgs] == ["/", "/a", "/a/a1", "/b", "/c", "/lost", "/zgone"]
    assert want.summary["anomalies"] == {"kmemcg-id-duplicate": 3, "kmemcg-id-unassigned": 1,
                                         "kmemcg-id-over-capacity": 1, "not-in-tree": 1}
    assert want.summary["flagged"] == 5 and want.summary["only_in_idr"] == 2


def test_without_a_writable_temporary_directory_the_rows_stay_in_memory(tmp_path, monkeypatch):
    import tempfile
    from crashext.analysis.memcg import memcg_scan
    h = Rhel7()
    h.add(h.root, "a", kmemcg_id=0, flags=1 << ACTIVE)
    t = h.finish()
    want = [m.to_json() for m in memcg_report(t).memcgs]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with memcg_scan(t, spool=True) as scan:
        assert type(scan._store).__name__ == "ListStore"
        assert [m.to_json() for m in scan.rows()] == want
