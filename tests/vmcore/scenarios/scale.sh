# scale: the benchmarks' dump (docs/performance.md), not used by the regular tests.
# An 8 GiB guest with 20,000 memcgs besides the root's own (15,000 dying,
# 5,000 live) and about 900k isolated free blocks.
#
#   /many/gN, N in 1..15000: created, charged one tmpfs page and removed by
#       guest/cgmany.c (see scenarios/memcg-many.sh): dying;
#   /kubepods/podP (P in 1..1000) with ctr1..ctr4 each: 5,000 live memcgs
#       three levels deep (+ /kubepods itself), nothing charged to them;
#   guest/scale/pagefrag.c maps nearly all free memory, finds each page's
#       frame number in /proc/self/pagemap and frees the odd ones: their
#       buddies stay mapped, so each is an isolated order-0 free block.
#
# The same knobs as scenarios/fragmented.sh keep kcompactd and THP from
# undoing the layout.  Truth: many_summary (cgmany), pagefrag_summary, and
# init.sh's cgroup_stat (root nr_descendants / nr_dying_descendants) and
# buddyinfo.  Build on demand (QEMU TCG, takes a while):
#   tests/vmcore/build-fixture --kernel bookworm --scenario scale
#
# crashext: memory=8G
# crashext: helpers=cgmany,scale/pagefrag
# crashext: timeout=5400

sysctl_w() { [ -e "/proc/sys/$1" ] && echo "$2" > "/proc/sys/$1"; }
sysctl_w vm/compaction_proactiveness 0
sysctl_w vm/watermark_boost_factor 0
THP=/sys/kernel/mm/transparent_hugepage
[ -e $THP/enabled ] && echo madvise > $THP/enabled
[ -e $THP/defrag ] && echo never > $THP/defrag
[ -e $THP/khugepaged/defrag ] && echo 0 > $THP/khugepaged/defrag

# 15,000 dying
cg_mkdir /many/g0
rmdir $CG/many/g0
mkdir -p /data/many
cgmany $CG/many 15000 /data/many $T/many_summary || fail "cgmany failed"

# 5,000 live: 1,000 pods of 4 containers (mkdir and the subtree_control
# writes without a fork per cgroup)
cg_mkdir /kubepods/pod0
rmdir $CG/kubepods/pod0
cd $CG/kubepods || fail "no /kubepods"
seq 1 1000 | sed "s/^/pod/" | xargs mkdir || fail "mkdir pods"
p=1
while [ $p -le 1000 ]; do
	echo +memory > pod$p/cgroup.subtree_control ||
		fail "cannot enable memory in pod$p"
	p=$((p + 1))
done
for c in 1 2 3 4; do
	seq 1 1000 | sed "s|.*|pod&/ctr$c|" | xargs mkdir || fail "mkdir ctr$c"
done
cd /
echo "@@CRASHEXT:PROGRESS scale live cgroups done@@"
sync

mkdir /tmp/pf
sh -c 'echo $$ > "$1/cgroup.procs" && exec pagefrag 64 /tmp/pf/ready' \
	pagefrag "$CG/kubepods/pod1/ctr1" &
i=0
while [ ! -s /tmp/pf/ready ]; do
	sleep 1
	i=$((i + 1))
	[ $i -lt 1800 ] || fail "pagefrag did not finish in 1800s"
	kill -0 $! 2>/dev/null || [ -s /tmp/pf/ready ] || fail "pagefrag died"
done
cp /tmp/pf/ready $T/pagefrag_summary
