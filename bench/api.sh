# The API for bench/run (a host section, see bench/lib.sh): kiln's start to a serving socket
# and its request latency, with no VM (bench/api_bench).

api_starts=20 api_requests=2000
# Firecracker's SPECIFICATION.md: "starts (up to API socket availability) within 8 CPU ms".
fc_start_cpu_ms=8

# api_field FILE NAME STAT: STAT (p50_us, p99_us, min_us) of NAME in api_bench's output FILE.
api_field() { grep -o "\"$2\": {[^}]*}" "$1" | grep -o "\"$3\": [0-9.]*" | cut -d' ' -f2; }
api_ms() { awk -v v="$1" 'BEGIN { printf "%.2f", v / 1000 }'; }

api_benches() {
	local dir pid i rc=0 s=$work/api-startup.json l=$work/api-latency.json
	local wall cpu cpu_proc get50 get99 put50 put99
	# Under /tmp: the L1 harness's 9p share cannot hold sockets.
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench.XXXXXX")
	build/bench/api_bench --startup build/kiln "$dir/api.sock" "$api_starts" >"$s" ||
		die "api_bench --startup failed"
	build/kiln --api-sock "$dir/api.sock" --id bench </dev/null >/dev/null 2>&1 &
	pid=$!
	for ((i = 0; i < 200; i++)); do [ -S "$dir/api.sock" ] && break; sleep 0.05; done
	build/bench/api_bench "$dir/api.sock" "$api_requests" >"$l" || rc=$?
	kill "$pid" 2>/dev/null || true
	wait "$pid" || true
	rm -rf "$dir"
	[ "$rc" -eq 0 ] || die "api_bench failed"

	wall=$(api_ms "$(api_field "$s" start_to_socket p50_us)")
	cpu=$(api_ms "$(api_field "$s" kiln_startup_cpu p50_us)")
	cpu_proc=$(api_ms "$(api_field "$s" proc_stat_cpu p50_us)")
	get50=$(api_field "$l" get_root p50_us) get99=$(api_field "$l" get_root p99_us)
	put50=$(api_field "$l" put_machine_config p50_us)
	put99=$(api_field "$l" put_machine_config p99_us)

	local fc_ref="Firecracker, published (SPECIFICATION.md, i3.metal), not measured here"
	cat >"$work/api.rows.md" <<MD
| process start → API socket accepts, wall p50 (ms) | $wall | $fc_ref: 6-60 ms, typically ~12 | — |
| CPU time until the API socket serves, p50 (ms) | $cpu | $fc_ref: ≤ $fc_start_cpu_ms CPU ms | $(ratio "$cpu" "$fc_start_cpu_ms") |
| GET / latency p50 / p99 (µs) | $get50 / $get99 | none: no Firecracker binary here | — |
| PUT /machine-config latency p50 / p99 (µs) | $put50 / $put99 | none: no Firecracker binary here | — |
MD
	local none='"reference": null, "reference_name": null, "ratio": null'
	cat >"$work/api.rows.json" <<JSON
    { "figure": "api_start_to_socket_ms", "kiln": $wall, "reference": null, "reference_name": "firecracker-spec-published", "reference_note": "6-60 ms wall, typically 12; not measured here", "ratio": null, "measured_on": "host" },
    { "figure": "api_startup_cpu_ms", "kiln": $cpu, "reference": $fc_start_cpu_ms, "reference_name": "firecracker-spec-published", "reference_note": "within 8 CPU ms; not measured here", "ratio": $(ratio "$cpu" "$fc_start_cpu_ms"), "proc_stat_cpu_ms": $cpu_proc, "measured_on": "host" },
    { "figure": "api_get_root_p50_us", "kiln": $get50, $none, "measured_on": "host" },
    { "figure": "api_get_root_p99_us", "kiln": $get99, $none, "measured_on": "host" },
    { "figure": "api_put_machine_config_p50_us", "kiln": $put50, $none, "measured_on": "host" },
    { "figure": "api_put_machine_config_p99_us", "kiln": $put99, $none, "measured_on": "host" },
JSON
	cat >"$work/api.text.md" <<MD
The API rows need no VM (bench/api_bench) and are measured on the host, before bench/run
enters L1 (inside it every CPU is emulated and many times slower). Start-up: $api_starts starts
of \`kiln --api-sock\`, wall time from before fork to the first connect() that succeeds (polled
every 50 µs); the CPU figure is kiln's own \`api_server.process_startup_time_cpu_us\` (process
CPU clock when the socket is up, so exec and dynamic linking count), read through
FlushMetrics; /proc/PID/stat utime+stime at the connect, with its 10 ms tick, gave p50
$cpu_proc ms. Latency: $api_requests requests of each kind after 10 untimed ones, on one
keep-alive connection. There is no Firecracker binary on this machine: the reference for
start-up is Firecracker's published specification, not a measurement in this run.
MD
}
