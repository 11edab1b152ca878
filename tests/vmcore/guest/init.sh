#!/bin/busybox sh
# /init of the crashext fixture guest (busybox sh, PID 1).
#
# Mounts proc/sys/devtmpfs/debugfs/cgroup, loads pvpanic + qemu_fw_cfg,
# sources /scenario.sh, prints the ground truth on the console between
# @@CRASHEXT:...@@ markers (protocol: tests/vmcore/truth.py), reads
# /proc/buddyinfo last and panics with sysrq-c.
#
# Helpers for scenarios (paths are relative to the memory cgroup root, e.g.
# /kubepods/pod1/ctr1):
#   cg_mkdir PATH              create (v2: enable +memory on the parents)
#   cg_charge PATH KB NFILES   as a member of PATH: write a KB-sized tmpfs
#                              file (page cache/shmem) and NFILES small files
#                              in a new directory (inodes, dentries = kmem)
#   cg_uncharge PATH           delete the files cg_charge made for PATH
#   cg_rm_charged PATH         rmdir, files kept -> memcg stays dying;
#                              recorded in truth/removed_charged.tsv
#   cg_rm_clean PATH           cg_uncharge + rmdir; truth/removed_clean.tsv
#   cg_enter PATH / cg_leave   move this shell (PID 1) in / back to the root
#                              (what PID 1 allocates meanwhile stays charged)
# Variables: $CG (memory cgroup mount), $CGROUP_MODE (v1|v2), $T (truth dir)

/bin/busybox mkdir -p /proc /sys /dev /tmp /data /truth /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs -o size=95% data /data
. /etc/crashext.conf
T=/truth
cd /

fail() {
	echo
	echo "@@CRASHEXT:FAIL $*@@"
	poweroff -f
	sleep 100000
}

for m in $MODULES; do
	insmod /lib/modules/$m.ko || fail "insmod $m failed"
done

# what the host relies on: pvpanic bound, VMCOREINFO written to fw_cfg
has_pvpanic=0
for d in /sys/bus/platform/drivers/pvpanic*/ /sys/bus/acpi/drivers/pvpanic*/; do
	[ -d "$d" ] || continue
	for l in "$d"*; do
		[ -L "$l" ] && [ "${l##*/}" != module ] && has_pvpanic=1
	done
done
has_vmcoreinfo=0
[ -e /sys/firmware/qemu_fw_cfg/by_name/etc/vmcoreinfo ] && has_vmcoreinfo=1
[ $has_pvpanic = 1 ] || fail "pvpanic driver not bound (modules: $MODULES)"
[ $has_vmcoreinfo = 1 ] || fail "fw_cfg etc/vmcoreinfo missing (qemu_fw_cfg?)"
{ echo "pvpanic=$has_pvpanic"; echo "vmcoreinfo=$has_vmcoreinfo"; } > $T/guest_checks

mkdir -p /sys/fs/cgroup
if [ "$CGROUP_MODE" = v1 ]; then
	mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
	mkdir /sys/fs/cgroup/memory
	mount -t cgroup -o memory memory /sys/fs/cgroup/memory ||
		fail "cannot mount the v1 memory controller"
	CG=/sys/fs/cgroup/memory
else
	mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "cannot mount cgroup2"
	CG=/sys/fs/cgroup
	echo +memory > $CG/cgroup.subtree_control ||
		fail "cannot enable the memory controller"
fi
printf 'path\tino\n' > $T/removed_charged.tsv
printf 'path\tino\n' > $T/removed_clean.tsv

cg_mkdir() {
	local p= c
	mkdir -p "$CG$1" || fail "mkdir $1"
	[ "$CGROUP_MODE" = v2 ] || return 0
	for c in $(echo "${1#/}" | tr / ' '); do
		p="$p/$c"
		[ "$p" = "$1" ] && break
		grep -qw memory "$CG$p/cgroup.subtree_control" ||
			echo +memory > "$CG$p/cgroup.subtree_control" ||
			fail "cannot enable memory in $p"
	done
}
cg_enter() { echo $$ > "$CG$1/cgroup.procs" || fail "cannot enter $1"; }
cg_leave() { echo $$ > "$CG/cgroup.procs" || fail "cannot leave cgroup"; }
cg_fname() { echo "/data/cg$(echo "$1" | tr / _)"; }
cg_charge() {
	# a child shell does the work so that nothing of PID 1 (heap, stack)
	# gets charged to the cgroup; exits before the caller goes on
	sh -c '
		echo $$ > "$1/cgroup.procs" || exit 1
		dd if=/dev/zero of="$2.cache" bs=4k count=$(($3 / 4)) 2>/dev/null ||
			exit 2
		mkdir -p "$2.d" || exit 3
		n=0
		while [ $n -lt $4 ]; do
			: > "$2.d/file$n"
			n=$((n + 1))
		done' cg_charge "$CG$1" "$(cg_fname "$1")" "$2" "$3" ||
		fail "cg_charge $1 failed"
}
cg_uncharge() {
	local f
	f=$(cg_fname "$1")
	rm -rf "$f.cache" "$f.d"
}
cg_rm_charged() {
	printf '%s\t%s\n' "$1" "$(stat -c %i "$CG$1")" >> $T/removed_charged.tsv
	rmdir "$CG$1" || fail "rmdir $1"
}
cg_rm_clean() {
	cg_uncharge "$1"
	printf '%s\t%s\n' "$1" "$(stat -c %i "$CG$1")" >> $T/removed_clean.tsv
	rmdir "$CG$1" || fail "rmdir $1"
}

