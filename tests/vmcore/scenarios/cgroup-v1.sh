# cgroup-v1: the memory controller mounted as cgroup v1
# (mount -t cgroup -o memory, at /sys/fs/cgroup/memory; no systemd, so no
# systemd.unified_cgroup_hierarchy is needed) with the memcg-churn tree
# (see memcg-churn.sh): charged, dying (removed while charged) and cleanly
# removed memcgs.  truth/cgroup_tree.tsv then has memory.usage_in_bytes as
# memory_current, memory.kmem.usage_in_bytes as kmem_usage and '-' for the
# v2-only columns; truth/cgroup_stat is empty (v1 has no cgroup.stat).
# Not for trixie: 6.12 is built without CONFIG_MEMCG_V1 (added in 6.11).
#
# crashext: memory=512M
# crashext: cgroup=v1
# crashext: include=memcg-churn

. /scenarios/memcg-churn.sh
