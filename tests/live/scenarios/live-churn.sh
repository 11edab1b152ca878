# live-churn: the memcg-churn tree, then the guest stays up, quiet, for the
# host to attach (QMP) -- no panic.
#
# After churn_tree (tests/vmcore/scenarios/memcg-churn.sh) it prints, as
# base64 blocks between @@CRASHEXT:LBEGIN/LEND@@ markers (sha256 checked by
# tests/live/guest.py): the cgroup tree with inode numbers, every
# cgroup.stat, /proc/cgroups, the cgroups removed while charged, and last
# /proc/buddyinfo read with shell builtins only; then @@CRASHEXT:LIVE_READY@@
# and it blocks in a builtin read forever (no fork, no allocation of its
# own), so the free lists stay what it printed.
#
# crashext: memory=512M
# crashext: include=memcg-churn

. /scenarios/memcg-churn.sh

lemit() {
	echo
	echo "@@CRASHEXT:LBEGIN $1@@"
	base64 "$2"
	echo "@@CRASHEXT:LEND $1 $(sha256sum < "$2" | cut -d' ' -f1)@@"
}
find "$CG" -type d | sort > /tmp/cgdirs
: > /tmp/tree.tsv
: > /tmp/cgstat
while read -r d; do
	rel=${d#$CG}
	[ -z "$rel" ] && rel=/
	printf '%s\t%s\n' "$rel" "$(stat -c %i "$d")" >> /tmp/tree.tsv
	if [ -e "$d/cgroup.stat" ]; then
		echo "# $rel" >> /tmp/cgstat
		cat "$d/cgroup.stat" >> /tmp/cgstat
	fi
done < /tmp/cgdirs
cat /proc/cgroups > /tmp/proc_cgroups
lemit tree.tsv /tmp/tree.tsv
lemit cgroup_stat /tmp/cgstat
lemit proc_cgroups /tmp/proc_cgroups
lemit removed_charged.tsv $T/removed_charged.tsv
stty -F /dev/console -echo 2>/dev/null
mkfifo /tmp/live.fifo
sync
sleep 2
exec 4<> /tmp/live.fifo
# builtins only from here
BI=
while IFS= read -r l; do
	BI="$BI$l
"
done < /proc/buddyinfo
echo "@@CRASHEXT:LPLAIN buddyinfo@@"
printf '%s' "$BI"
echo "@@CRASHEXT:LPLAINEND buddyinfo@@"
echo "@@CRASHEXT:LIVE_READY@@"
while :; do
	read -r _x <&4
done
