# Live migration between two kilns in one L1: the snapshot agent's guest (snapshot.sh) fills its
# memory, one page is poisoned on the source, and the guest keeps rewriting pages while it
# migrates; on the destination every page verifies, the poisoned one is listed as inherited and
# its read takes a machine check. A destination that dies before it runs the VM leaves the VM
# running on the source. Uses snapshot.sh's and api.sh's helpers.

# mig_dest NAME SOCK FIFO URI: a destination kiln waiting for a source at URI, console input
# from FIFO, in network namespace $mig_ns when set; sets dpid and dlog.
mig_dest() {
	dlog=$E2E_OUT/$1.log
	rm -f "$2"
	${mig_ns:+ip netns exec "$mig_ns"} timeout --kill-after=5 600 "$KILN" --api-sock "$2" --id "$1" \
		--migrate-in "$4" <"$3" >"$dlog" 2>&1 &
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
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /migration/start answered $r" "$log"; snap_stop $dpid; return 1; }
	if ! wait_for 400 mig_gone "$spid"; then
		fail "$name" "the source did not finish: $(api_call "$sock" GET /migration)" "$slog"
		tail -20 "$dlog"
		snap_stop $dpid
		return 1
	fi
	wait "$spid"
	rc=$?
	if [ $rc != 0 ] || ! grep -q 'migration to .* completed' "$slog"; then
		fail "$name" "the source exited $rc" "$slog"
		tail -20 "$dlog"
		snap_stop $dpid
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
	echo "GET /migration: $(api_call "$sock" GET /migration)" >>"$E2E_OUT/$name.migration"
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

# mig_setup DIR: a fresh DIR with the consoles of both sides (fd 7: the source's, held open
# with fd 8 the destination's).
mig_setup() {
	rm -rf "$1"
	mkdir -p "$1"
	mkfifo "$1/console" "$1/console-dst"
	exec 7<>"$1/console"
	exec 8<>"$1/console-dst"
}

# mig_boot_poisoned NAME ID DIR AGENT_ARGS MACHINE: boots the source (snap_boot, API on $sock)
# and poisons the agent's page on it; sets gpa. On failure reports NAME and cleans up.
mig_boot_poisoned() {
	local r
	if ! snap_boot "$1" "$2" "$sock" "$3/console" "$4" "$5"; then
		exec 7>&- 8>&-
		return 1
	fi
	gpa=$(agent_lines "$log" 'KILN-SNAP-READY' | grep -o 'gpa=0x[0-9a-f]*' | head -1 | cut -d= -f2)
	r=$(api_call "$sock" PUT /memory/poison "{\"guest_phys_addr\": $((gpa)), \"length\": 4096}")
	if [ "${r%% *}" != 204 ]; then
		fail "$1" "PUT /memory/poison answered $r" "$log"
		snap_stop
		exec 7>&- 8>&-
		return 1
	fi
}

# Postcopy over a unix socket: one round, then the destination runs and fetches the rest.
kvm_migrate_postcopy() {
	local name=migrate-postcopy dir=${TMPDIR:-/tmp}/kiln-mig.$$ gpa r detail
	sock=$dir/src.sock
	mig_setup "$dir"
	mig_boot_poisoned "$name" migrate-src "$dir" kiln.snap_mib=64 '"mem_size_mib": 128' || return
	if ! mig_run "$name" "$dir" "unix:$dir/mig.sock" postcopy; then
		snap_stop; exec 7>&- 8>&-; return
	fi
	detail="$detail; destination: $(mig_field "$sock" pages_on_fault) pages on fault (p50 $(mig_field "$sock" fault_p50_us) us), $(mig_field "$sock" pages_background) in the background"
	mig_check "$name" "$gpa" 4096 "$detail"
	snap_stop
	exec 7>&- 8>&-
	rm -rf "$dir"
}

# mig_netns: network namespace kiln-mig-b, joined to this one by a veth pair: 10.77.0.1 here,
# 10.77.0.2 there. Sets mig_ns.
mig_netns() {
	ip netns del kiln-mig-b 2>/dev/null
	ip link del kiln-mig-a 2>/dev/null
	ip netns add kiln-mig-b &&
		ip link add kiln-mig-a type veth peer name kiln-mig-b &&
		ip link set kiln-mig-b netns kiln-mig-b &&
		ip addr add 10.77.0.1/24 dev kiln-mig-a && ip link set kiln-mig-a up &&
		ip -n kiln-mig-b addr add 10.77.0.2/24 dev kiln-mig-b &&
		ip -n kiln-mig-b link set kiln-mig-b up && ip -n kiln-mig-b link set lo up &&
		mig_ns=kiln-mig-b
}

mig_netns_del() {
	ip netns del kiln-mig-b 2>/dev/null
	ip link del kiln-mig-a 2>/dev/null
	mig_ns=
}

# Precopy over TCP, the destination in another network namespace behind a veth pair: first to
# a destination killed as soon as the source connects (the VM keeps running on the source,
# whose guest still verifies), then to a real one: rounds until the rest fits the downtime,
# then the switch-over.
kvm_migrate_precopy_tcp() {
	local name=migrate-precopy dir=${TMPDIR:-/tmp}/kiln-migp.$$ gpa r detail port=$((20000 + $$ % 10000))
	local mig_ns=
	sock=$dir/src.sock
	if ! mig_netns; then
		fail "$name" "cannot set up the network namespace and veth pair"
		mig_netns_del
		return
	fi
	mig_setup "$dir"
	mig_boot_poisoned "$name" migrate-src-tcp "$dir" kiln.snap_mib=64 '"mem_size_mib": 128' || return

	# A destination that dies before it runs the VM.
	mig_dest "$name-dead" "$dir/dead.sock" "$dir/console-dst" "tcp:10.77.0.2:$port" ||
		{ fail "$name" "the first destination's API socket did not appear" "$dlog"; snap_stop; exec 7>&- 8>&-; return; }
	r=$(api_call "$sock" PUT /migration/start "{\"uri\": \"tcp:10.77.0.2:$port\", \"mode\": \"precopy\"}")
	if [ "${r%% *}" != 204 ] || ! wait_for 30 log_has "$dlog" 'a source connected'; then
		fail "$name" "the first migration did not start: $r" "$dlog"
		snap_stop $dpid; snap_stop; exec 7>&- 8>&-; return
	fi
	snap_stop $dpid
	if ! wait_for 60 eval '[ "$(mig_field "$sock" state)" = failed ]'; then
		fail "$name" "the source did not notice its destination's death: $(api_call "$sock" GET /migration)" "$log"
		snap_stop; exec 7>&- 8>&-; return
	fi
	if ! api_call "$sock" GET / | grep -q '"state": *"Running"'; then
		fail "$name" "after the failed migration the source is $(api_call "$sock" GET /)" "$log"
		snap_stop; exec 7>&- 8>&-; return
	fi
	snap_verify "$name" "$log" 1 || { snap_stop; exec 7>&- 8>&-; return; }

	if ! mig_run "$name" "$dir" "tcp:10.77.0.2:$((port + 1))" precopy; then
		snap_stop; exec 7>&- 8>&-; return
	fi
	detail="across a veth pair; a destination killed before it ran the VM left it running on the source; $detail"
	mig_check "$name" "$gpa" 4096 "$detail"
	snap_stop
	exec 7>&- 8>&-
	mig_netns_del
	rm -rf "$dir"
}

# 2 MiB hugetlb memory on both sides: a guest huge page of the agent's own is poisoned on the
# source (the host poisons all 2 MiB of it); after postcopy the destination lists the 2 MiB page
# as inherited, every other page verifies, and the guest's read takes a machine check (the last
# thing it does: README, Not supported yet).
kvm_migrate_hugepages() {
	local name=migrate-2m dir=${TMPDIR:-/tmp}/kiln-migh.$$ gpa r detail
	sock=$dir/src.sock
	mig_setup "$dir"
	mig_boot_poisoned "$name" migrate-src-2m "$dir" 'kiln.snap_mib=24 kiln.snap_huge=1' '"mem_size_mib": 96, "huge_pages": "2M"' || return
	if ! mig_run "$name" "$dir" "unix:$dir/mig.sock" postcopy; then
		snap_stop; exec 7>&- 8>&-; return
	fi
	if ! snap_inherited "$name" "$sock" "$gpa" 2097152; then
		snap_stop; exec 7>&- 8>&-; return
	fi
	echo still >&7
	if ! snap_verify "$name" "$log" 1; then
		snap_stop; exec 7>&- 8>&-; return
	fi
	echo poison >&7
	if ! wait_for 60 agent_has "$log" "Memory failure: 0x$(printf '%x' $((gpa >> 12))): Sending SIGBUS"; then
		fail "$name" "the guest's read of the poisoned 2 MiB page took no machine check" "$log"
	else
		pass "$name" "2 MiB page 0x$(printf '%x' "$gpa") inherited; $(agent_lines "$log" 'KILN-SNAP-VERIFIED' | head -1); the guest's read took a machine check; $detail"
	fi
	snap_stop
	exec 7>&- 8>&-
	rm -rf "$dir"
}

# mig_proxy FROM TO: relays one connection accepted on unix socket FROM to unix socket TO, both
# ways, in the background (its pid in proxy_pid); killing it cuts the connection on both sides
# while both kilns live.
mig_proxy() {
	rm -f "$1"
	/usr/bin/python3 -c '
import socket, sys, threading
lst = socket.socket(socket.AF_UNIX)
lst.bind(sys.argv[1])
lst.listen(1)
a, _ = lst.accept()
b = socket.socket(socket.AF_UNIX)
b.connect(sys.argv[2])
def pump(x, y):
    try:
        while True:
            d = x.recv(1 << 16)
            if not d:
                break
            y.sendall(d)
    except OSError:
        pass
    for s in (x, y):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
threading.Thread(target=pump, args=(a, b), daemon=True).start()
pump(b, a)
' "$1" "$2" &
	proxy_pid=$!
	wait_for 10 test -S "$1"
}

# mig_until_running NAME DIR URI [TIMEOUT_MS]: starts a postcopy migration of the source (pid,
# log, $sock, console on fd 7) to a new destination (dpid, dlog) listening on unix:DIR/mig.sock
# (given by PUT /migration/incoming with recover_timeout_ms TIMEOUT_MS when set, else by
# --migrate-in); the source connects to URI. Waits until the destination runs the VM. Sets spid
# and slog.
mig_until_running() {
	local r
	spid=$pid slog=$log
	echo churn >&7
	if [ -n "${4:-}" ]; then
		dlog=$E2E_OUT/$1-dst.log
		rm -f "$2/dst.sock"
		timeout --kill-after=5 600 "$KILN" --api-sock "$2/dst.sock" --id "$1-dst" <"$2/console-dst" >"$dlog" 2>&1 &
		dpid=$!
		wait_for 10 test -S "$2/dst.sock" || { fail "$1" "the destination's API socket did not appear" "$dlog"; return 1; }
		r=$(api_call "$2/dst.sock" PUT /migration/incoming "{\"uri\": \"unix:$2/mig.sock\", \"recover_timeout_ms\": $4}")
		[ "${r%% *}" = 204 ] || { fail "$1" "PUT /migration/incoming answered $r" "$dlog"; snap_stop $dpid; return 1; }
	else
		mig_dest "$1-dst" "$2/dst.sock" "$2/console-dst" "unix:$2/mig.sock" ||
			{ fail "$1" "the destination's API socket did not appear" "$dlog"; return 1; }
	fi
	[ "$3" = "unix:$2/mig.sock" ] || mig_proxy "${3#unix:}" "$2/mig.sock" ||
		{ fail "$1" "the proxy did not listen"; snap_stop $dpid; return 1; }
	r=$(api_call "$sock" PUT /migration/start "{\"uri\": \"$3\", \"mode\": \"postcopy\"}")
	[ "${r%% *}" = 204 ] || { fail "$1" "PUT /migration/start answered $r" "$log"; snap_stop $dpid; return 1; }
	if ! wait_for 120 log_has "$dlog" 'the microVM runs here'; then
		fail "$1" "the destination never ran the VM" "$dlog"
		snap_stop $dpid
		return 1
	fi
}

# After the destination ran the VM: killing the destination leaves the source paused for good
# (it refuses to resume: the VM may have written to its disks over there); cutting the
# connection pauses postcopy on both sides until PUT /migration/recover on each, after which it
# completes with every page intact; killing the source while pages are missing makes the
# destination wait recover_timeout_ms, poison them, stop the VM and exit 1.
kvm_migrate_failures() {
	local name=migrate-failures dir=${TMPDIR:-/tmp}/kiln-migf.$$ r spid slog rc state detail proxy_pid
	local dsock
	sock=$dir/src.sock
	mig_setup "$dir"

	# 1: the destination dies after it ran the VM.
	snap_boot "$name" migrate-src-f1 "$sock" "$dir/console" kiln.snap_mib=64 '"mem_size_mib": 128' ||
		{ exec 7>&- 8>&-; return; }
	mig_until_running "$name" "$dir" "unix:$dir/mig.sock" || { snap_stop; exec 7>&- 8>&-; return; }
	snap_stop $dpid
	if ! wait_for 60 eval '[ "$(mig_field "$sock" state)" = postcopy-paused ]'; then
		fail "$name" "the source did not notice its destination's death: $(api_call "$sock" GET /migration)" "$log"
		snap_stop; exec 7>&- 8>&-; return
	fi
	state=$(api_call "$sock" GET /)
	r=$(api_call "$sock" PATCH /vm '{"state": "Resumed"}')
	if [[ "$state" != *'"Paused"'* ]] || [ "${r%% *}" != 400 ]; then
		fail "$name" "after the destination's death: GET / $state; resume answered $r; $(api_call "$sock" GET /migration)" "$log"
		snap_stop; exec 7>&- 8>&-; return
	fi
	snap_stop
	detail="a destination killed after it ran the VM left the source paused, refusing to resume"

	# 2: the connection is cut (a relay between the two is killed), then recovered.
	rm -f "$dir/mig.sock"
	snap_boot "$name" migrate-src-f2 "$sock" "$dir/console" kiln.snap_mib=64 '"mem_size_mib": 128' ||
		{ exec 7>&- 8>&-; return; }
	mig_until_running "$name" "$dir" "unix:$dir/proxy.sock" || { kill $proxy_pid 2>/dev/null; snap_stop; exec 7>&- 8>&-; return; }
	kill -9 $proxy_pid
	wait $proxy_pid 2>/dev/null
	dsock=$dir/dst.sock
	if ! wait_for 60 eval '[ "$(mig_field "$sock" state)" = postcopy-paused ] && [ "$(mig_field "$dsock" state)" = postcopy-paused ]'; then
		fail "$name" "after the cut: source $(api_call "$sock" GET /migration); destination $(api_call "$dsock" GET /migration)" "$dlog"
		snap_stop; snap_stop $dpid; exec 7>&- 8>&-; return
	fi
	r=$(api_call "$dsock" PUT /migration/recover "{\"uri\": \"unix:$dir/mig2.sock\"}")
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /migration/recover on the destination answered $r" "$dlog"; snap_stop; snap_stop $dpid; exec 7>&- 8>&-; return; }
	r=$(api_call "$sock" PUT /migration/recover "{\"uri\": \"unix:$dir/mig2.sock\"}")
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /migration/recover on the source answered $r" "$log"; snap_stop; snap_stop $dpid; exec 7>&- 8>&-; return; }
	if ! wait_for 300 mig_gone "$spid"; then
		fail "$name" "the recovered migration did not finish: $(api_call "$sock" GET /migration)" "$slog"
		snap_stop; snap_stop $dpid; exec 7>&- 8>&-; return
	fi
	wait "$spid"
	rc=$?
	exec 7>&-
	exec 7<>"$dir/console-dst"
	pid=$dpid log=$dlog sock=$dsock
	if [ $rc != 0 ] || ! wait_for 60 log_has "$log" 'migration from .* completed'; then
		fail "$name" "after the recovery the source exited $rc" "$slog"
		snap_stop; exec 7>&- 8>&-; return
	fi
	echo still >&7
	if ! snap_verify "$name" "$log" 1; then
		snap_stop; exec 7>&- 8>&-; return
	fi
	snap_stop
	exec 7>&-
	exec 7<>"$dir/console"
	detail="$detail; a cut connection paused postcopy on both sides, PUT /migration/recover resumed it and every page verified"

	# 3: the source dies while the destination still misses pages.
	rm -f "$dir/mig.sock" "$dir/mig2.sock"
	sock=$dir/src.sock
	snap_boot "$name" migrate-src-f3 "$sock" "$dir/console" kiln.snap_mib=64 '"mem_size_mib": 128' ||
		{ exec 7>&- 8>&-; return; }
	mig_until_running "$name" "$dir" "unix:$dir/mig.sock" 3000 || { snap_stop; exec 7>&- 8>&-; return; }
	snap_stop $spid
	if ! wait_for 120 mig_gone $dpid; then
		fail "$name" "the destination kept running after its source died" "$dlog"
		snap_stop $dpid; exec 7>&- 8>&-; return
	fi
	wait $dpid
	rc=$?
	if [ $rc != 1 ] || ! grep -q 'no new connection from the source within 3000 ms' "$dlog" ||
		! grep -q 'poisoning the [0-9]* pages it has not served' "$dlog" || ! grep -q 'is lost' "$dlog"; then
		fail "$name" "after the source's death the destination exited $rc" "$dlog"
		exec 7>&- 8>&-; return
	fi
	pass "$name" "$detail; a source killed mid-postcopy: after 3 s without recovery the destination poisoned the $(grep -o 'poisoning the [0-9]* pages' "$dlog" | grep -o '[0-9]*') pages it lacked, stopped and exited 1"
	exec 7>&- 8>&-
	rm -rf "$dir"
}

# A destination refuses a source it cannot trust, says why to the source and in GET /migration,
# and keeps running without a VM, ready for another PUT /migration/incoming: a peer of another
# protocol version, a frame whose checksum is wrong, a configuration that is none, a state that
# is no state image. No KVM needed: nothing gets as far as a VM.
host_migrate_refusals() {
	local name=migrate-refusals dir peer=${MIG_PEER:-$PWD/build/tests/mig_peer} out r why i
	local cases=("version 2|speaks version 2 of kiln's migration protocol; this kiln speaks 1"
		"checksum|checksum"
		"config|vcpu_count"
		"state|STATE")
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-migr.XXXXXX")
	log=$E2E_OUT/$name.log
	timeout --kill-after=5 120 "$KILN" --api-sock "$dir/api.sock" --id "$name" \
		--migrate-in "unix:$dir/mig.sock" </dev/null >"$log" 2>&1 &
	pid=$!
	if ! wait_for 10 test -S "$dir/mig.sock"; then
		fail "$name" "kiln did not listen" "$log"
		snap_stop; rm -rf "$dir"; return
	fi
	for i in "${!cases[@]}"; do
		if [ "$i" -gt 0 ]; then
			r=$(api_call "$dir/api.sock" PUT /migration/incoming "{\"uri\": \"unix:$dir/mig.sock\"}")
			[ "${r%% *}" = 204 ] || { fail "$name" "PUT /migration/incoming #$i answered $r" "$log"; snap_stop; rm -rf "$dir"; return; }
		fi
		why=${cases[$i]#*|}
		out=$(CONFIG_JSON='{"boot-source":{"kernel_image_path":"/k"},"machine-config":{"vcpu_count":1,"mem_size_mib":64}}' \
			timeout 20 "$peer" "$dir/mig.sock" ${cases[$i]%%|*} 2>&1)
		if ! grep -q "answer ERROR: .*$why" <<<"$out" || ! grep -q '^closed' <<<"$out"; then
			fail "$name" "${cases[$i]%%|*}: the peer got: $out" "$log"
			snap_stop; rm -rf "$dir"; return
		fi
		if ! wait_for 10 eval '[ "$(mig_field "$dir/api.sock" state)" = failed ]' ||
			! api_call "$dir/api.sock" GET /migration | grep -q "$why"; then
			fail "$name" "${cases[$i]%%|*}: GET /migration: $(api_call "$dir/api.sock" GET /migration)" "$log"
			snap_stop; rm -rf "$dir"; return
		fi
	done
	r=$(api_call "$dir/api.sock" GET /)
	if [[ "$r" != 200*'"Not started"'* ]]; then
		fail "$name" "after the refusals GET / answered $r" "$log"
	else
		pass "$name" "${#cases[@]} hostile sources refused with their reason, kiln still serving"
	fi
	snap_stop
	rm -rf "$dir"
}
