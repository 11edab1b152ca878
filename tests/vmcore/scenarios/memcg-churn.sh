# memcg-churn: Kubernetes-like nested memory cgroups with charged, dying and
# cleanly removed members.
#
# Tree (relative to the memory cgroup root, cgroup v2):
#   /kubepods/pod{1..4}/ctr{1..3}   each charged with page cache (a tmpfs file
#                                   of 256*pod KiB in /data) and kmem
#                                   (a directory with 150*ctr empty files:
#                                   shmem inodes + dentries)
#   /system.slice/{a,b}.service     charged, stay online
# Then:
#   removed while charged (files kept, so the memcgs stay dying/offline):
#     /kubepods/pod2/ctr1, /kubepods/pod3/ctr2, and all of pod4 (its three
#     containers, then /kubepods/pod4 itself)
#   removed clean (files deleted first): /kubepods/pod1/ctr3,
#     /system.slice/b.service
#   created after the removals: /kubepods/pod5/ctr{1,2}, /kubepods/pod2/ctr4
# The ground truth lists the removed paths with their cgroup ids (inode
# numbers) in truth/removed_charged.tsv and truth/removed_clean.tsv.
#
# crashext: memory=512M
# (no extra cmdline; include this file from variants via "churn_tree")

churn_tree() {
	for p in 1 2 3 4; do
		cg_mkdir /kubepods/pod$p
		for c in 1 2 3; do
			cg_mkdir /kubepods/pod$p/ctr$c
			cg_charge /kubepods/pod$p/ctr$c $((256 * p)) $((150 * c))
		done
	done
	for s in a b; do
		cg_mkdir /system.slice/$s.service
		cg_charge /system.slice/$s.service 512 300
	done

	cg_rm_charged /kubepods/pod2/ctr1
	cg_rm_charged /kubepods/pod3/ctr2
	for c in 1 2 3; do
		cg_rm_charged /kubepods/pod4/ctr$c
	done
	cg_rm_charged /kubepods/pod4

	cg_rm_clean /kubepods/pod1/ctr3
	cg_rm_clean /system.slice/b.service

	for c in 1 2; do
		cg_mkdir /kubepods/pod5/ctr$c
		cg_charge /kubepods/pod5/ctr$c 384 200
	done
	cg_mkdir /kubepods/pod2/ctr4
	cg_charge /kubepods/pod2/ctr4 128 100

	# let RCU/percpu-ref work finish so cleanly removed memcgs are freed
	# and the dying count is stable when the truth is read
	sync
	sleep 2
}

churn_tree
