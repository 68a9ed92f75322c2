# Snapshots: a guest fills most of its memory with a pattern and keeps a CRC of every page; the
# host poisons one page, pauses, snapshots and kills kiln; a new kiln restores the snapshot and
# the guest checks every page and takes a machine check on the poisoned one; once more from a
# snapshot of the restored VM. Corrupted snapshots are refused before any vCPU runs.
# Uses api.sh's api_call and wait_for.

# snap_call SOCK METHOD PATH BODY: api_call with time for a snapshot of a guest under TCG.
snap_call() {
	local code
	code=$(curl -s -m ${KILN_SNAP_TIMEOUT:-300} -o "$E2E_OUT/snap.body" -w '%{http_code}' --unix-socket "$1" \
		-X "$2" "http://localhost$3" -H 'Content-Type: application/json' -d "$4" \
		2>/dev/null) || code=000
	printf '%s %s\n' "$code" "$(cat "$E2E_OUT/snap.body" 2>/dev/null)"
}

# snap_kiln NAME SOCK FIFO: starts kiln in the background with its console input from FIFO
# (kept open on fd 7 by the caller's `exec 7<>FIFO`); sets pid and log.
snap_kiln() {
	log=$E2E_OUT/$1.log
	rm -f "$2"
	timeout --kill-after=5 600 "$KILN" --api-sock "$2" --id "$1" <"$3" >"$log" 2>&1 &
	pid=$!
	wait_for 10 test -S "$2"
}

# agent_lines LOG PATTERN: the guest's console lines in LOG matching PATTERN. kiln's own log
# lines share the file and can land inside a console line (the UART's bytes are passed on as
# they come): they are taken out first.
agent_lines() { sed -z 's/kiln: [^\n]*\n//g' "$1" | tr -d '\r' | grep "$2"; }

# agent_has LOG PATTERN: whether a console line of the guest's in LOG matches.
agent_has() { agent_lines "$1" "$2" >/dev/null; }

# count_in LOG PATTERN: how many of the guest's console lines in LOG match.
count_in() { agent_lines "$1" "$2" | grep -c . || true; }
at_least() { [ "$(count_in "$1" "$2")" -ge "$3" ]; }

# snap_verify NAME LOG N: asks the guest to verify (the Nth time in LOG) and checks its answer.
snap_verify() {
	echo verify >&7
	# The whole line: the count would see one still being written.
	if ! wait_for 300 at_least "$2" 'KILN-SNAP-VERIFIED .* first_bad=[0-9]' "$3"; then
		snap_threads >>"$2"
		fail "$1" "the guest did not answer verify #$3" "$2"
		return 1
	fi
	if agent_lines "$2" 'KILN-SNAP-VERIFIED' | tail -1 | grep -vq 'bad=0 '; then
		fail "$1" "pages changed: $(agent_lines "$2" 'KILN-SNAP-VERIFIED' | tail -1)" "$2"
		return 1
	fi
}

# snap_poison_read NAME LOG N: asks the guest to read the poisoned page (Nth time in LOG).
snap_poison_read() {
	echo poison >&7
	if ! wait_for 120 at_least "$2" 'KILN-SNAP-POISON .*(child status -\?[0-9]*)$' "$3"; then
		snap_threads >>"$2"
		fail "$1" "the guest did not answer poison #$3" "$2"
		return 1
	fi
	if ! agent_lines "$2" 'KILN-SNAP-POISON' | tail -1 | grep -q machine-check; then
		fail "$1" "the poisoned page: $(agent_lines "$2" 'KILN-SNAP-POISON' | tail -1)" "$2"
		return 1
	fi
}

