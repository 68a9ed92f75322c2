# Live migration between two kilns in one L1: the snapshot agent's guest (snapshot.sh) fills its
# memory, one page is poisoned on the source, and the guest keeps rewriting pages while it
# migrates; on the destination every page verifies, the poisoned one is listed as inherited and
# its read takes a machine check. A destination that dies before it runs the VM leaves the VM
# running on the source. Uses snapshot.sh's and api.sh's helpers.

# mig_dest NAME SOCK FIFO URI: a destination kiln waiting for a source at URI, console input
# from FIFO; sets dpid and dlog.
mig_dest() {
	dlog=$E2E_OUT/$1.log
	rm -f "$2"
	timeout --kill-after=5 600 "$KILN" --api-sock "$2" --id "$1" --migrate-in "$4" <"$3" >"$dlog" 2>&1 &
	dpid=$!
	wait_for 10 test -S "$2"
}

# mig_field SOCK FIELD: FIELD of GET /migration's answer (numbers and strings, unquoted).
mig_field() {
	api_call "$1" GET /migration | grep -o "\"$2\": *\(\"[^\"]*\"\|[0-9a-z]*\)" | head -1 |
		sed 's/^[^:]*: *//; s/"//g'
}

# mig_gone PID: the kiln under timeout(1)'s PID has exited.
mig_gone() { ! kill -0 "$1" 2>/dev/null; }

