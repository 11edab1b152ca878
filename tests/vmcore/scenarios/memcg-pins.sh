# memcg-pins: removed memory cgroups kept alive ("dying") in known ways, for
# memcgpins.  Each cgroup under /pins charges one kind of memory, the kernel's
# own view of it is recorded, then it is removed:
#
#   /pins/tmpfs       1 MiB tmpfs file /data/pins/tmpfs.bin        (shmem)
#   /pins/ext4        2 MiB file /mnt/disk/ext4.bin on ext4 (NVMe) (file)
#   /pins/logw        wrote the first 384 KiB of /mnt/disk/shared.log; a
#                     process in /pins/keeper keeps the file open and
#                     appends 64 KiB more (file, another cgroup writing)
#   /pins/swap        24 MiB of anonymous memory under memory.max = 8 MiB, so
#                     most of it is swapped out to /dev/nvme1n1; the process
#                     moves to /pins/keeper and sleeps        (anon + swap)
#   /pins/pipe        64 KiB in a pipe a process keeps open, then moves to
#                     /pins/keeper: kernel pages charged with __GFP_ACCOUNT
#                     (kmem; held directly up to 5.12, through an obj_cgroup
#                     that is reparented on removal since 5.13)
#   /pins/slab        2,000 empty tmpfs files: inodes and dentries, slab
#                     objects charged through obj_cgroup (reparented on
#                     removal since 5.9, so nothing of it should pin)
#   /pins/nest/a      128 KiB tmpfs file; then /pins/nest itself is removed,
#                     held only by its dying child
#   /pins/clean       charged and cleaned before removal (freed)
#
# Truth, written just before each rmdir while the cgroup is still online:
#   pins.tsv          path, cgroup inode, memory.current, memory.swap.current
#                     and the pages /proc/kpagecgroup + /proc/kpageflags give
#                     that inode by kind (guest/memcg-pins/kpagescan.c)
#   pins_memory_stat  memory.stat of each, "# path" sections
#   pins_files.tsv    the files each wrote: path, inode, st_dev, pages
#   pins_online.tsv   the same page counts for /pins/keeper, which stays
#                     online, read last (after every rmdir)
#   pins_mountinfo, pins_swaps   /proc/self/mountinfo and /proc/swaps
# Transparent huge pages are off, so every count is in 4 KiB pages.
#
# crashext: memory=512M
# crashext: disks=64M,48M
# crashext: helpers=memcg-pins/kpagescan,memcg-pins/pinhold

THP=/sys/kernel/mm/transparent_hugepage
[ -e $THP/enabled ] && echo never > $THP/enabled
[ -e $THP/shmem_enabled ] && echo never > $THP/shmem_enabled

# the NVMe controllers probe asynchronously
i=0
while [ ! -b /dev/nvme0n1 ] || [ ! -b /dev/nvme1n1 ]; do
	sleep 1
	i=$((i + 1))
	[ $i -lt 60 ] || fail "no /dev/nvme0n1 and /dev/nvme1n1 after 60 s"
done
mke2fs -F -b 4096 /dev/nvme0n1 > /dev/null 2>&1 || fail "mke2fs /dev/nvme0n1"
mkdir -p /mnt/disk
mount -t ext4 /dev/nvme0n1 /mnt/disk || fail "mount ext4 /dev/nvme0n1"
mkswap /dev/nvme1n1 > /dev/null 2>&1 || fail "mkswap /dev/nvme1n1"
swapon /dev/nvme1n1 || fail "swapon /dev/nvme1n1"
mkdir -p /data/pins /tmp/pins

PINS_HEAD='path\tino\tmemory_current\tswap_current\tfile\tshmem\tanon\tslab\tother\ttotal\n'
printf "$PINS_HEAD" > $T/pins.tsv
printf "$PINS_HEAD" > $T/pins_online.tsv
printf 'cgroup\tpath\tino\tst_dev\tpages\n' > $T/pins_files.tsv
: > $T/pins_memory_stat

