# memcg-many: a scale benchmark: 15,000+ dying memcgs.
#
# Creates /many/gN for N in 1..$MANY (default 15000, override with
# --cmdline crashext.many=N), charges each with one tmpfs page (written by
# PID 1 itself while a member, no fork per cgroup) and removes it again; the
# tmpfs files are kept so every memcg stays dying.  Only the count and the
# first/last ids are recorded (truth/many_summary), not every path:
# truth/removed_charged.tsv stays empty.  Built on demand only (not in CI).
#
# crashext: memory=2G
# crashext: timeout=3600

MANY=15000
for a in $(cat /proc/cmdline); do
	case "$a" in crashext.many=*) MANY=${a#crashext.many=} ;; esac
done
cg_mkdir /many/g0
rmdir $CG/many/g0
mkdir -p /data/many
t0=$(cut -d' ' -f1 /proc/uptime)
first=
i=1
while [ $i -le $MANY ]; do
	d=$CG/many/g$i
	mkdir $d || fail "mkdir g$i"
	echo $$ > $d/cgroup.procs || fail "enter g$i"
	echo x > /data/many/f$i
	echo $$ > $CG/cgroup.procs || fail "leave g$i"
	[ -z "$first" ] && first=$(stat -c %i $d)
	[ $i -eq $MANY ] && last=$(stat -c %i $d)
	rmdir $d || fail "rmdir g$i"
	[ $((i % 1000)) -eq 0 ] && echo "@@CRASHEXT:PROGRESS memcg-many $i@@"
	i=$((i + 1))
done
t1=$(cut -d' ' -f1 /proc/uptime)
{
	echo "count=$MANY"
	echo "first_ino=$first"
	echo "last_ino=$last"
	echo "start_uptime=$t0"
	echo "end_uptime=$t1"
} > $T/many_summary
