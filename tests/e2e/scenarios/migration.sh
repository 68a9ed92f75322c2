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

# mig_run NAME DIR URI MODE [TAG]: migrates the source (pid, log, $sock, console on fd 7) to a
# new destination at URI (API socket DIR/dstTAG.sock, console DIR/console-dstTAG), with the guest
# rewriting its memory throughout; then fd 7, pid, log and sock are the destination's. Sets
# detail. 0 when the source exited 0 having completed.
mig_run() {
	local name=$1 dir=$2 uri=$3 mode=$4 tag=${5:-} r spid=$pid slog=$log rc
	echo churn >&7
	if ! wait_for 60 agent_has "$log" 'KILN-SNAP-CHURNING'; then
		fail "$name" "the guest did not start rewriting its memory" "$log"
		return 1
	fi
	mig_dest "$name-dst$tag" "$dir/dst$tag.sock" "$dir/console-dst$tag" "$uri" ||
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
	exec 7<>"$dir/console-dst$tag"
	pid=$dpid log=$dlog sock=$dir/dst$tag.sock
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

# Postcopy over a unix socket: one round, then the destination runs and fetches the rest; once
# every page is in, the migrated VM migrates on (precopy) to a third kiln, which checks it.
kvm_migrate_postcopy() {
	local name=migrate-postcopy dir=${TMPDIR:-/tmp}/kiln-mig.$$ gpa r detail first
	sock=$dir/src.sock
	mig_setup "$dir"
	mig_boot_poisoned "$name" migrate-src "$dir" kiln.snap_mib=64 '"mem_size_mib": 128' || return
	if ! mig_run "$name" "$dir" "unix:$dir/mig.sock" postcopy; then
		snap_stop; exec 7>&- 8>&-; return
	fi
	first="$detail; destination: $(mig_field "$sock" pages_on_fault) pages on fault (p50 $(mig_field "$sock" fault_p50_us) us), $(mig_field "$sock" pages_background) in the background"
	mkfifo "$dir/console-dst2"
	exec 9<>"$dir/console-dst2"
	if ! mig_run "$name" "$dir" "unix:$dir/mig2.sock" precopy 2; then
		snap_stop; exec 7>&- 8>&- 9>&-; return
	fi
	mig_check "$name" "$gpa" 4096 "$first; then on to a third kiln: $detail"
	snap_stop
	exec 7>&- 8>&- 9>&-
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

# ---- Devices across postcopy: a read-only drive, a TAP network interface and vsock ----

MIGDEV_TAP=kilnmig0
MIGDEV_HOST_IP=172.16.9.1
MIGDEV_GUEST_IP=172.16.9.2
MIGDEV_HOST_MAC=06:00:ac:10:09:01
MIGDEV_GUEST_MAC=06:00:ac:10:09:02
MIGDEV_NET_PORT=5301
MIGDEV_VSOCK_PORT=5100

# A line echo for the agent's net and vsock commands: `tcp HOST PORT` or `unix PATH`; says
# "listening", then answers each connection's first line with that line, until killed or 240 s.
MIGDEV_ECHO_PY='
import socket, sys, time
if sys.argv[1] == "tcp":
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((sys.argv[2], int(sys.argv[3])))
else:
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(sys.argv[2])
ls.listen(4)
print("listening", flush=True)
deadline, n = time.monotonic() + 240, 0
while time.monotonic() < deadline:
    ls.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        c, _ = ls.accept()
    except socket.timeout:
        break
    c.settimeout(20)
    line = b""
    try:
        while not line.endswith(b"\n") and len(line) < 200:
            b = c.recv(1)
            if not b:
                break
            line += b
        c.sendall(line)
        n += 1
        print("echoed %d: %r" % (n, line), flush=True)
    except OSError as e:
        print("error %r" % e, flush=True)
    c.close()
'

# migdev_echo LOG NETNS ARGS...: starts MIGDEV_ECHO_PY with ARGS (in network namespace NETNS,
# "-": this one) and waits until it listens; its pid is added to migdev_pids.
migdev_echo() {
	local out=$1 ns=$2 p
	shift 2
	if [ "$ns" = - ]; then
		timeout -k 5 250 /usr/bin/python3 -c "$MIGDEV_ECHO_PY" "$@" >"$out" 2>&1 &
	else
		ip netns exec "$ns" timeout -k 5 250 /usr/bin/python3 -c "$MIGDEV_ECHO_PY" "$@" >"$out" 2>&1 &
	fi
	p=$!
	migdev_pids+=("$p")
	wait_for 10 grep -q listening "$out"
}

# migdev_echo_stop: stops the echoes migdev_echo started.
migdev_echo_stop() {
	local p
	for p in "${migdev_pids[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	migdev_pids=()
}

# migdev_tap NETNS: the TAP $MIGDEV_TAP (created when missing) in NETNS ("-": this one) gets
# $MIGDEV_HOST_IP/30 and $MIGDEV_HOST_MAC and is brought up.
migdev_tap() {
	local ipc=(ip)
	[ "$1" = - ] || ipc=(ip -n "$1")
	if ! "${ipc[@]}" link show "$MIGDEV_TAP" >/dev/null 2>&1; then
		"${ipc[@]}" tuntap add dev "$MIGDEV_TAP" mode tap || return 1
	fi
	"${ipc[@]}" link set dev "$MIGDEV_TAP" address "$MIGDEV_HOST_MAC" &&
		"${ipc[@]}" addr replace "$MIGDEV_HOST_IP/30" dev "$MIGDEV_TAP" &&
		"${ipc[@]}" link set dev "$MIGDEV_TAP" up
}

# migdev_boot NAME ID DIR: the source kiln (API on $sock, console from DIR/console) boots the
# snapshot agent with the drive DIR/disk.img read-only, eth0 on $MIGDEV_TAP and vsock on
# DIR/v.sock, and waits until the agent filled its memory. Sets pid and log.
migdev_boot() {
	snap_boot "$1" "$2" "$sock" "$3/console" kiln.snap_mib=48 '"mem_size_mib": 128' "$3/disk.img" \
		"PUT /network-interfaces/eth0 {\"iface_id\": \"eth0\", \"host_dev_name\": \"$MIGDEV_TAP\", \"guest_mac\": \"$MIGDEV_GUEST_MAC\"}" \
		"PUT /vsock {\"guest_cid\": 3, \"uds_path\": \"$3/v.sock\"}"
}

# migdev_ask NAME WHAT N CMD: sends CMD to the agent (fd 7, $log) and waits for its Nth
# KILN-SNAP-WHAT line, which is left in answer; fails NAME unless it says ok (blk: crc=).
migdev_ask() {
	echo "$4" >&7
	if ! wait_for 90 at_least "$log" "KILN-SNAP-$2 " "$3"; then
		fail "$1" "the guest did not answer \"$4\"" "$log"
		return 1
	fi
	answer=$(agent_lines "$log" "KILN-SNAP-$2 " | sed -n "$3p" | grep -o "KILN-SNAP-$2 .*")
	if [[ "$answer" != "KILN-SNAP-$2 ok"* && "$answer" != "KILN-SNAP-$2 crc="* ]]; then
		fail "$1" "\"$4\": $answer" "$log"
		return 1
	fi
}

# migdev_devices NAME N NETNS UDS: the Nth blk, net and vsock checks on the guest (fd 7, $log):
# the drive reads as disk.img ($disk_crc), a TCP echo in NETNS ("-": this one) on the TAP's host
# address answers, and so does a unix echo at UDS_$MIGDEV_VSOCK_PORT. Appends to devdetail.
migdev_devices() {
	local name=$1 n=$2 ns=$3 uds=$4 answer
	migdev_ask "$name" BLK "$n" blk || return 1
	if [ "$answer" != "KILN-SNAP-BLK crc=$disk_crc bytes=$((4 << 20))" ]; then
		fail "$name" "the drive read back as \"$answer\", disk.img has crc $disk_crc" "$log"
		return 1
	fi
	migdev_echo_stop
	rm -f "${uds}_$MIGDEV_VSOCK_PORT"
	migdev_echo "$E2E_OUT/$name-net$n.log" "$ns" tcp "$MIGDEV_HOST_IP" "$MIGDEV_NET_PORT" ||
		{ fail "$name" "the host's TCP echo did not listen" "$E2E_OUT/$name-net$n.log"; return 1; }
	migdev_echo "$E2E_OUT/$name-vsock$n.log" - unix "${uds}_$MIGDEV_VSOCK_PORT" ||
		{ fail "$name" "the host's vsock echo did not listen" "$E2E_OUT/$name-vsock$n.log"; return 1; }
	migdev_ask "$name" NET "$n" "net $MIGDEV_GUEST_IP/30 $MIGDEV_HOST_IP $MIGDEV_NET_PORT" || return 1
	devdetail+=" net: ${answer#KILN-SNAP-NET ok };"
	migdev_ask "$name" VSOCK "$n" "vsock $MIGDEV_VSOCK_PORT" || return 1
	devdetail+=" vsock: ${answer#KILN-SNAP-VSOCK ok } via ${uds}_$MIGDEV_VSOCK_PORT;"
}

# migdev_cleanup: stops whatever kvm_migrate_devices started, and removes what it made.
migdev_cleanup() {
	local p
	migdev_echo_stop
	for p in "$spid" "$dpid" "$d0pid"; do
		[ -n "$p" ] && kill -0 "$p" 2>/dev/null && snap_stop "$p"
	done
	exec 7>&- 8>&-
	ip link del "$MIGDEV_TAP" 2>/dev/null
	mig_netns_del
	rm -rf "$dir"
}

# migdev_run NAME: the body of kvm_migrate_devices (its locals); returns at the first failure.
migdev_run() {
	local name=$1 r rc
	if ! net_tun_ready; then
		fail "$name" "no /dev/net/tun (is the tun module loaded?)"
		return 1
	fi
	if ! mig_netns >"$E2E_OUT/$name-net.log" 2>&1 || ! migdev_tap - >>"$E2E_OUT/$name-net.log" 2>&1; then
		fail "$name" "cannot set up the namespace, veth pair and TAP" "$E2E_OUT/$name-net.log"
		return 1
	fi
	mig_setup "$dir"
	head -c $((4 << 20)) /dev/urandom >"$dir/disk.img"
	disk_crc=$(/usr/bin/python3 -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()))' "$dir/disk.img")
	migdev_boot "$name" migrate-dev-src "$dir"
	r=$?
	spid=$pid
	[ $r = 0 ] || return 1
	migdev_devices "$name" 1 - "$dir/v.sock" || return 1
	devdetail=" on the source:${devdetail%;};"

	# The destination as it comes, with the source's vsock uds_path: the source still listens
	# there, so the destination cannot build the VM, and the VM runs on at the source.
	echo churn >&7
	wait_for 60 agent_has "$log" 'KILN-SNAP-CHURNING' ||
		{ fail "$name" "the guest did not start rewriting its memory" "$log"; return 1; }
	mig_dest "$name-dst0" "$dir/dst0.sock" "$dir/console-dst" "tcp:10.77.0.2:$port" ||
		{ fail "$name" "the first destination's API socket did not appear" "$dlog"; return 1; }
	d0pid=$dpid dpid=
	r=$(api_call "$sock" PUT /migration/start "{\"uri\": \"tcp:10.77.0.2:$port\", \"mode\": \"postcopy\"}")
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /migration/start #1 answered $r" "$log"; return 1; }
	if ! wait_for 120 eval '[ "$(mig_field "$sock" state)" = failed ]'; then
		fail "$name" "the migration to a destination on the source's uds_path: $(api_call "$sock" GET /migration)" "$dlog"
		return 1
	fi
	if ! log_has "$dlog" "cannot build the microVM: vsock: cannot listen on $dir/v.sock: Address already in use"; then
		fail "$name" "the first destination failed for another reason than the uds_path in use" "$dlog"
		return 1
	fi
	if ! mig_field "$sock" error | grep -q 'the destination refused: .*Address already in use'; then
		fail "$name" "the source was not told why the destination failed: $(mig_field "$sock" error)" "$log"
		return 1
	fi
	devdetail+=" a destination keeping the source's uds_path failed (\"$(grep -o 'cannot build the microVM: [^(]*' "$dlog" | head -1 | sed 's/ *$//')\"; the source saw \"$(mig_field "$sock" error)\") and the VM ran on at the source, where"
	snap_stop "$d0pid"
	d0pid=
	if ! api_call "$sock" GET / | grep -q '"state": *"Running"'; then
		fail "$name" "after the failed migration the source is $(api_call "$sock" GET /)" "$log"
		return 1
	fi
	if [ ! -S "$dir/v.sock" ]; then
		fail "$name" "after the failed migration the source's $dir/v.sock is gone" "$log"
		return 1
	fi
	migdev_devices "$name" 2 - "$dir/v.sock" || return 1
	devdetail=${devdetail%;}

	# The destination with its own uds_path (vsock_override), in namespace B with a TAP of the
	# source's name that kiln creates there.
	dlog=$E2E_OUT/$name-dst.log
	rm -f "$dir/dst.sock"
	ip netns exec "$mig_ns" timeout --kill-after=5 600 "$KILN" --api-sock "$dir/dst.sock" --id "$name-dst" \
		<"$dir/console-dst" >"$dlog" 2>&1 &
	dpid=$!
	wait_for 10 test -S "$dir/dst.sock" || { fail "$name" "the destination's API socket did not appear" "$dlog"; return 1; }
	r=$(api_call "$dir/dst.sock" PUT /migration/incoming "{\"uri\": \"tcp:10.77.0.2:$((port + 1))\", \"vsock_override\": {\"uds_path\": \"$dir/v-dst.sock\"}}")
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /migration/incoming answered $r" "$dlog"; return 1; }
	r=$(api_call "$sock" PUT /migration/start "{\"uri\": \"tcp:10.77.0.2:$((port + 1))\", \"mode\": \"postcopy\"}")
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /migration/start #2 answered $r" "$log"; return 1; }
	if ! wait_for 200 mig_gone "$spid"; then
		fail "$name" "the source did not finish: $(api_call "$sock" GET /migration)" "$log"
		tail -20 "$dlog"
		return 1
	fi
	wait "$spid"
	rc=$?
	spid=
	if [ $rc != 0 ] || ! grep -q 'migration to .* completed' "$log"; then
		fail "$name" "the source exited $rc" "$log"
		tail -20 "$dlog"
		return 1
	fi
	devdetail+="; then postcopy to a destination with its own uds_path $(grep -o 'completed in [0-9]* ms (downtime [0-9]* ms)' "$log" | head -1);"
	exec 7>&-
	exec 7<>"$dir/console-dst"
	pid=$dpid log=$dlog sock=$dir/dst.sock
	if ! wait_for 120 log_has "$log" 'migration from .* completed'; then
		fail "$name" "the destination did not complete: $(api_call "$sock" GET /migration)" "$log"
		return 1
	fi
	# kiln made the TAP there (a non-persistent one, gone with it).
	r=$(ip -n "$mig_ns" -d link show "$MIGDEV_TAP" 2>&1)
	if [[ "$r" != *"tun type tap"*"persist off"* ]]; then
		fail "$name" "no TAP $MIGDEV_TAP of the destination's in $mig_ns: $r" "$log"
		return 1
	fi
	if ! migdev_tap "$mig_ns" >>"$E2E_OUT/$name-net.log" 2>&1; then
		fail "$name" "cannot configure $MIGDEV_TAP in $mig_ns: $(ip -n "$mig_ns" link show 2>&1 | tr '\n' ' ')" "$E2E_OUT/$name-net.log"
		return 1
	fi
	echo still >&7
	wait_for 60 agent_has "$log" 'KILN-SNAP-STILL' || { fail "$name" "the guest did not stop rewriting" "$log"; return 1; }
	snap_verify "$name" "$log" 1 || return 1
	devdetail+=" on the destination (its TAP made by kiln in $mig_ns):"
	migdev_devices "$name" 1 "$mig_ns" "$dir/v-dst.sock" || return 1
	devdetail=${devdetail%;}
	snap_done "$name" "$(agent_lines "$log" 'KILN-SNAP-VERIFIED' | head -1 | grep -o 'pages=[0-9]* bad=[0-9]*'), $(agent_lines "$log" 'KILN-SNAP-STILL' | head -1 | grep -o 'rewritten=[0-9]*') during the migration; drive crc $disk_crc both sides;$devdetail"
}

# Postcopy with devices: the source has a read-only drive, eth0 on a TAP and vsock, all three
# checked from the guest; a destination given the source's vsock uds_path (still the source's
# listening socket) cannot build the VM, which runs on at the source; a destination in another
# network namespace, with a TAP of the same name there and its own uds_path (vsock_override),
# takes the VM over postcopy while the guest rewrites its memory; there the drive reads the
# same, TCP reaches the host through the new TAP, vsock reaches the host at the new uds_path.
kvm_migrate_devices() {
	local name=migrate-devices dir=${TMPDIR:-/tmp}/kiln-migd.$$ port=$((30000 + $$ % 10000))
	local mig_ns='' spid='' dpid='' d0pid='' disk_crc devdetail='' migdev_pids=()
	sock=$dir/src.sock
	migdev_run "$name"
	migdev_cleanup
}