# snap_threads: where each of kiln's threads waits (for a failure report).
snap_threads() {
	local t
	for t in /proc/"$pid"/task/* /proc/"$(pgrep -P "$pid" | head -1)"/task/*; do
		[ -d "$t" ] || continue
		echo "thread $(cat "$t/comm" 2>/dev/null) wchan=$(cat "$t/wchan" 2>/dev/null)"
		sed 's/^/    /' "$t/stack" 2>/dev/null | head -12
	done
}

# snap_stop [PID]: kills kiln (as a crash would) and waits for it; PID (default $pid) is the
# timeout(1) that runs it.
snap_stop() {
	# Killing timeout alone would orphan kiln, its child.
	local p=${1:-$pid} kiln
	kiln=$(pgrep -P "$p" | head -1)
	[ -n "$kiln" ] && kill -9 "$kiln" 2>/dev/null
	kill -9 "$p" 2>/dev/null
	wait "$p" 2>/dev/null
}

# snap_take NAME SOCK STATE MEM [TYPE]: pauses and snapshots (TYPE Full or Diff, default Full).
snap_take() {
	local r
	r=$(api_call "$2" PATCH /vm '{"state": "Paused"}')
	[ "${r%% *}" = 204 ] || { fail "$1" "PATCH /vm Paused answered $r" "$log"; return 1; }
	r=$(snap_call "$2" PUT /snapshot/create "{\"snapshot_type\": \"${5:-Full}\", \"snapshot_path\": \"$3\", \"mem_file_path\": \"$4\"}")
	[ "${r%% *}" = 204 ] || { fail "$1" "PUT /snapshot/create answered $r" "$log"; return 1; }
}

# snap_restore NAME SOCK STATE MEM FIFO [BACKEND]: a new kiln restores STATE and MEM (a memory
# file, or with BACKEND Uffd a page-fault handler's socket) and resumes.
snap_restore() {
	local r
	snap_kiln "$1" "$2" "$5" || { fail "$1" "the API socket did not appear" "$log"; return 1; }
	r=$(snap_call "$2" PUT /snapshot/load "{\"snapshot_path\": \"$3\", \"mem_backend\": {\"backend_type\": \"${6:-File}\", \"backend_path\": \"$4\"}, \"resume_vm\": true}")
	if [ "${r%% *}" != 204 ]; then
		snap_threads >>"$log"
		fail "$1" "PUT /snapshot/load answered $r" "$log"
		snap_stop
		return 1
	fi
}

# snap_refused NAME SOCK STATE MEM PATTERN: a fresh kiln refuses to load, saying PATTERN, and
# keeps running without a VM; the refusal's text is left in refusal.
snap_refused() {
	local r s
	snap_kiln "$1" "$2" /dev/null || { fail "$1" "the API socket did not appear" "$log"; return 1; }
	r=$(snap_call "$2" PUT /snapshot/load "{\"snapshot_path\": \"$3\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$4\"}, \"resume_vm\": true}")
	s=$(api_call "$2" GET /)
	snap_stop
	if [ "${r%% *}" != 400 ] || ! grep -q "$5" <<<"$r"; then
		fail "$1" "load answered $r (wanted 400 saying \"$5\")" "$log"
		return 1
	fi
	if [[ "$s" != 200*'"state":"Not started"'* ]]; then
		fail "$1" "after the refusal GET / answered $s" "$log"
		return 1
	fi
	refusal=${r#400 }
}

# snap_killed NAME DIR: kiln (paused, API on $sock) is killed with -9 while it writes a new
# snapshot over DIR/b.state and DIR/b.mem: both stay byte for byte as they were, and the memory
# file the interrupted write left (b.mem.partial) is refused for its size.
snap_killed() {
	local dir=$2 sum0 sum1 cpid kiln end=$((SECONDS + 60))
	sum0=$(cat "$dir/b.state" "$dir/b.mem" | md5sum)
	kiln=$(pgrep -P "$pid" | head -1)
	snap_call "$sock" PUT /snapshot/create "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"$dir/b.state\", \"mem_file_path\": \"$dir/b.mem\"}" >/dev/null &
	cpid=$!
	# Builtins only: the kill lands within a scheduler tick of the first bytes written.
	while [ ! -s "$dir/b.mem.partial" ] && [ $SECONDS -lt $end ]; do :; done
	kill -9 "$kiln"
	wait $cpid
	snap_stop
	sum1=$(cat "$dir/b.state" "$dir/b.mem" | md5sum)
	if [ ! -e "$dir/b.mem.partial" ] || [ "$sum0" != "$sum1" ]; then
		fail "$1" "kill -9 during a snapshot: b.mem.partial $( [ -e "$dir/b.mem.partial" ] && echo exists || echo missing), b.state and b.mem $( [ "$sum0" = "$sum1" ] && echo unchanged || echo CHANGED)"
		return 1
	fi
	killed_size=$(stat -c %s "$dir/b.mem.partial")
	snap_refused "$1" "$sock" "$dir/b.state" "$dir/b.mem.partial" "$killed_size bytes" || return 1
}

# snap_inherited NAME SOCK GPA LEN: GET /memory/poison lists [GPA, GPA+LEN) as inherited.
snap_inherited() {
	local pages
	pages=$(api_call "$2" GET /memory/poison)
	if ! grep -Eq "\"guest_phys_addr\": *$(($3)), *\"length\": *$4, *\"origin\": *\"inherited\"" <<<"$pages"; then
		fail "$1" "GET /memory/poison after the restore: $pages" "$log"
		return 1
	fi
}

# snap_done NAME DETAIL: ends the agent's test; passes NAME with DETAIL and the agent's result.
snap_done() {
	echo done >&7
	if ! wait_for 60 agent_has "$log" 'KILN-RESULT snapshot'; then
		fail "$1" "no KILN-RESULT after done" "$log"
	elif ! agent_lines "$log" 'KILN-RESULT snapshot PASS' >/dev/null; then
		fail "$1" "the agent failed" "$log"
	else
		pass "$1" "$2; $(agent_lines "$log" 'KILN-RESULT' | head -1 | grep -o 'KILN-RESULT.*')"
	fi
}

# snap_booted: the agent filled its memory, or gave up, or kiln is gone (as timeout(1)'s child).
snap_booted() {
	agent_has "$log" 'KILN-SNAP-READY gpa=0x\|KILN-RESULT' || ! pgrep -P "$pid" >/dev/null
}

# snap_boot NAME ID SOCK FIFO AGENT_ARGS MACHINE [DRIVE [REQUEST...]]: a kiln with console input
# from FIFO boots the snapshot agent (AGENT_ARGS such as 'kiln.snap_mib=80'; 2 vCPUs; MACHINE,
# e.g. '"mem_size_mib": 128', spliced into machine-config; DRIVE, when not empty, as a read-only
# /dev/vda; each REQUEST, "METHOD PATH BODY", made before InstanceStart) and waits until it has
# filled its memory. Sets pid and
# log; on failure reports NAME failed, stops kiln and returns 1.
snap_boot() {
	local name=$1 sock=$3 r m p b extra=("${@:8}")
	if ! snap_kiln "$2" "$sock" "$4"; then
		fail "$name" "the API socket did not appear" "$log"
		return 1
	fi
	for r in \
		"PUT /boot-source {\"kernel_image_path\": \"$GUEST/vmlinux\", \"initrd_path\": \"$GUEST/initramfs.cpio.gz\", \"boot_args\": \"console=ttyS0 quiet reboot=k panic=1 pci=off kiln.test=snapshot $5\"}" \
		"PUT /machine-config {\"vcpu_count\": 2, $6}" \
		${7:+"PUT /drives/scratch {\"drive_id\": \"scratch\", \"path_on_host\": \"$7\", \"is_root_device\": false, \"is_read_only\": true}"} \
		"${extra[@]}" \
		"PUT /actions {\"action_type\": \"InstanceStart\"}"; do
		[ -n "$r" ] || continue
		read -r m p b <<<"$r"
		r=$(api_call "$sock" "$m" "$p" "$b")
		[ "${r%% *}" = 204 ] || { fail "$name" "$m $p answered $r" "$log"; snap_stop; return 1; }
	done
	if ! wait_for 200 snap_booted || ! agent_has "$log" 'KILN-SNAP-READY gpa=0x'; then
		fail "$name" "the guest never filled its memory" "$log"
		snap_stop
		return 1
	fi
}

kvm_snapshot_poison_restore() {
	local name=snapshot-restore dir=${TMPDIR:-/tmp}/kiln-snap.$$ sock=${TMPDIR:-/tmp}/kiln-snap.$$.sock
	local fifo gpa r logs=() ok=1 detail killed_size
	rm -rf "$dir"
	mkdir -p "$dir"
	fifo=$dir/console
	mkfifo "$fifo"
	exec 7<>"$fifo"
	if ! snap_boot "$name" snapshot-a "$sock" "$fifo" kiln.snap_mib=80 '"mem_size_mib": 128'; then
		exec 7>&-
		return
	fi
	logs+=("$log")
	gpa=$(agent_lines "$log" 'KILN-SNAP-READY' | grep -o 'gpa=0x[0-9a-f]*' | head -1 | cut -d= -f2)
	snap_verify "$name" "$log" 1 || { snap_stop; exec 7>&-; return; }
	r=$(api_call "$sock" PUT /memory/poison "{\"guest_phys_addr\": $((gpa)), \"length\": 4096}")
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /memory/poison answered $r" "$log"; snap_stop; exec 7>&-; return; }
	# Without dirty-page tracking a Diff is refused, and nothing is written.
	api_call "$sock" PATCH /vm '{"state": "Paused"}' >/dev/null
	r=$(snap_call "$sock" PUT /snapshot/create "{\"snapshot_type\": \"Diff\", \"snapshot_path\": \"$dir/x.state\", \"mem_file_path\": \"$dir/x.mem\"}")
	if [ "${r%% *}" != 400 ] || [[ "$r" != *track_dirty_pages* ]] || ls "$dir"/x.* >/dev/null 2>&1; then
		fail "$name" "Diff without track_dirty_pages: $r; files: $(ls "$dir")" "$log"
		snap_stop; exec 7>&-; return
	fi
	snap_take "$name" "$sock" "$dir/a.state" "$dir/a.mem" || { snap_stop; exec 7>&-; return; }
	snap_stop

	# Restore 1: every page intact, the poisoned one still poisoned (inherited).
	snap_restore snapshot-b "$sock" "$dir/a.state" "$dir/a.mem" "$fifo" || { exec 7>&-; return; }
	logs+=("$log")
	snap_inherited "$name" "$sock" "$gpa" 4096 || ok=0
	[ $ok = 1 ] && snap_verify "$name" "$log" 1 && snap_poison_read "$name" "$log" 1 &&
		snap_take "$name" "$sock" "$dir/b.state" "$dir/b.mem" && snap_killed "$name" "$dir" || ok=0
	snap_stop
	[ $ok = 1 ] || { exec 7>&-; return; }

	# Restore 2, from the restored VM's snapshot (which the killed one left alone): the poison
	# is still carried.
	snap_restore snapshot-c "$sock" "$dir/b.state" "$dir/b.mem" "$fifo" || { exec 7>&-; return; }
	logs+=("$log")
	if ! snap_verify "$name" "$log" 1 || ! snap_poison_read "$name" "$log" 1; then
		snap_stop
		exec 7>&-
		return
	fi
	detail=$("$KILN" --describe-snapshot "$dir/b.state" 2>&1)
	if ! grep -q "0x$(printf '%x' $((gpa))) +0x1000 (inherited)" <<<"$detail"; then
		fail "$name" "--describe-snapshot does not list the poisoned page: $detail"
	else
		snap_done "$name" "restored twice; kill -9 during a snapshot left the previous one intact and a $killed_size-byte memory file that was refused; $(grep -o 'guest memory restored: [^;]*' "${logs[1]}" | head -1)"
	fi
	snap_stop
	exec 7>&-

	# Corrupted snapshots, refused before any vCPU runs.
	snap_corrupt "$dir"
	rm -rf "$dir"
}

# flip_bit FILE OFFSET: inverts the lowest bit of the byte at OFFSET, and checks that FILE changed.
flip_bit() {
	local file=$1 off=$2 byte
	byte=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
	[ -n "$byte" ] || { fail snapshot-bad "cannot read byte $off of $file"; return 1; }
	printf "\\x$(printf %02x $((byte ^ 1)))" | dd of="$file" bs=1 seek="$off" conv=notrunc status=none
	[ "$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')" = $((byte ^ 1)) ] ||
		{ fail snapshot-bad "byte $off of $file did not change"; return 1; }
}

# snap_corrupt DIR: each damaged copy of DIR/a.state / a.mem is refused with its reason.
snap_corrupt() {
	local dir=$1 sock=${TMPDIR:-/tmp}/kiln-snapbad.$$.sock size msgs=() m
	size=$(stat -c %s "$dir/a.state")
	head -c $((size - 100)) "$dir/a.state" >"$dir/trunc.state"
	cp "$dir/a.state" "$dir/flip.state"
	flip_bit "$dir/flip.state" $((size / 2)) || return
	cp "$dir/a.state" "$dir/ver.state"
	printf '\x09' | dd of="$dir/ver.state" bs=1 seek=12 conv=notrunc status=none
	cp "$dir/a.state" "$dir/arch.state"
	printf '\x02' | dd of="$dir/arch.state" bs=1 seek=8 conv=notrunc status=none
	head -c 4096 "$dir/a.mem" >"$dir/short.mem"
	for m in "trunc.state a.mem checksum mismatch" "flip.state a.mem checksum mismatch" \
		"ver.state a.mem format version 9" "arch.state a.mem written for aarch64" \
		"a.state short.mem 4096 bytes"; do
		set -- $m
		local pat=${m#* * }
		snap_refused snapshot-bad "$sock" "$dir/$1" "$dir/$2" "$pat" || return
		msgs+=("$refusal")
	done
	pass snapshot-corrupt "truncated, bit-flipped, wrong version, wrong architecture and short memory file refused; e.g. ${msgs[0]}"
}

# Diff snapshots: a guest with dirty-page tracking is snapshotted (Full) and keeps running; it
# rewrites every 7th page with the CPU and reads a drive over 4 MiB of its pages with O_DIRECT
# (only the device writes those), and a page is poisoned; a Diff snapshot then holds just those
# pages. Loaded as it is, the Diff is caught at its first chunk and the VM stopped; merged onto
# the Full one with `kiln snapshot-rebase`, it restores the guest with every page intact and
# the poisoned page still poisoned. On the way, the Full snapshot is restored through the Uffd
# backend with the example handler, which is then killed.
kvm_snapshot_diff() {
	local name=snapshot-diff dir=${TMPDIR:-/tmp}/kiln-snapd.$$ sock=${TMPDIR:-/tmp}/kiln-snapd.$$.sock
	local fifo gpa r alloc merged hpid lost
	local handler=${KILN_UFFD_HANDLER:-$PWD/build/uffd_handler/kiln-uffd-handler}
	rm -rf "$dir"
	mkdir -p "$dir"
	fifo=$dir/console
	mkfifo "$fifo"
	exec 7<>"$fifo"
	head -c $((4 << 20)) /dev/urandom >"$dir/disk.img"
	if ! snap_boot "$name" snapshot-diff-a "$sock" "$fifo" kiln.snap_mib=64 '"mem_size_mib": 128, "track_dirty_pages": true' \
		"$dir/disk.img"; then
		exec 7>&-
		return
	fi
	gpa=$(agent_lines "$log" 'KILN-SNAP-READY' | grep -o 'gpa=0x[0-9a-f]*' | head -1 | cut -d= -f2)
	snap_take "$name" "$sock" "$dir/base.state" "$dir/base.mem" || { snap_stop; exec 7>&-; return; }
	r=$(api_call "$sock" PATCH /vm '{"state": "Resumed"}')
	[ "${r%% *}" = 204 ] || { fail "$name" "PATCH /vm Resumed answered $r" "$log"; snap_stop; exec 7>&-; return; }
	echo mutate >&7
	if ! wait_for 120 agent_has "$log" 'KILN-SNAP-MUTATED'; then
		fail "$name" "the guest did not answer mutate" "$log"
		snap_stop; exec 7>&-; return
	fi
	if ! agent_has "$log" 'KILN-SNAP-MUTATED .*blk_bytes=4194304$'; then
		fail "$name" "the guest's mutation: $(agent_lines "$log" 'KILN-SNAP-MUTATED')" "$log"
		snap_stop; exec 7>&-; return
	fi
	snap_verify "$name" "$log" 1 || { snap_stop; exec 7>&-; return; }
	r=$(api_call "$sock" PUT /memory/poison "{\"guest_phys_addr\": $((gpa)), \"length\": 4096}")
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /memory/poison answered $r" "$log"; snap_stop; exec 7>&-; return; }
	snap_take "$name" "$sock" "$dir/diff.state" "$dir/diff.mem" Diff || { snap_stop; exec 7>&-; return; }
	snap_stop
	# 64 MiB of pattern, 1/7 of it rewritten, plus 4 MiB read and what the kernel wrote: far
	# less than the 128 MiB a Full file holds.
	alloc=$(( $(stat -c '%b * %B' "$dir/diff.mem") ))
	if [ "$alloc" -ge $((64 << 20)) ] || [ "$alloc" -lt $((12 << 20)) ]; then
		fail "$name" "the Diff memory file holds $alloc bytes (wanted 12-64 MiB of 128)"
		exec 7>&-; return
	fi

	# Loaded without its base, the first chunk the uffd thread reads gives it away.
	snap_restore snapshot-diff-b "$sock" "$dir/diff.state" "$dir/diff.mem" "$fifo" || { exec 7>&-; return; }
	if ! wait_for 60 log_has "$log" 'this is a Diff snapshot'; then
		fail "$name" "an unmerged Diff was not caught" "$log"
		snap_stop; exec 7>&-; return
	fi
	snap_stop

	# The Full snapshot once more, its memory served by the example handler (Firecracker's Uffd
	# backend); then the handler dies: kiln poisons the pages it never served and stops.
	"$handler" "$dir/uffd.sock" "$dir/base.mem" >"$E2E_OUT/uffd-handler.log" 2>&1 &
	hpid=$!
	if ! wait_for 10 test -S "$dir/uffd.sock"; then
		fail "$name" "the example handler did not listen" "$E2E_OUT/uffd-handler.log"
		kill -9 $hpid 2>/dev/null; exec 7>&-; return
	fi
	snap_restore snapshot-diff-u "$sock" "$dir/base.state" "$dir/uffd.sock" "$fifo" Uffd ||
		{ kill -9 $hpid 2>/dev/null; exec 7>&-; return; }
	snap_verify "$name" "$log" 1 || { kill -9 $hpid 2>/dev/null; snap_stop; exec 7>&-; return; }
	kill -9 $hpid 2>/dev/null
	wait $hpid 2>/dev/null
	if ! wait_for 30 log_has "$log" 'page-fault handler at .* exited.*pages were never served.*stopped'; then
		fail "$name" "kiln did not notice its page-fault handler's death" "$log"
		snap_stop; exec 7>&-; return
	fi
	lost=$(grep -o '[0-9]* pages were never served' "$log" | head -1 | cut -d' ' -f1)
	snap_stop

	merged=$("$KILN" snapshot-rebase "$dir/base.mem" "$dir/diff.mem" 2>&1) ||
		{ fail "$name" "snapshot-rebase: $merged"; exec 7>&-; return; }
	snap_restore snapshot-diff-c "$sock" "$dir/diff.state" "$dir/base.mem" "$fifo" || { exec 7>&-; return; }
	if ! snap_inherited "$name" "$sock" "$gpa" 4096 || ! snap_verify "$name" "$log" 1 || ! snap_poison_read "$name" "$log" 1; then
		snap_stop; exec 7>&-; return
	fi
	snap_done "$name" "Diff file $((alloc >> 20)) MiB allocated of 128 MiB; unmerged Diff stopped at its first chunk; the Full one served by the example Uffd handler verified, its death poisoned the $lost pages never served and stopped the VM; ${merged%% of *}"
	snap_stop
	exec 7>&-
	rm -rf "$dir"
}

# Snapshots of 2 MiB hugetlb memory: the restored guest gets hugetlb memory again, the poisoned
# 2 MiB page is marked before any vCPU runs, every other page verifies, and the guest's read of
# the page takes a machine check. The page handed to the host is a guest huge page of its own:
# the host poisons all of its 2 MiB page.
kvm_snapshot_hugepages() {
	local name=snapshot-2m dir=${TMPDIR:-/tmp}/kiln-snaph.$$ sock=${TMPDIR:-/tmp}/kiln-snaph.$$.sock
	local fifo gpa r free0 used
	rm -rf "$dir"
	mkdir -p "$dir"
	fifo=$dir/console
	mkfifo "$fifo"
	exec 7<>"$fifo"
	if ! snap_boot "$name" snapshot-2m-a "$sock" "$fifo" 'kiln.snap_mib=24 kiln.snap_huge=1' '"mem_size_mib": 96, "huge_pages": "2M"'; then
		exec 7>&-
		return
	fi
	gpa=$(agent_lines "$log" 'KILN-SNAP-READY' | grep -o 'gpa=0x[0-9a-f]*' | head -1 | cut -d= -f2)
	r=$(api_call "$sock" PUT /memory/poison "{\"guest_phys_addr\": $((gpa)), \"length\": 4096}")
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /memory/poison answered $r" "$log"; snap_stop; exec 7>&-; return; }
	snap_take "$name" "$sock" "$dir/a.state" "$dir/a.mem" || { snap_stop; exec 7>&-; return; }
	snap_stop
	free0=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
	snap_restore snapshot-2m-b "$sock" "$dir/a.state" "$dir/a.mem" "$fifo" || { exec 7>&-; return; }
	if ! snap_inherited "$name" "$sock" "$gpa" 2097152 || ! snap_verify "$name" "$log" 1; then
		snap_stop; exec 7>&-; return
	fi
	# All 48 pages but the poisoned one are in by now, from the hugetlb pool.
	used=$((free0 - $(awk '/HugePages_Free/ {print $2}' /proc/meminfo)))
	if [ "$used" -lt 47 ]; then
		fail "$name" "the restored guest took $used hugepages (wanted 47 or 48)" "$log"
		snap_stop; exec 7>&-; return
	fi
	# The guest's read takes a machine check. The guest is told of 4 KiB (Linux takes no
	# coarser report) and hands the rest of the 2 MiB page back to its allocator, where its next
	# use is fatal: so this is the last thing the guest does (see README, Not supported yet).
	echo poison >&7
	if ! wait_for 60 agent_has "$log" "Memory failure: 0x$(printf '%x' $((gpa >> 12))): Sending SIGBUS"; then
		fail "$name" "the guest's read of the poisoned 2 MiB page took no machine check" "$log"
		snap_stop; exec 7>&-; return
	fi
	pass "$name" "2 MiB page 0x$(printf '%x' "$gpa") inherited; $used hugepages in use; $(agent_lines "$log" 'KILN-SNAP-VERIFIED' | head -1); the guest's read took a machine check; $(grep -o 'guest memory restored: [^;]*' "$log" | head -1)"
	snap_stop
	exec 7>&-
	rm -rf "$dir"
}
