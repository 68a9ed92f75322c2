# Live migration for bench/run (sourced inside L1): the snapshot agent's guest (2 vCPUs,
# $mg_mib MiB, $mg_fill MiB of it filled with a pattern whose CRC it keeps per page) migrated
# over a unix socket, precopy and postcopy, idle and while the agent's churn thread rewrites its
# pages, $mg_runs times each; by kiln, then by QEMU -M microvm (the same kernel, initramfs, boot
# arguments and agent). Each monitor boots the guest once and migrates it on from destination to
# destination (idle precopy, idle postcopy, churn precopy, churn postcopy, then again), and at
# the end the guest, stilled, verifies every page it filled. Sets mig_md_rows, mig_json_rows and
# mig_md_text. Uses bench/run's work, guest, say, median and ratio; needs /usr/bin/python3 (the
# QMP client). Alone: `KILN_BENCH_ONLY=migrate bench/run`, which prints the rows without
# touching latest.*. KILN_BENCH_MIGRATE_RUNS: migrations per figure (default 2);
# KILN_BENCH_KILN: the kiln binary (default build/kiln, copied before use).

mg_runs=${KILN_BENCH_MIGRATE_RUNS:-2}
mg_mib=256 mg_fill=160 mg_downtime=300
# QEMU precopy that has not converged after this many dirty-bitmap syncs is made to switch over
# (downtime-limit raised), as kiln switches over after 30 rounds.
mg_qemu_max_syncs=31
mg_pids=() # what this group started and may have to stop

# mg_nap SECONDS: sleeps without a process of its own (L1's one CPU is the guest's too): a
# read that times out on a FIFO ($mg_dir/nap, held open in mg_nap_fd) nobody writes.
mg_nap() { read -rt "$1" -u "$mg_nap_fd" _ || true; }

# mg_wait SECONDS CMD...: polls CMD every 0.1 s until it succeeds; false on timeout.
mg_wait() {
	local limit=$1 i
	shift
	for ((i = 0; i < limit * 10; i++)); do
		"$@" && return 0
		mg_nap 0.1
	done
	return 1
}

# mg_has LOG TEXT: whether LOG (console and monitor lines) holds TEXT; read by the shell itself.
mg_has() {
	local text=''
	[ -r "$1" ] && IFS= read -rd '' text <"$1"
	[[ "$text" == *"$2"* ]]
}
# mg_count LOG PATTERN: how many lines of LOG match.
mg_count() { tr -d '\r' <"$1" 2>/dev/null | grep -ac -- "$2" || true; }
mg_at_least() { [ "$(mg_count "$1" "$2")" -ge "$3" ]; }
mg_gone() { ! kill -0 "$1" 2>/dev/null; }

# mg_stop_all: stops every process this group started that still runs.
mg_stop_all() {
	local p
	for p in "${mg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${mg_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	mg_pids=()
}

# mg_fail MESSAGE [LOG...]: reports, with the logs' last lines, stops everything, exits 1.
mg_fail() {
	local l
	say "migrate: $1"
	shift
	for l in "$@"; do
		[ -s "$l" ] || continue
		say "last lines of $l:"
		tail -n 25 "$l" | tr -d '\r' | sed 's/^/  | /' >&2
	done
	mg_stop_all
	exit 1
}

# mg_api SOCK METHOD PATH [BODY]: "CODE BODY" of one request to kiln's API.
mg_api() {
	local args=(-s -m 10 -o "$mg_dir/api.body" -w '%{http_code}' --unix-socket "$1" -X "$2"
		"http://localhost$3") code
	[ -n "${4:-}" ] && args+=(-H 'Content-Type: application/json' -d "$4")
	code=$(curl "${args[@]}" 2>/dev/null) || code=000
	printf '%s %s\n' "$code" "$(cat "$mg_dir/api.body" 2>/dev/null)"
}

