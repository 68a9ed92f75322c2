# The API for bench/run (a host section, see bench/lib.sh): kiln's start to a serving socket
# and its request latency, with no VM (bench/api_bench), beside its peer, QEMU's QMP socket,
# and its floor, a bare unix socket server.

api_starts=20 api_requests=2000
# The peer: QEMU built to serve QMP and nothing else. No VMX/SVM on this host, so TCG; with -S
# no guest code runs. api_bench --startup adds -qmp.
api_qemu_flags="-accel tcg -M microvm -S -nodefaults -display none -no-user-config -m 128"
# Firecracker's SPECIFICATION.md: "starts (up to API socket availability) within 8 CPU ms".
fc_start_cpu_ms=8

# api_field FILE NAME STAT: STAT (p50_us, p99_us, min_us, ...) of NAME in api_bench's output.
api_field() { grep -o "\"$2\": {[^}]*}" "$1" | grep -o "\"$3\": [0-9.]*" | cut -d' ' -f2; }
api_ms() { awk -v v="$1" 'BEGIN { printf "%.2f", v / 1000 }'; }
# api_sub A B [DECIMALS]: A - B, with two decimals unless told.
api_sub() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { printf "%.*f", d, a - b }'; }
# api_behind ROWS N: where kiln stands by the Nth ratio of the markdown ROWS: "ahead on every
# row", "behind on every row", or the shorter of "behind on: FIGURE; ..." and "behind on
# every row but: FIGURE; ...".
api_behind() {
	echo "$1" | awk -F' [|] ' -v n="$2" 'NF { rows++; split($4, r, " / "); sub(/^[|] /, "", $1) }
		NF && r[n] + 0 >= 1 { b = b (k++ ? "; " : "") $1; next }
		NF { a = a (j++ ? "; " : "") $1 }
		END {
			if (k == 0) print "ahead on every row"
			else if (j == 0) print "behind on every row"
			else if (k <= j) print "behind on: " b
			else print "behind on every row but: " a
		}'
}
# api_row FIGURE NAME UNIT KILN QEMU QEMU_NAME QEMU_WHAT FLOOR FLOOR_NAME FLOOR_WHAT [EXTRA]:
# appends one row to api_md and api_json. EXTRA: more JSON fields, each ending in ", ".
api_row() {
	api_md+="| $1 | $4 | QEMU, $7: $5 · floor, ${10}: $8 | $(ratio "$4" "$5") / $(ratio "$4" "$8") |
"
	api_json+="    { \"figure\": \"$2\", \"unit\": \"$3\", \"kiln\": $4, \"reference\": $5, \"reference_name\": \"$6\", \"ratio\": $(ratio "$4" "$5"), \"floor\": $8, \"floor_name\": \"$9\", \"ratio_floor\": $(ratio "$4" "$8"), ${11:-}\"measured_on\": \"host\" },
"
}

