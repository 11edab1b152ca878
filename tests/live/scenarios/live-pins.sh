# live-pins: removed memory cgroups held by tmpfs pages, and more of them
# made and removed all the time, while the host reads the running guest.
#
# First 20 cgroups /pins/sN each write one tmpfs page and are removed with
# the file kept (dying, each held by its page); their cgroup inode numbers
# are printed as a block (LBEGIN/LEND, tests/live/guest.py).  Then
# @@CRASHEXT:LIVE_READY@@, and from then on a loop creates /pins/cN, writes
# a tmpfs page from it, removes the cgroup and, a moment later, the file,
# so memcgs are born, die and are freed while memcgpins walks the memcgs and
# the page array: some it finds in the walk are gone by the time it reads
# their pages, and pages appear charged to memcgs it never walked.
#
# crashext: memory=512M

mkdir -p /data/pins
i=0
printf 'path\tino\n' > /tmp/held.tsv
while [ $i -lt 20 ]; do
	cg_mkdir /pins/s$i
	sh -c 'echo $$ > "$1/cgroup.procs" && echo held > "$2"' s "$CG/pins/s$i" \
		/data/pins/s$i || fail "charge /pins/s$i"
	printf '%s\t%s\n' /pins/s$i "$(stat -c %i "$CG/pins/s$i")" >> /tmp/held.tsv
	rmdir "$CG/pins/s$i" || fail "rmdir /pins/s$i"
	i=$((i + 1))
done
echo
echo "@@CRASHEXT:LBEGIN held.tsv@@"
base64 /tmp/held.tsv
echo "@@CRASHEXT:LEND held.tsv $(sha256sum < /tmp/held.tsv | cut -d' ' -f1)@@"
sync
sleep 2
echo "@@CRASHEXT:LIVE_READY@@"
n=0
while :; do
	mkdir "$CG/pins/c$n" 2>/dev/null
	sh -c 'echo $$ > "$1/cgroup.procs" && echo churn > "$2"' c "$CG/pins/c$n" \
		/data/pins/c$n 2>/dev/null
	rmdir "$CG/pins/c$n" 2>/dev/null
	[ $n -ge 2 ] && rm -f /data/pins/c$((n - 2))
	n=$((n + 1))
done