# mg_parse JSON: the numbers and strings of a flat JSON object into mg_j (strings unquoted).
declare -gA mg_j=()
mg_parse() {
	local s=$1 re='"([a-z_0-9]+)": *("[^"]*"|[-0-9.a-z]+)'
	mg_j=()
	while [[ $s =~ $re ]]; do
		mg_j[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]//\"/}
		s=${s#*"${BASH_REMATCH[0]}"}
	done
}

# mg_qmp_tool: writes $mg_dir/qmig.py, the QMP client for QEMU's migrations:
#   qmig.py hop SRC_QMP DST_QMP URI precopy|postcopy DOWNTIME_MS MAX_SYNCS TIMEOUT_S
# migrates (postcopy: postcopy-ram on both sides, postcopy-blocktime on the destination,
# migrate-start-postcopy once the first pass is done, that is once the dirty-bitmap sync count
# reaches 2, as libvirt's --postcopy-after-precopy does), waits for the destination to run, quits
# the source and prints key=value figures; exit 1 with the reason on stderr.
#   qmig.py running QMP   exit 0 when that QEMU's VM runs
mg_qmp_tool() {
	cat >"$mg_dir/qmig.py" <<'PY'
import json, socket, sys, time

class QMP:
    def __init__(self, path, timeout=30):
        end = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        self.f = self.s.makefile('rw')
        json.loads(self.f.readline())
        self.cmd('qmp_capabilities')

    def cmd(self, name, **args):
        self.f.write(json.dumps({'execute': name, 'arguments': args}) + '\n')
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError('%s: the QMP connection closed' % name)
            m = json.loads(line)
            if 'event' in m:
                continue
            if 'error' in m:
                raise RuntimeError('%s: %s' % (name, m['error'].get('desc')))
            return m.get('return')

def hop(src, dst, uri, mode, limit_ms, max_syncs, timeout):
    post = mode == 'postcopy'
    s, d = QMP(src), QMP(dst)
    # Every hop sets postcopy-ram on both sides: a QEMU that came in by postcopy still has it,
    # and a source that has it when its destination has not fails the migration.
    d.cmd('migrate-set-capabilities', capabilities=[
        {'capability': 'postcopy-ram', 'state': post},
        {'capability': 'postcopy-blocktime', 'state': post}])
    s.cmd('migrate-set-capabilities', capabilities=[
        {'capability': 'postcopy-ram', 'state': post}])
    d.cmd('migrate-incoming', uri=uri)
    # QEMU's default max-bandwidth is 32 MiB/s; kiln has no limit.
    s.cmd('migrate-set-parameters', **{'downtime-limit': int(limit_ms),
                                       'max-bandwidth': 1 << 40})
    s.cmd('migrate', uri=uri)
    end = time.monotonic() + float(timeout)
    asked = forced = seen = False
    pre = None
    while True:
        q = s.cmd('query-migrate')
        st, ram = q.get('status'), q.get('ram', {})
        # A source that came in by migration answers "completed" for that one (total-time 0)
        # until this one has started.
        if st == 'completed' and (seen or q.get('total-time', 0) > 0):
            break
        seen = seen or st not in ('completed', 'none')
        if st in ('failed', 'cancelled'):
            raise RuntimeError('the migration %s: %s' % (st, q.get('error-desc', '?')))
        syncs = ram.get('dirty-sync-count', 0)
        if post and not asked and st == 'active' and syncs >= 2:
            s.cmd('migrate-start-postcopy')
            asked = True
        if st == 'postcopy-active' and pre is None:
            pre = ram.get('normal', 0) + ram.get('duplicate', 0)
        if not post and not forced and syncs >= int(max_syncs):
            s.cmd('migrate-set-parameters', **{'downtime-limit': 600000})
            forced = True
        if time.monotonic() > end:
            raise RuntimeError('not done after %s s: %s' % (timeout, json.dumps(q)))
        time.sleep(0.05)
    while not d.cmd('query-status').get('running'):
        if time.monotonic() > end:
            raise RuntimeError('the destination does not run')
        time.sleep(0.05)
    dq = d.cmd('query-migrate')
    vb = dq.get('postcopy-vcpu-blocktime') or []
    print('total_ms=%s downtime_ms=%s syncs=%s normal=%s zero=%s pre=%s requests=%s '
          'blocktime_ms=%s vcpu_blocktime_ms=%s forced=%d postcopy=%d' % (
              q.get('total-time'), q.get('downtime'), ram.get('dirty-sync-count'),
              ram.get('normal'), ram.get('duplicate'), '-' if pre is None else pre,
              ram.get('postcopy-requests', 0), dq.get('postcopy-blocktime', '-'),
              ','.join(str(v) for v in vb) or '-', forced, pre is not None))
    try:
        s.cmd('quit')
    except (EOFError, OSError):
        pass

try:
    if sys.argv[1] == 'hop':
        hop(*sys.argv[2:9])
    elif sys.argv[1] == 'running':
        sys.exit(0 if QMP(sys.argv[2], 5).cmd('query-status').get('running') else 1)
    else:
        raise RuntimeError('unknown command ' + sys.argv[1])
except Exception as e:
    print('qmig: %s' % e, file=sys.stderr)
    sys.exit(1)
PY
}

# mg_console N: a fresh console FIFO for hop N, held open (its fd in mg_fd_new).
mg_console() {
	rm -f "$mg_dir/con$1"
	mkfifo "$mg_dir/con$1"
	exec {mg_fd_new}<>"$mg_dir/con$1"
}

# mg_say TEXT: a line for the guest's console (the current source's or destination's).
mg_say() { echo "$1" >&"$mg_fd"; }

# mg_ask WORD MARKER WHAT: says WORD to the guest and waits for one more MARKER line; WHAT names
# the step in the failure.
mg_ask() {
	local n
	n=$(mg_count "$mg_log" "$2")
	mg_say "$1"
	mg_wait 60 mg_at_least "$mg_log" "$2" $((n + 1)) ||
		mg_fail "$mg_who: the guest did not $3" "$mg_log"
}

# mg_still / mg_churn: stops, or starts, the guest's churn thread.
mg_still() { mg_ask still KILN-SNAP-STILL 'stop churning'; }
mg_churn() { mg_ask churn KILN-SNAP-CHURNING 'start churning'; }

# mg_verify: stills the guest, has it verify every page, sets mg_verified to its answer.
mg_verify() {
	mg_say verify
	mg_wait 200 mg_has "$mg_log" 'KILN-SNAP-VERIFIED' ||
		mg_fail "$mg_who: the guest did not answer verify" "$mg_log"
	mg_verified=$(tr -d '\r' <"$mg_log" | grep -ao 'KILN-SNAP-VERIFIED pages=[0-9]* bad=[0-9]*' | tail -1)
	[[ "$mg_verified" == *' bad=0' ]] ||
		mg_fail "$mg_who: pages changed after the migrations: $mg_verified" "$mg_log"
}

# mg_kiln_boot: the source kiln (mg_pid, mg_sock, mg_log, console fd mg_fd), its guest filled.
mg_kiln_boot() {
	mg_hop=0 mg_who=kiln mg_t0=$SECONDS
	mg_console 0
	mg_fd=$mg_fd_new mg_sock=$mg_dir/k0.sock mg_log=$work/mig-kiln-0.log
	rm -f "$mg_sock"
	"$mg_kiln" --api-sock "$mg_sock" --id bench-mig-0 --config-file "$work/kiln-mig.json" \
		<"$mg_dir/con0" >"$mg_log" 2>&1 &
	mg_pid=$!
	mg_pids+=("$mg_pid")
	mg_wait 200 mg_has "$mg_log" 'KILN-SNAP-READY' ||
		mg_fail "kiln: the guest never filled its memory" "$mg_log"
	say "migrate: kiln's guest booted and filled its memory in $((SECONDS - mg_t0)) s"
}

# mg_kiln_hop MODE WORKLOAD: migrates the current kiln to a new destination kiln over a unix
# socket; appends "total downtime pre rounds on_request faults on_fault background p50 p99" to
# $work/mig-kiln-MODE-WORKLOAD; the destination becomes the current kiln.
mg_kiln_hop() {
	local mode=$1 wl=$2 n=$((mg_hop + 1)) dsock dlog dpid uri r line i rc
	local t0=${EPOCHREALTIME/./} t1 t2 t3
	dsock=$mg_dir/k$n.sock dlog=$work/mig-kiln-$n.log uri=unix:$mg_dir/k$n.mig
	mg_console "$n"
	rm -f "$dsock" "${uri#unix:}"
	"$mg_kiln" --api-sock "$dsock" --id "bench-mig-$n" --migrate-in "$uri" \
		<"$mg_dir/con$n" >"$dlog" 2>&1 &
	dpid=$!
	mg_pids+=("$dpid")
	mg_wait 10 test -S "$dsock" || mg_fail "kiln hop $n: no API socket on the destination" "$dlog"
	t1=${EPOCHREALTIME/./}
	r=$(mg_api "$mg_sock" PUT /migration/start \
		"{\"uri\": \"$uri\", \"mode\": \"$mode\", \"max_downtime_ms\": $mg_downtime}")
	[ "${r%% *}" = 204 ] || mg_fail "kiln hop $n: PUT /migration/start answered $r" "$mg_log"
	mg_wait 300 mg_gone "$mg_pid" ||
		mg_fail "kiln hop $n ($mode, $wl): the source did not finish: $(mg_api "$mg_sock" GET /migration)" "$mg_log" "$dlog"
	t2=${EPOCHREALTIME/./}
	rc=0
	wait "$mg_pid" || rc=$?
	line=$(tr -d '\r' <"$mg_log" | grep -ao 'completed in [0-9]* ms (downtime [0-9]* ms): [0-9]* pages before the switch-over in [0-9]* round(s), [0-9]* on request' | tail -1 || true)
	if [ "$rc" != 0 ] || [ -z "$line" ]; then
		mg_fail "kiln hop $n ($mode, $wl): the source exited $rc" "$mg_log" "$dlog"
	fi
	# The destination says completed once it has every page, before the source hears it.
	for ((i = 0; i < 100; i++)); do
		r=$(mg_api "$dsock" GET /migration)
		mg_parse "$r"
		[ "${mg_j[state]:-}" = completed ] && break
		mg_nap 0.1
	done
	[ "${mg_j[state]:-}" = completed ] ||
		mg_fail "kiln hop $n ($mode, $wl): the destination is not done: $r" "$dlog"
	t3=${EPOCHREALTIME/./}
	# "completed in T ms (downtime D ms): P pages before the switch-over in R round(s), Q on request"
	# shellcheck disable=SC2046 # the five numbers, split
	set -- $(tr -c '0-9\n' ' ' <<<"$line")
	echo "$1 $2 $3 $4 $5 ${mg_j[faults]} ${mg_j[pages_on_fault]} ${mg_j[pages_background]}" \
		"${mg_j[fault_p50_us]} ${mg_j[fault_p99_us]}" >>"$work/mig-kiln-$mode-$wl"
	say "migrate: kiln $mode, $wl: $line; destination: ${mg_j[faults]} faults, ${mg_j[pages_on_fault]} pages on fault (p50 ${mg_j[fault_p50_us]} us, p99 ${mg_j[fault_p99_us]} us), ${mg_j[pages_background]} in the background, ${mg_j[requests]:-?} requests; destination up in $(((t1 - t0) / 1000)) ms, source gone $(((t2 - t1) / 1000)) ms after the PUT, destination's GET /migration completed $(((t3 - t2) / 1000)) ms later"
	exec {mg_fd}>&-
	mg_fd=$mg_fd_new mg_pid=$dpid mg_sock=$dsock mg_log=$dlog mg_hop=$n
}

# mg_qemu_start N [ARGS...]: a QEMU for hop N (console con N, QMP q N.qmp, log), pid in
# mg_qpid.
mg_qemu_start() {
	local n=$1
	shift
	mg_console "$n"
	rm -f "$mg_dir/q$n.qmp"
	"${mg_qemu[@]}" -qmp "unix:$mg_dir/q$n.qmp,server=on,wait=off" "$@" \
		<"$mg_dir/con$n" >"$work/mig-qemu-$n.log" 2>&1 &
	mg_qpid=$!
	mg_pids+=("$mg_qpid")
	mg_wait 30 test -S "$mg_dir/q$n.qmp" || mg_fail "QEMU $n: no QMP socket" "$work/mig-qemu-$n.log"
}

mg_qemu_boot() {
	mg_hop=0 mg_who=QEMU mg_t0=$SECONDS
	mg_qemu_start 0
	mg_fd=$mg_fd_new mg_pid=$mg_qpid mg_log=$work/mig-qemu-0.log
	mg_wait 200 mg_has "$mg_log" 'KILN-SNAP-READY' ||
		mg_fail "QEMU: the guest never filled its memory" "$mg_log"
	say "migrate: QEMU's guest booted and filled its memory in $((SECONDS - mg_t0)) s"
}

# mg_qemu_hop MODE WORKLOAD: as mg_kiln_hop, for QEMU; appends "total downtime syncs normal zero
# pre requests blocktime vcpu_blocktime forced postcopy" to $work/mig-qemu-MODE-WORKLOAD. A
# failed postcopy (QEMU's needs userfaultfd on shared memory) is recorded in
# mg_qemu_post_failed, and the guest goes on from the source when it still runs.
mg_qemu_hop() {
	local mode=$1 wl=$2 n=$((mg_hop + 1)) line dpid rc=0 kv
	mg_qemu_start "$n" -incoming defer
	dpid=$mg_qpid
	line=$(/usr/bin/python3 "$mg_dir/qmig.py" hop "$mg_dir/q$mg_hop.qmp" "$mg_dir/q$n.qmp" \
		"unix:$mg_dir/q$n.mig" "$mode" "$mg_downtime" "$mg_qemu_max_syncs" 300 \
		2>"$work/mig-qemu-$n.err") || rc=$?
	if [ "$rc" != 0 ]; then
		say "migrate: QEMU $mode, $wl failed: $(cat "$work/mig-qemu-$n.err")"
		cat "$work/mig-qemu-$n.err" >>"$work/mig-qemu-$mode-$wl.failed"
		kill "$dpid" 2>/dev/null || true
		wait "$dpid" 2>/dev/null || true
		exec {mg_fd_new}>&-
		[ "$mode" = postcopy ] && mg_qemu_post_failed="$(cat "$work/mig-qemu-$n.err")"
		# The source runs on after a failed precopy, or a postcopy that never switched over;
		# otherwise the guest is lost and QEMU's chain ends here.
		if ! /usr/bin/python3 "$mg_dir/qmig.py" running "$mg_dir/q$mg_hop.qmp" 2>/dev/null; then
			mg_qemu_lost="the guest was lost in a failed $mode migration"
			say "migrate: QEMU: $mg_qemu_lost; no more QEMU migrations"
		fi
		return 0
	fi
	mg_wait 30 mg_gone "$mg_pid" || kill "$mg_pid" 2>/dev/null || true
	wait "$mg_pid" 2>/dev/null || true
	declare -A f
	for kv in $line; do f[${kv%%=*}]=${kv#*=}; done
	echo "${f[total_ms]} ${f[downtime_ms]} ${f[syncs]} ${f[normal]} ${f[zero]} ${f[pre]}" \
		"${f[requests]} ${f[blocktime_ms]} ${f[vcpu_blocktime_ms]} ${f[forced]} ${f[postcopy]}" \
		>>"$work/mig-qemu-$mode-$wl"
	say "migrate: QEMU $mode, $wl: $line"
	exec {mg_fd}>&-
	mg_fd=$mg_fd_new mg_pid=$dpid mg_log=$work/mig-qemu-$n.log mg_hop=$n
}

# mg_chain KIND: boots KIND (kiln or qemu), runs every migration $mg_runs times, verifies.
mg_chain() {
	local kind=$1 i wl mode
	"mg_${kind}_boot"
	for i in $(seq 1 "$mg_runs"); do
		for wl in idle churn; do
			[ "$wl" = churn ] && mg_churn
			for mode in precopy postcopy; do
				[ "$kind" = qemu ] && [ "$mode" = postcopy ] && [ -n "$mg_qemu_post_failed" ] &&
					continue
				[ "$kind" = qemu ] && [ -n "$mg_qemu_lost" ] && break 3
				"mg_${kind}_hop" "$mode" "$wl"
			done
			[ "$wl" = churn ] && [ -z "$mg_qemu_lost" ] && mg_still
		done
	done
	mg_t0=$SECONDS
	if [ "$kind" = qemu ] && [ -n "$mg_qemu_lost" ]; then
		mg_verified="not checked: $mg_qemu_lost"
	else
		mg_verify
	fi
	say "migrate: $kind after $mg_hop migrations: $mg_verified ($((SECONDS - mg_t0)) s)"
	kill "$mg_pid" 2>/dev/null || true
	wait "$mg_pid" 2>/dev/null || true
	exec {mg_fd}>&-
}

# mg_col FILE K: the median of column K of FILE ("" when FILE is missing or K is not a number).
mg_col() {
	local v
	[ -s "$1" ] || return 0
	v=$(cut -d' ' -f"$2" "$1" | grep -E '^[0-9]+(\.[0-9]+)?$' || true)
	[ -z "$v" ] || median <<<"$v"
}
# mg_all FILE K: column K of every line of FILE, joined by " / ".
mg_all() { [ -s "$1" ] && cut -d' ' -f"$2" "$1" | paste -sd/ | sed 's|/| / |g' || true; }
# mg_ratio A B: A/B, or — when either is missing.
mg_ratio() { [ -n "$1" ] && [ -n "$2" ] && ratio "$1" "$2" || echo —; }
# mg_num V: V, or null when it is not a number (for JSON).
mg_num() { [[ "$1" =~ ^[0-9]+(\.[0-9]+)?$ ]] && echo "$1" || echo null; }
# mg_qemu_cell FILE K: "QEMU -M microvm: median (each run)", or why there is none.
mg_qemu_cell() {
	if [ -s "$1" ]; then
		echo "QEMU -M microvm: $(mg_col "$1" "$2") ($(mg_all "$1" "$2"))"
	elif [ -s "$1.failed" ]; then
		echo "QEMU -M microvm: failed ($(head -1 "$1.failed" | sed 's/^qmig: //; s/|/\\|/g'))"
	else
		echo "QEMU -M microvm: not measured"
	fi
}

# mg_rows: mig_md_rows and mig_json_rows from $work/mig-{kiln,qemu}-MODE-WORKLOAD.
mg_rows() {
	local wl k q t d qt qd pre post fig
	mig_md_rows='' mig_json_rows=''
	for wl in idle churn; do
		k=$work/mig-kiln-precopy-$wl q=$work/mig-qemu-precopy-$wl
		t=$(mg_col "$k" 1) d=$(mg_col "$k" 2) qt=$(mg_col "$q" 1) qd=$(mg_col "$q" 2)
		fig="migration, $wl guest, precopy (max downtime $mg_downtime ms)"
		pre="QEMU: $(mg_all "$q" 3) dirty-bitmap syncs; $(mg_all "$q" 4) pages + $(mg_all "$q" 5) zero pages sent in all"
		[ -s "$q" ] || pre=$(mg_qemu_cell "$q" 1)
		grep -q ' 1 [01]$' "$q" 2>/dev/null && pre+=" (made to switch over after $mg_qemu_max_syncs syncs)"
		mig_md_rows+="| $fig: total (ms) | $t ($(mg_all "$k" 1)) | $(mg_qemu_cell "$q" 1) | $(mg_ratio "$t" "$qt") |
| $fig: downtime (ms) | $d ($(mg_all "$k" 2)) | $(mg_qemu_cell "$q" 2) | $(mg_ratio "$d" "$qd") |
| $fig: rounds; pages sent before the switch-over | $(mg_all "$k" 4) rounds; $(mg_all "$k" 3) pages | $pre | — |
"
		mig_json_rows+="    { \"figure\": \"migrate_${wl}_precopy_total_ms\", \"kiln\": $(mg_num "$t"), \"reference\": $(mg_num "$qt"), \"reference_name\": \"qemu-microvm-migrate\", \"ratio\": $(mg_num "$(mg_ratio "$t" "$qt")"), \"runs\": $mg_runs },
    { \"figure\": \"migrate_${wl}_precopy_downtime_ms\", \"kiln\": $(mg_num "$d"), \"reference\": $(mg_num "$qd"), \"reference_name\": \"qemu-microvm-migrate\", \"ratio\": $(mg_num "$(mg_ratio "$d" "$qd")"), \"kiln_rounds\": $(mg_num "$(mg_col "$k" 4)"), \"kiln_pages_before_switchover\": $(mg_num "$(mg_col "$k" 3)"), \"qemu_dirty_syncs\": $(mg_num "$(mg_col "$q" 3)"), \"qemu_normal_pages\": $(mg_num "$(mg_col "$q" 4)"), \"qemu_zero_pages\": $(mg_num "$(mg_col "$q" 5)"), \"runs\": $mg_runs },
"
		k=$work/mig-kiln-postcopy-$wl q=$work/mig-qemu-postcopy-$wl
		t=$(mg_col "$k" 1) d=$(mg_col "$k" 2) qt=$(mg_col "$q" 1) qd=$(mg_col "$q" 2)
		fig="migration, $wl guest, postcopy"
		if [ -s "$q" ]; then
			pre="QEMU: ≈ $(mg_all "$q" 6) before; $(mg_all "$q" 7) postcopy requests"
			# A run that never switched over: QEMU converged at the end of its first pass.
			grep -q ' 0$' "$q" && pre+=" (\"-\": that run converged at the end of its first pass and never switched over, as with libvirt's --postcopy-after-precopy: a precopy)"
			post="QEMU: destination's postcopy-blocktime $(mg_all "$q" 8) ms (per vCPU, each run: $(mg_all "$q" 9) ms); no per-fault figures"
		else
			pre=$(mg_qemu_cell "$q" 1) post=$pre
		fi
		mig_md_rows+="| $fig: total (ms) | $t ($(mg_all "$k" 1)) | $(mg_qemu_cell "$q" 1) | $(mg_ratio "$t" "$qt") |
| $fig: downtime (ms) | $d ($(mg_all "$k" 2)) | $(mg_qemu_cell "$q" 2) | $(mg_ratio "$d" "$qd") |
| $fig: pages before the switch-over; fetched on request | $(mg_all "$k" 3); $(mg_all "$k" 5) ($(mg_all "$k" 7) on fault, $(mg_all "$k" 8) in the background) | $pre | — |
| $fig: destination faults; fault latency p50, p99 (µs) | $(mg_all "$k" 6); p50 $(mg_all "$k" 9), p99 $(mg_all "$k" 10) | $post | — |
"
		mig_json_rows+="    { \"figure\": \"migrate_${wl}_postcopy_total_ms\", \"kiln\": $(mg_num "$t"), \"reference\": $(mg_num "$qt"), \"reference_name\": \"qemu-microvm-migrate-postcopy\", \"ratio\": $(mg_num "$(mg_ratio "$t" "$qt")"), \"runs\": $mg_runs },
    { \"figure\": \"migrate_${wl}_postcopy_downtime_ms\", \"kiln\": $(mg_num "$d"), \"reference\": $(mg_num "$qd"), \"reference_name\": \"qemu-microvm-migrate-postcopy\", \"ratio\": $(mg_num "$(mg_ratio "$d" "$qd")"), \"kiln_pages_before_switchover\": $(mg_num "$(mg_col "$k" 3)"), \"kiln_pages_on_request\": $(mg_num "$(mg_col "$k" 5)"), \"kiln_faults\": $(mg_num "$(mg_col "$k" 6)"), \"kiln_pages_on_fault\": $(mg_num "$(mg_col "$k" 7)"), \"kiln_pages_background\": $(mg_num "$(mg_col "$k" 8)"), \"kiln_fault_p50_us\": $(mg_num "$(mg_col "$k" 9)"), \"kiln_fault_p99_us\": $(mg_num "$(mg_col "$k" 10)"), \"qemu_pages_before_switchover\": $(mg_num "$(mg_col "$q" 6)"), \"qemu_postcopy_requests\": $(mg_num "$(mg_col "$q" 7)"), \"qemu_postcopy_blocktime_ms\": $(mg_num "$(mg_col "$q" 8)"), \"qemu_runs_switched_over\": $(mg_num "$(cut -d' ' -f11 "$q" 2>/dev/null | grep -c 1 || true)"), \"runs\": $mg_runs },
"
	done
}

migrate_benches() {
	local started=$SECONDS s0 kv khops ksecs qv qhops qsecs boot
	mg_dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-mig.XXXXXX")
	# A private copy: build/kiln may be rebuilt while this runs.
	mg_kiln=$mg_dir/kiln
	cp "${KILN_BENCH_KILN:-build/kiln}" "$mg_kiln"
	mg_qmp_tool
	mkfifo "$mg_dir/nap"
	exec {mg_nap_fd}<>"$mg_dir/nap"
	mg_qemu_post_failed='' mg_qemu_lost=''
	rm -f "$work"/mig-*
	boot="console=ttyS0 quiet reboot=t panic=1 pci=off kiln.test=snapshot kiln.snap_mib=$mg_fill"
	cat >"$work/kiln-mig.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$guest/vmlinux",
                   "initrd_path": "$guest/initramfs.cpio.gz", "boot_args": "$boot" },
  "machine-config": { "vcpu_count": 2, "mem_size_mib": $mg_mib }
}
JSON
	mg_qemu=(qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off -accel kvm -cpu host -smp 2
		-m "$mg_mib" -object memory-backend-memfd,id=mem,size="${mg_mib}M"
		-machine memory-backend=mem -kernel "$guest/vmlinux" -initrd "$guest/initramfs.cpio.gz"
		-append "$boot" -nodefaults -no-user-config -nographic -serial stdio -no-reboot)

	s0=$SECONDS
	mg_chain kiln
	kv=$mg_verified khops=$mg_hop ksecs=$((SECONDS - s0))
	s0=$SECONDS
	mg_chain qemu
	qv=$mg_verified qhops=$mg_hop qsecs=$((SECONDS - s0))
	exec {mg_nap_fd}>&-
	rm -rf "$mg_dir"
	mg_rows

	mig_md_text="Migration rows (bench/migrate.sh): the snapshot agent's guest, 2 vCPUs and $mg_mib MiB, $mg_fill
MiB of it filled with a pattern whose CRC it keeps per page, migrated over a unix socket on
L1's tmpfs, $mg_runs times per figure (median, then each run's figure in brackets). Each monitor
boots the guest once and sends it on from process to process, each destination a fresh one
that becomes the next source: idle precopy, idle postcopy, then, with the agent's \`churn\`
thread rewriting the pages it filled as fast as it can (on one vCPU of two), precopy and
postcopy; $mg_runs times over. At the end the guest, stilled, read every page it filled: kiln
after $khops migrations \"$kv\", QEMU after $qhops \"$qv\".
kiln: \`kiln --api-sock S --migrate-in unix:P\`, \`PUT /migration/start\` with
\`max_downtime_ms\` $mg_downtime; total and downtime as the source logs them (its PUT to the
destination's COMPLETE; its pause to the destination's RUNNING), pages before the switch-over
and on request from the same line, faults and their latency from the destination's \`GET
/migration\` (its latency figures are the bounds of power-of-two buckets); postcopy sends one
round, then switches over. kiln sends every page of guest RAM in its first round, zero or not.
QEMU 7.2: the same kernel, initramfs, boot arguments and machine (\`-M microvm\`, memfd RAM),
\`-incoming defer\`, \`migrate-incoming\` and \`migrate\` over QMP, \`downtime-limit\`
$mg_downtime ms, \`max-bandwidth\` unlimited (its default is 32 MiB/s); total-time and downtime
from the source's \`query-migrate\` (there downtime ends when the source has sent the last of
the state, not when the destination runs); zero pages go as markers. A precopy still going
after $mg_qemu_max_syncs dirty-bitmap syncs would be made to switch over by raising
\`downtime-limit\` (kiln switches over after 30 rounds). Postcopy: \`postcopy-ram\` on both
sides, \`migrate-start-postcopy\` once its first pass is done (dirty-bitmap sync count 2, as
libvirt's --postcopy-after-precopy), pages before the switch-over read at the first
\`postcopy-active\` poll (50 ms apart), and as its fault figure the destination's
\`postcopy-blocktime\` (time during which every vCPU waited for a page); QEMU gives no
per-fault latency. L1 has one CPU, shared by both monitors, the guest's vCPUs and kiln's
threads. Ratio: kiln/QEMU; below 1 kiln is faster. The group took $((SECONDS - started)) s of L1
time (kiln ${ksecs} s, QEMU ${qsecs} s, boots and checks included)."
}
