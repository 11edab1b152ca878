# memcg-many: a scale benchmark: 15,000+ dying memcgs (cgroup v2).
#
# The static helper guest/cgmany.c creates /many/gN for N in 1..$MANY
# (default 15000; override with --cmdline crashext.many=N), starts a child
# inside each with clone3(CLONE_INTO_CGROUP) that writes one tmpfs page to
# /data/many/fN, and removes the cgroup again; the pages are kept, so every
# memcg stays dying.  Only the count, the first/last cgroup inode numbers
# and the time taken are recorded (truth/many_summary); they are not listed
# in truth/removed_charged.tsv.  build-all builds the 5.10 one for the tests
# (fixturelib.TEST_ONLY); the benchmarks' copy on 6.1 by hand:
#   tests/vmcore/build-fixture --kernel bookworm --scenario memcg-many
#
# crashext: memory=2G
# crashext: helpers=cgmany
# crashext: timeout=3600

MANY=15000
for a in $(cat /proc/cmdline); do
	case "$a" in crashext.many=*) MANY=${a#crashext.many=} ;; esac
done
cg_mkdir /many/g0
rmdir $CG/many/g0
mkdir -p /data/many
cgmany $CG/many $MANY /data/many $T/many_summary ||
	fail "cgmany failed"
sync
sleep 2
