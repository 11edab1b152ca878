# fragmented: free memory fragmented so that high-order free blocks are
# scarce in DMA32 and Normal and extfrag_index is not -1 for the high
# orders.  With 3G, QEMU's q35 puts 2G below 4G (DMA32) and 1G above
# (Normal): hw/i386/pc_q35.c, lowmem 0x80000000 when RAM >= 0xb0000000.
#
# Runs the static helper guest/fragment.c (see its header) in /kubepods/frag
# after turning off everything that would undo the fragmentation:
#   vm.compaction_proactiveness=0 (5.9+ proactive kcompactd),
#   vm.watermark_boost_factor=0 (5.0+ boost -> kswapd/kcompactd on
#   fragmenting fallbacks), THP enabled=madvise defrag=never,
#   khugepaged/defrag=0.
# The helper's summary is kept as truth/fragment_summary.
#
# crashext: memory=3G
# crashext: helpers=fragment
# crashext: timeout=900

sysctl_w() { [ -e "/proc/sys/$1" ] && echo "$2" > "/proc/sys/$1"; }
sysctl_w vm/compaction_proactiveness 0
sysctl_w vm/watermark_boost_factor 0
THP=/sys/kernel/mm/transparent_hugepage
[ -e $THP/enabled ] && echo madvise > $THP/enabled
[ -e $THP/defrag ] && echo never > $THP/defrag
[ -e $THP/khugepaged/defrag ] && echo 0 > $THP/khugepaged/defrag

cg_mkdir /kubepods/frag
sh -c 'echo $$ > "$1/cgroup.procs" && exec fragment 64 /tmp/fragment.ready' \
	fragment "$CG/kubepods/frag" &
i=0
while [ ! -s /tmp/fragment.ready ]; do
	sleep 1
	i=$((i + 1))
	[ $i -lt 600 ] || fail "fragment helper did not finish in 600s"
	kill -0 $! 2>/dev/null || [ -s /tmp/fragment.ready ] ||
		fail "fragment helper died"
done
cp /tmp/fragment.ready $T/fragment_summary