# mig_kill PID: kills kiln (timeout(1)'s child PID) with -9 and waits.
mig_kill() {
	local k
	k=$(pgrep -P "$1" | head -1)
	[ -n "$k" ] && kill -9 "$k" 2>/dev/null
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# mig_run NAME DIR URI MODE: migrates the source (pid, log, $sock, console on fd 7) to a new
# destination at URI, with the guest rewriting its memory throughout; then fd 7, pid, log and
# sock are the destination's. Sets detail. 0 when the source exited 0 having completed.
mig_run() {
	local name=$1 dir=$2 uri=$3 mode=$4 r spid=$pid slog=$log rc
	echo churn >&7
	if ! wait_for 60 agent_has "$log" 'KILN-SNAP-CHURNING'; then
		fail "$name" "the guest did not start rewriting its memory" "$log"
		return 1
	fi
	mig_dest "$name-dst" "$dir/dst.sock" "$dir/console-dst" "$uri" ||
		{ fail "$name" "the destination's API socket did not appear" "$dlog"; return 1; }
	r=$(api_call "$sock" PUT /migration/start "{\"uri\": \"$uri\", \"mode\": \"$mode\", \"max_downtime_ms\": 500}")
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /migration/start answered $r" "$log"; mig_kill $dpid; return 1; }
	if ! wait_for 400 mig_gone "$spid"; then
		fail "$name" "the source did not finish: $(api_call "$sock" GET /migration)" "$slog"
		tail -20 "$dlog"
		mig_kill $dpid
		return 1
	fi
	wait "$spid"
	rc=$?
	if [ $rc != 0 ] || ! grep -q 'migration to .* completed' "$slog"; then
		fail "$name" "the source exited $rc" "$slog"
		tail -20 "$dlog"
		mig_kill $dpid
		return 1
	fi
	exec 7>&-
	exec 7<>"$dir/console-dst"
	pid=$dpid log=$dlog sock=$dir/dst.sock
	if ! wait_for 120 log_has "$log" 'migration from .* completed'; then
		fail "$name" "the destination did not complete: $(api_call "$sock" GET /migration)" "$log"
		return 1
	fi
	detail="$(grep -o 'completed in [0-9]* ms (downtime [0-9]* ms): [0-9]* pages before the switch-over in [0-9]* round(s), [0-9]* on request' "$slog" | head -1)"
}

# mig_check NAME GPA LEN DETAIL: on the destination (fd 7, pid, log, sock): the poisoned range
# is inherited, every other page verifies, the poisoned page's read takes a machine check.
mig_check() {
	snap_inherited "$1" "$sock" "$2" "$3" || return 1
	echo still >&7
	wait_for 60 agent_has "$log" 'KILN-SNAP-STILL' || { fail "$1" "the guest did not stop rewriting" "$log"; return 1; }
	snap_verify "$1" "$log" 1 || return 1
	snap_poison_read "$1" "$log" 1 || return 1
	snap_done "$1" "$4; $(agent_lines "$log" 'KILN-SNAP-STILL' | head -1 | grep -o 'rewritten=[0-9]*') pages rewritten during it"
}

# Postcopy over a unix socket: one round, then the destination runs and fetches the rest.
kvm_migrate_postcopy() {
	local name=migrate-postcopy dir=${TMPDIR:-/tmp}/kiln-mig.$$ gpa r detail
	sock=$dir/src.sock
	rm -rf "$dir"
	mkdir -p "$dir"
	mkfifo "$dir/console" "$dir/console-dst"
	exec 7<>"$dir/console"
	exec 8<>"$dir/console-dst" # keeps the destination's console open
	if ! snap_boot "$name" migrate-src "$sock" "$dir/console" kiln.snap_mib=64 '"mem_size_mib": 128'; then
		exec 7>&- 8>&-
		return
	fi
	gpa=$(agent_lines "$log" 'KILN-SNAP-READY' | grep -o 'gpa=0x[0-9a-f]*' | head -1 | cut -d= -f2)
	r=$(api_call "$sock" PUT /memory/poison "{\"guest_phys_addr\": $((gpa)), \"length\": 4096}")
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /memory/poison answered $r" "$log"; snap_stop; exec 7>&- 8>&-; return; }
	if ! mig_run "$name" "$dir" "unix:$dir/mig.sock" postcopy; then
		snap_stop; exec 7>&- 8>&-; return
	fi
	detail="$detail; destination: $(mig_field "$sock" pages_on_fault) pages on fault (p50 $(mig_field "$sock" fault_p50_us) us), $(mig_field "$sock" pages_background) in the background"
	mig_check "$name" "$gpa" 4096 "$detail"
	snap_stop
	exec 7>&- 8>&-
	rm -rf "$dir"
}

# Precopy over TCP: first to a destination killed as soon as the source connects (the VM keeps
# running on the source, whose guest still verifies), then to a real one: rounds until the rest
# fits the downtime, then the switch-over.
kvm_migrate_precopy_tcp() {
	local name=migrate-precopy dir=${TMPDIR:-/tmp}/kiln-migp.$$ gpa r detail port=$((20000 + $$ % 10000))
	sock=$dir/src.sock
	rm -rf "$dir"
	mkdir -p "$dir"
	mkfifo "$dir/console" "$dir/console-dst"
	exec 7<>"$dir/console"
	exec 8<>"$dir/console-dst"
	if ! snap_boot "$name" migrate-src-tcp "$sock" "$dir/console" kiln.snap_mib=64 '"mem_size_mib": 128'; then
		exec 7>&- 8>&-
		return
	fi
	gpa=$(agent_lines "$log" 'KILN-SNAP-READY' | grep -o 'gpa=0x[0-9a-f]*' | head -1 | cut -d= -f2)
	r=$(api_call "$sock" PUT /memory/poison "{\"guest_phys_addr\": $((gpa)), \"length\": 4096}")
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /memory/poison answered $r" "$log"; snap_stop; exec 7>&- 8>&-; return; }

	# A destination that dies before it runs the VM.
	mig_dest "$name-dead" "$dir/dead.sock" "$dir/console-dst" "tcp:127.0.0.1:$port" ||
		{ fail "$name" "the first destination's API socket did not appear" "$dlog"; snap_stop; exec 7>&- 8>&-; return; }
	r=$(api_call "$sock" PUT /migration/start "{\"uri\": \"tcp:127.0.0.1:$port\", \"mode\": \"precopy\"}")
	if [ "${r%% *}" != 204 ] || ! wait_for 30 log_has "$dlog" 'a source connected'; then
		fail "$name" "the first migration did not start: $r" "$dlog"
		mig_kill $dpid; snap_stop; exec 7>&- 8>&-; return
	fi
	mig_kill $dpid
	if ! wait_for 60 eval '[ "$(mig_field "$sock" state)" = failed ]'; then
		fail "$name" "the source did not notice its destination's death: $(api_call "$sock" GET /migration)" "$log"
		snap_stop; exec 7>&- 8>&-; return
	fi
	if [ "$(api_call "$sock" GET /vm/config >/dev/null; api_call "$sock" GET / | grep -o '"state": *"[A-Za-z ]*"')" != '"state":"Running"' ] &&
		! api_call "$sock" GET / | grep -q '"state": *"Running"'; then
		fail "$name" "after the failed migration the source is $(api_call "$sock" GET /)" "$log"
		snap_stop; exec 7>&- 8>&-; return
	fi
	snap_verify "$name" "$log" 1 || { snap_stop; exec 7>&- 8>&-; return; }

	if ! mig_run "$name" "$dir" "tcp:127.0.0.1:$((port + 1))" precopy; then
		snap_stop; exec 7>&- 8>&-; return
	fi
	detail="a destination killed before it ran the VM left it running on the source; $detail"
	mig_check "$name" "$gpa" 4096 "$detail"
	snap_stop
	exec 7>&- 8>&-
	rm -rf "$dir"
}