api_benches() {
	local dir kpid qpid i rc=0 s=$work/api-startup.json l=$work/api-latency.json qemu libs tls
	qemu=$(command -v qemu-system-x86_64) || die "api: no qemu-system-x86_64, the API's peer"
	# For the floors that load kiln's libraries (not libc, which every program loads), and
	# gnutls alone (libmicrohttpd's, with what it pulls in).
	libs=$(readelf -d build/kiln | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -v '^libc\.' |
		tr '\n' ' ')
	tls=$(ldd build/kiln | grep -o '^[[:space:]]*libgnutls[^ ]*' | tr -d '[:space:]')
	# Under /tmp: the L1 harness's 9p share cannot hold sockets.
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench.XXXXXX")
	# shellcheck disable=SC2086 # the flags are words
	build/bench/api_bench --startup "$dir" "$api_starts" build/kiln "$libs" "$tls" "$qemu" \
		$api_qemu_flags >"$s" || { rm -rf "$dir"; die "api_bench --startup failed"; }
	build/kiln --api-sock "$dir/api.sock" --id bench </dev/null >/dev/null 2>&1 &
	kpid=$!
	# shellcheck disable=SC2086 # the flags are words
	"$qemu" $api_qemu_flags -qmp "unix:$dir/qmp.sock,server=on,wait=off" </dev/null \
		>/dev/null 2>"$work/api-qemu.err" &
	qpid=$!
	for ((i = 0; i < 200; i++)); do
		[ -S "$dir/api.sock" ] && [ -S "$dir/qmp.sock" ] && break
		sleep 0.05
	done
	build/bench/api_bench --latency "$dir/api.sock" "$dir/qmp.sock" "$dir/floor.sock" \
		"$api_requests" >"$l" || rc=$?
	kill "$kpid" "$qpid" 2>/dev/null || true
	wait "$kpid" || true
	wait "$qpid" || true
	rm -rf "$dir"
	[ "$rc" -eq 0 ] || die "api_bench --latency failed (QEMU said: $(cat "$work/api-qemu.err"))"

	# v[X.sock], v[X.reply], v[X.cpu]: start-up p50 (ms) of each program X; v[K.p50] and
	# v[K.p99]: latency (µs) of each kind K of request.
	local -A v
	local f k st
	for k in kiln kiln_noseccomp qemu floor floor_libs floor_gnutls; do
		for f in sock:start_to_socket reply:start_to_reply cpu:cpu_to_reply; do
			v[$k.${f%%:*}]=$(api_ms "$(api_field "$s" "${k}_${f#*:}" p50_us)")
		done
	done
	local self self_cpu
	self=$(api_ms "$(api_field "$s" kiln_self_startup p50_us)")
	self_cpu=$(api_ms "$(api_field "$s" kiln_self_startup_cpu p50_us)")
	for k in get_root put_machine_config qmp_query_status qmp_qom_set qmp_query_status_padded \
		floor_get_root floor_put_machine_config; do
		for st in p50 p99; do v[$k.$st]=$(api_field "$l" "$k" "${st}_us"); done
	done
	local b_getq b_getr b_putq b_putr b_qs b_qom
	b_getq=$(api_field "$l" bytes get_root_request) b_getr=$(api_field "$l" bytes get_root_reply)
	b_putq=$(api_field "$l" bytes put_machine_config_request)
	b_putr=$(api_field "$l" bytes put_machine_config_reply)
	b_qs=$(api_field "$l" bytes qmp_query_status) b_qom=$(api_field "$l" bytes qmp_qom_set)

	local api_md='' api_json='' bare='bind + listen'
	api_row "process start → API socket accepts a connect, wall p50 (ms)" api_start_to_socket_ms \
		ms "${v[kiln.sock]}" "${v[qemu.sock]}" qemu-qmp "QMP socket" "${v[floor.sock]}" \
		bare-unix-listen "$bare"
	api_row "process start → first reply, wall p50 (ms)" api_start_to_reply_ms ms \
		"${v[kiln.reply]}" "${v[qemu.reply]}" qemu-qmp "QMP greeting" "${v[floor.reply]}" \
		bare-unix-listen "$bare, GET / answered"
	api_row "CPU time until the first reply, p50 (ms)" api_startup_cpu_ms ms "${v[kiln.cpu]}" \
		"${v[qemu.cpu]}" qemu-qmp "QMP greeting" "${v[floor.cpu]}" bare-unix-listen "$bare" \
		"\"kiln_self_ms\": $self_cpu, \"kiln_noseccomp_ms\": ${v[kiln_noseccomp.cpu]}, \"floor_with_kiln_libraries_ms\": ${v[floor_libs.cpu]}, \"floor_with_gnutls_ms\": ${v[floor_gnutls.cpu]}, \"firecracker_published_ms\": $fc_start_cpu_ms, "
	for st in p50 p99; do
		api_row "GET / latency $st (µs)" "api_get_root_${st}_us" us "${v[get_root.$st]}" \
			"${v[qmp_query_status.$st]}" qemu-qmp-query-status "QMP query-status" \
			"${v[floor_get_root.$st]}" bare-unix-round-trip "same bytes"
	done
	for st in p50 p99; do
		api_row "PUT /machine-config latency $st (µs)" "api_put_machine_config_${st}_us" us \
			"${v[put_machine_config.$st]}" "${v[qmp_qom_set.$st]}" \
			qemu-qmp-qom-set-memory "QMP qom-set of /machine memory" \
			"${v[floor_put_machine_config.$st]}" bare-unix-round-trip "same bytes"
	done
	printf '%s' "$api_md" >"$work/api.rows.md"
	printf '%s' "$api_json" >"$work/api.rows.json"

	# Rows where kiln is not ahead of QEMU, and what QMP's bytes cost.
	local behind behind_floor per_byte qom_bytes qom_extra version lib_list
	local d_greet d_libs d_tls d_seccomp d_own
	behind=$(api_behind "$api_md" 1) behind_floor=$(api_behind "$api_md" 2)
	per_byte=$(awk -v a="${v[qmp_query_status_padded.p50]}" -v b="${v[qmp_query_status.p50]}" \
		'BEGIN { printf "%.1f", (a - b) / 100 }')
	qom_bytes=$((b_qom - b_qs))
	qom_extra=$(api_sub "${v[qmp_qom_set.p50]}" "${v[qmp_query_status.p50]}" 1)
	version=$("$qemu" --version | sed -n 's/.*version \([^ ]*\).*/\1/p')
	lib_list=$(echo "$libs" | sed 's/ *$//; s/ /, /g')
	d_greet=$(api_sub "${v[qemu.reply]}" "${v[qemu.sock]}")
	d_libs=$(api_sub "${v[floor_libs.cpu]}" "${v[floor.cpu]}")
	d_tls=$(api_sub "${v[floor_gnutls.cpu]}" "${v[floor.cpu]}")
	d_seccomp=$(api_sub "${v[kiln.cpu]}" "${v[kiln_noseccomp.cpu]}")
	d_own=$(api_sub "${v[kiln_noseccomp.cpu]}" "${v[floor_libs.cpu]}")
	cat >"$work/api.text.md" <<MD
The API rows need no VM (bench/api_bench) and are measured on the host, before bench/run
enters L1 (inside it every CPU is emulated and many times slower). Each row sets kiln beside
its peer and its floor; the ratio column gives kiln/QEMU, then kiln/floor, below 1 kiln is
faster. The peer is the QMP socket of QEMU $version, started as
\`qemu-system-x86_64 $api_qemu_flags -qmp unix:PATH,server=on,wait=off\`:
no kernel, and with -S no guest code runs. KVM is unusable on this host, so QEMU sets up TCG,
which is in its start-up figures. The floor is the bare cost underneath: a unix socket server
with nothing else to do.

Start-up: $api_starts starts of each program, taking turns. Wall time runs from before fork to
the first connect() that succeeds (polled every 50 µs), then to the first reply: kiln's answer
to GET /, QEMU's QMP greeting (sent unasked, so QEMU saves one round trip). CPU time is the
process's CPU clock, all its threads, read from outside (clock_getcpuclockid) right after that
reply, the same way for all three: to the microsecond, and nothing the process does later
counts (/proc/PID/stat ticks every 10 ms; the rusage of a killed child counts everything up
to its exit). kiln's own \`process_startup_time_cpu_us\`, taken when its socket is up, gave
$self_cpu ms ($self ms wall from main). The floor is api_bench itself, executed again to bind a
unix socket, listen and answer GET /: fork, exec and libc. QEMU's socket accepts $d_greet ms
before its greeting: it binds it with its other back-ends, and greets once the machine is
built and its main loop runs.

Latency: $api_requests requests of each kind on one connection per server, in blocks of 100 taking
turns, after 10 untimed ones. QEMU's peer for GET / ($b_getq bytes asked, $b_getr answered) is
\`query-status\` ($b_qs bytes). For PUT /machine-config ($b_putq bytes asked, $b_putr answered) it
is \`qom-set\` of /machine's \`memory\` to the 128 MiB QEMU started with ($b_qom bytes): the
property is looked up, the value parsed and checked, the field written, as kiln does with the
machine configuration. The floor is a child process that reads each request up to the end of
its body and writes back the bytes kiln answered the same request with. The p99 rows move
with whatever else this shared 2-core machine runs at the time; compare them across runs.

Against QEMU kiln is $behind. QEMU reads its QMP socket one byte per turn of
its event loop (strace shows a 1-byte recvmsg per byte): \`query-status\` after 100 spaces
took ${v[qmp_query_status_padded.p50]} µs against ${v[qmp_query_status.p50]}, $per_byte µs a byte, so the $qom_bytes more bytes of \`qom-set\`
cost about $(awk -v p="$per_byte" -v n="$qom_bytes" 'BEGIN { printf "%.0f", p * n }') µs of its $qom_extra more.

Against the floor kiln is $behind_floor. Start-up CPU: the floor with kiln's
libraries preloaded ($lib_list) takes ${v[floor_libs.cpu]} ms against ${v[floor.cpu]}:
loading them costs $d_libs ms, and $d_tls ms of it is $tls alone (libmicrohttpd's, with the
eight libraries it pulls in; kiln never uses TLS, but Debian builds libmicrohttpd with HTTPS).
kiln with --no-seccomp takes ${v[kiln_noseccomp.cpu]} ms against ${v[kiln.cpu]}: building and loading the
seccomp filters (the main thread's at start, the API thread's at its first connection) costs
$d_seccomp ms. The remaining $d_own ms is kiln's own set-up, libmicrohttpd's start and the first
request. Requests: the floor answers on the thread that read the request; by kiln's code, its
request goes from libmicrohttpd's thread to the event loop thread (an eventfd) and back (a
condition variable), three wake-ups in the server in place of one, through libmicrohttpd's
parser and jansson. This run does not split those further.

Firecracker, not measured here (no binary on this machine): its SPECIFICATION.md (i3.metal)
gives 6-60 ms to API socket availability, typically about 12, within $fc_start_cpu_ms CPU ms.
kiln's ${v[kiln.cpu]} ms of CPU is $(ratio "${v[kiln.cpu]}" "$fc_start_cpu_ms") of that.
MD
}