echo
echo "@@CRASHEXT:SCENARIO_BEGIN $SCENARIO@@"
SCEN_T0=$(cut -d' ' -f1 /proc/uptime)
. /scenario.sh
echo "@@CRASHEXT:SCENARIO_END $SCENARIO $SCEN_T0 $(cut -d' ' -f1 /proc/uptime)@@"

# ------------------------------------------------------------ ground truth
echo "$SCENARIO" > $T/scenario
uname -r > $T/uname_r
uname -a > $T/uname_a
cat /proc/cmdline > $T/cmdline
cat /proc/cgroups > $T/proc_cgroups
echo "$CGROUP_MODE" > $T/cgroup_mode
echo "$EXPECTED_PANIC" > $T/panic_string

rd() { if [ -e "$1" ]; then cat "$1"; else echo -; fi; }
kv() { # kv FILE KEY -> value or -
	local v
	v=$(grep "^$2 " "$1" 2>/dev/null | cut -d' ' -f2)
	echo "${v:--}"
}
printf 'path\tino\tpopulated\tmemory_current\tkmem_usage\tnr_descendants\tnr_dying_descendants\n' > $T/cgroup_tree.tsv
: > $T/cgroup_stat
: > $T/memory_stat
find "$CG" -type d | sort > /tmp/cgdirs
while read -r d; do
	rel=${d#$CG}
	[ -z "$rel" ] && rel=/
	if [ "$CGROUP_MODE" = v1 ]; then
		cur=$(rd "$d/memory.usage_in_bytes")
		kmem=$(rd "$d/memory.kmem.usage_in_bytes")
		pop=-
	else
		cur=$(rd "$d/memory.current")
		kmem=-
		pop=$(kv "$d/cgroup.events" populated)
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rel" "$(stat -c %i "$d")" \
		"$pop" "$cur" "$kmem" \
		"$(kv "$d/cgroup.stat" nr_descendants)" \
		"$(kv "$d/cgroup.stat" nr_dying_descendants)" >> $T/cgroup_tree.tsv
	if [ -e "$d/cgroup.stat" ]; then
		echo "# $rel" >> $T/cgroup_stat
		cat "$d/cgroup.stat" >> $T/cgroup_stat
	fi
	if [ -e "$d/memory.stat" ]; then
		echo "# $rel" >> $T/memory_stat
		cat "$d/memory.stat" >> $T/memory_stat
	fi
done < /tmp/cgdirs

cat /proc/meminfo > $T/meminfo
cat /proc/vmstat > $T/vmstat
cat /proc/zoneinfo > $T/zoneinfo
cat /proc/pagetypeinfo > $T/pagetypeinfo
# extfrag_index and unusable_index are read at the end, next to buddyinfo:
# they are computed from the same free lists, which change with every fork.

emit() {
	echo
	echo "@@CRASHEXT:BEGIN $1@@"
	base64 "$T/$1"
	echo "@@CRASHEXT:END $1 $(sha256sum < "$T/$1" | cut -d' ' -f1) $(wc -c < "$T/$1")@@"
}
echo
echo "@@CRASHEXT:START $SCENARIO@@"
for f in $(ls $T); do
	emit "$f"
done

# Let the console drain first: tty output is asynchronous, and what is
# still queued in the tty/UART when the kernel panics gets interleaved with
# (or lost behind) the panic messages.  stty -F sets the termios with
# TCSADRAIN, i.e. waits until the UART has sent everything.
stty -F /dev/console -echo 2>/dev/null
mkfifo /tmp/wait.fifo
read -t 1 _x <> /tmp/wait.fifo
exec 3> /dev/kmsg

# The debugfs fragmentation indices and /proc/buddyinfo last, with shell
# builtins only (no fork between reading them and the panic, so the free
# lists in the dump are the ones they describe).  They go out through
# /dev/kmsg at level 0: printk records are flushed to the console
# synchronously at panic (console_flush_on_panic) and also end up in the
# dump's kernel log.  printk.devkmsg=on (cmdline) lifts the /dev/kmsg rate
# limit.
slurp() {	# slurp FILE: its lines into $BODY, their count into $N
	BODY=
	N=0
	while IFS= read -r l; do
		BODY="$BODY$l
"
		N=$((N + 1))
	done < "$1"
}
send() {	# send NAME: $BODY as a plain truth block
	echo "<0>@@CRASHEXT:PLAIN $1@@" >&3
	for l in $BODY; do
		echo "<0>$l" >&3
	done
	echo "<0>@@CRASHEXT:PLAINEND $1 $N@@" >&3
}
slurp /sys/kernel/debug/extfrag/extfrag_index; EF=$BODY; EFN=$N
slurp /sys/kernel/debug/extfrag/unusable_index; UI=$BODY; UIN=$N
slurp /proc/buddyinfo
set -f
IFS='
'
send buddyinfo
BODY=$EF; N=$EFN; send extfrag_index
BODY=$UI; N=$UIN; send unusable_index
echo "<0>@@CRASHEXT:PANIC@@" >&3
echo c > /proc/sysrq-trigger
fail "still alive after sysrq-c"
