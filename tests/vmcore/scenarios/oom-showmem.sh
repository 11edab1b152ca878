# oom-showmem: the kernel's show_mem() output in every form crashext reads
# (as triage and allocfail read it): two SysRq-m dumps, a memory-cgroup OOM kill and a global OOM
# kill, then the whole kernel log as truth/dmesg.
#
#   1. echo m > /proc/sysrq-trigger   (sysrq_handle_showmem -> show_mem();
#      writes to sysrq-trigger are not filtered by kernel.sysrq)
#   2. /oom (cgroup v2, memory.max 32M): busybox dd with a 64M buffer ->
#      memcg OOM (dump_header: mem_cgroup_print_oom_meminfo, the task
#      table, "oom-kill:constraint=CONSTRAINT_MEMCG", "Memory cgroup out of
#      memory: Killed process")
#   3. at the root: dd with a 460M buffer in a 512M guest without swap ->
#      global OOM (dump_header: __show_mem with zone and buddy lines)
#   4. echo m again, after the kills
# The numbers the kernel printed are asserted by the tests against what
# crashext reads from truth/dmesg, from the dump's log and from a
# sosreport-shaped tree built of this truth.
#
# crashext: memory=512M

echo m > /proc/sysrq-trigger

cg_mkdir /oom
echo 32M > "$CG/oom/memory.max" || fail "cannot set memory.max"
sh -c 'echo $$ > "$1/cgroup.procs" && exec dd if=/dev/zero of=/dev/null bs=64M count=1' \
	oomtest "$CG/oom" 2>/dev/null
grep -q "oom_kill [1-9]" "$CG/oom/memory.events" || fail "no memcg OOM kill in /oom"

sh -c 'exec dd if=/dev/zero of=/dev/null bs=460M count=1' 2>/dev/null
grep -q "^oom_kill [1-9]" /proc/vmstat || fail "no OOM kill counted in /proc/vmstat"
n=$(dmesg | grep -c "invoked oom-killer")
[ "$n" -ge 2 ] || fail "expected two OOM reports in the kernel log, found $n"

echo m > /proc/sysrq-trigger
dmesg > $T/dmesg
