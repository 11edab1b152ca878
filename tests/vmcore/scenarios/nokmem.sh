# nokmem: the memcg-churn tree (see memcg-churn.sh) on a kernel booted with
# cgroup.memory=nokmem, i.e. no kernel-memory accounting (slab objects,
# kernel stacks, ... are not charged; memcg_kmem_enabled() is false).
#
# crashext: memory=512M
# crashext: cmdline=cgroup.memory=nokmem
# crashext: include=memcg-churn

. /scenarios/memcg-churn.sh