# pin_file CGROUP FILE PAGES: FILE's pages written by CGROUP
pin_file() {
	printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(stat -c %i "$2")" \
		"$(stat -c %d "$2")" "$3" >> $T/pins_files.tsv
}
# pin_view PATH TSV: the kernel's view of PATH, a row of TSV
pin_view() {
	local d="$CG$1" ino scan
	ino=$(stat -c %i "$d")
	scan=$(kpagescan "$ino") || fail "kpagescan $1"
	printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$ino" "$(cat "$d/memory.current")" \
		"$(cat "$d/memory.swap.current" 2>/dev/null || echo -)" \
		"$(echo "$scan" | cut -f2-)" >> "$2"
	echo "# $1" >> $T/pins_memory_stat
	cat "$d/memory.stat" >> $T/pins_memory_stat
}
# pin_rm PATH: record the kernel's view of PATH, then remove it
pin_rm() {
	pin_view "$1" $T/pins.tsv
	rmdir "$CG$1" || fail "rmdir $1"
}
# in CGROUP CMD...: run CMD (a shell command line) as a member of CGROUP
in_cg() {
	local c="$CG$1"
	shift
	sh -c 'echo $$ > "$1/cgroup.procs" || exit 1; shift; eval "$@"' \
		in_cg "$c" "$@" || fail "in $c: $*"
}
# hold CGROUP KIND N: start pinhold in CGROUP, wait for it, move it to keeper
hold() {
	local c="$CG$1" ready="/tmp/pins/$2.ready" pid
	sh -c 'echo $$ > "$1/cgroup.procs" && exec pinhold "$2" "$3" "$4"' \
		hold "$c" "$2" "$3" "$ready" &
	pid=$!
	i=0
	while [ ! -s "$ready" ]; do
		sleep 1
		i=$((i + 1))
		[ $i -lt 120 ] || fail "pinhold $2 $3 not ready in 120 s"
		kill -0 $pid 2>/dev/null || [ -s "$ready" ] || fail "pinhold $2 died"
	done
	echo $pid > "$CG/pins/keeper/cgroup.procs" || fail "move pinhold $2"
}

for c in keeper tmpfs ext4 logw swap pipe slab nest/a clean; do
	cg_mkdir /pins/$c
done

# shmem
in_cg /pins/tmpfs 'dd if=/dev/zero of=/data/pins/tmpfs.bin bs=4k count=256 2>/dev/null'
pin_file /pins/tmpfs /data/pins/tmpfs.bin 256
# regular files on a block device
in_cg /pins/ext4 'dd if=/dev/zero of=/mnt/disk/ext4.bin bs=4k count=512 2>/dev/null'
pin_file /pins/ext4 /mnt/disk/ext4.bin 512
in_cg /pins/logw 'dd if=/dev/zero of=/mnt/disk/shared.log bs=4k count=96 2>/dev/null'
pin_file /pins/logw /mnt/disk/shared.log 96
sh -c 'echo $$ > "$1/cgroup.procs" || exit 1
	exec 3>> /mnt/disk/shared.log
	dd if=/dev/zero bs=4k count=16 >&3 2>/dev/null
	exec sleep 1000000' keeper "$CG/pins/keeper" &
# anonymous memory, most of it swapped out
echo $((8 << 20)) > "$CG/pins/swap/memory.max" || fail "memory.max of /pins/swap"
hold /pins/swap anon 24
echo max > "$CG/pins/swap/memory.max"
# pipe buffers (kmem)
hold /pins/pipe pipe 64
# slab objects only
in_cg /pins/slab 'mkdir /data/pins/slab.d; i=0
	while [ $i -lt 2000 ]; do : > /data/pins/slab.d/f$i; i=$((i + 1)); done'
# a parent held by its dying child
in_cg /pins/nest/a 'dd if=/dev/zero of=/data/pins/nest.bin bs=4k count=32 2>/dev/null'
pin_file /pins/nest/a /data/pins/nest.bin 32
# charged, then cleaned
in_cg /pins/clean 'dd if=/dev/zero of=/data/pins/clean.bin bs=4k count=64 2>/dev/null'

sync
sleep 1
cat /proc/self/mountinfo > $T/pins_mountinfo
cat /proc/swaps > $T/pins_swaps
for c in tmpfs ext4 logw swap pipe slab nest/a nest; do
	pin_rm /pins/$c
done
rm -f /data/pins/clean.bin
printf '%s\t%s\n' /pins/clean "$(stat -c %i "$CG/pins/clean")" >> $T/removed_clean.tsv
rmdir "$CG/pins/clean" || fail "rmdir /pins/clean"
# dying memcgs are released by RCU and work items: let them settle
sync
sleep 2
pin_view /pins/keeper $T/pins_online.tsv
pin_file /pins/keeper /mnt/disk/shared.log \
	$(($(stat -c %s /mnt/disk/shared.log) / 4096 - 96))
