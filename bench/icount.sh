# Instruction counts for bench/run (a host section, see bench/lib.sh): callgrind's Ir per
# operation on kiln's hot host-side paths, no VM: the uffd thread serving a fault, a virtqueue
# pop and push, an API request below HTTP and through libmicrohttpd, a poison log lookup. The
# harnesses are bench/icount_*.c (bench/icount.ninja). Counts do not depend on the machine's
# load, so they catch regressions a noisy timing hides. The reference is the committed baseline,
# bench/icount-baseline.json; `KILN_ICOUNT_BASELINE=write` rewrites it from this run.

icount_bin=build/bench/icount
icount_baseline=bench/icount-baseline.json
# Operations per figure.
icount_n_uffd=500 icount_n_api=200 icount_n_virtq=1000 icount_n_poison=1000

# icount_cg DIR TAG ARGS...: callgrind with ARGS (its options, then the harness), dumps in DIR
# as TAG.PID.K, its output in DIR/TAG.log.
icount_cg() {
	local dir=$1 tag=$2
	shift 2
	valgrind --tool=callgrind --callgrind-out-file="$dir/$tag.%p" "$@" >"$dir/$tag.log" 2>&1
}

# icount_figures DIR: "NAME IR_PER_OP" for every dump in DIR a harness named "NAME N" (its
# summary over N).
icount_figures() {
	local f
	for f in "$1"/*.*.*; do
		awk '/^desc: Trigger: Client Request: / { name = $5; n = $6 }
		     /^summary:/ { s = $2 }
		     END { if (name != "" && name != "-") printf "%s %.1f\n", name, s / n }' "$f"
	done
}

# icount_measure DIR: every harness under callgrind once, "NAME IR_PER_OP" lines in DIR.txt.
# The uffd harness needs a userfaultfd (root): without one its figure is left out.
icount_measure() {
	local d=$1
	rm -rf "$d"
	mkdir -p "$d"
	icount_cg "$d" uffd --collect-atstart=no --toggle-collect=serve_faults \
		"$icount_bin/icount_uffd" "$icount_n_uffd" ||
		say "icount: the uffd harness failed ($(grep -v '^==' "$d/uffd.log" | tail -n 1)); its figure is left out"
	icount_cg "$d" api --collect-atstart=no '--toggle-collect=icount_*' \
		"$icount_bin/icount_api" "$icount_n_api" || die "icount: icount_api failed ($d/api.log)"
	# Everything counted but the client: the server thread's whole work. (--toggle-collect turns
	# collection off at start unless --collect-atstart comes after it.)
	icount_cg "$d" http --toggle-collect=icount_client_request --collect-atstart=yes \
		"$icount_bin/icount_api" --http "$icount_n_api" ||
		die "icount: icount_api --http failed ($d/http.log)"
	icount_cg "$d" virtq --collect-atstart=no --toggle-collect=virtq_pop \
		--toggle-collect=virtq_push '--toggle-collect=icount_*' \
		"$icount_bin/icount_virtq" "$icount_n_virtq" || die "icount: icount_virtq failed ($d/virtq.log)"
	icount_cg "$d" poison --collect-atstart=no --toggle-collect=poison_log_contains \
		'--toggle-collect=icount_*' "$icount_bin/icount_poison" "$icount_n_poison" ||
		die "icount: icount_poison failed ($d/poison.log)"
	icount_figures "$d" | sort >"$d.txt"
}

# icount_stat NAME STAT: over the runs, NAME's median, min or max; empty when never measured.
icount_stat() {
	local v
	v=$(awk -v n="$1" '$1 == n { print $2 }' "$icount_dir"/r*.txt)
	[ -n "$v" ] || return 0
	case $2 in
	median) median <<<"$v" ;;
	min) sort -n <<<"$v" | head -n 1 ;;
	max) sort -n <<<"$v" | tail -n 1 ;;
	esac
}

# icount_fmt X: X with one decimal below 1,000 (none when whole), else whole.
icount_fmt() {
	awk -v x="$1" 'BEGIN { s = sprintf(x < 1000 ? "%.1f" : "%.0f", x); sub(/\.0$/, "", s); print s }'
}

# icount_base FIGURE: FIGURE's Ir per operation in the baseline, empty when it has none.
icount_base() {
	[ -s "$icount_baseline" ] || return 0
	grep -o "\"$1\": [0-9.]*" "$icount_baseline" | cut -d' ' -f2 || true
}

# icount_incl NAME REGEX: the inclusive Ir per operation of the costliest function matching
# REGEX in the first run's dump of NAME (callgrind_annotate), with one decimal.
icount_incl() {
	local f n
	f=$(grep -l "^desc: Trigger: Client Request: $1 " "$icount_dir"/r1/*.*.* || true)
	f=${f%%$'\n'*}
	n=$(sed -n "s/^desc: Trigger: Client Request: $1 //p" "$f")
	callgrind_annotate --inclusive=yes --threshold=100 "$f" 2>/dev/null |
		awk -v re="$2" -v n="$n" '!done && $0 ~ re { gsub(",", "", $1); printf "%.1f\n", $1 / n; done = 1 }'
}

# icount_f NAME: NAME's median, formatted. icount_i NAME REGEX: icount_incl, formatted.
icount_f() { icount_fmt "$(icount_stat "$1" median)"; }
icount_i() { icount_fmt "$(icount_incl "$1" "$2")"; }

# icount_row NAME FLOOR FLOOR_NAME: one JSON row for harness figure NAME (FLOOR: the harness
# figure of its floor, or empty), and its numbers in icount_k, icount_r, icount_q for the table.
icount_row() {
	local fig="icount_$1_ir" lo hi fl='' flv='null' fln='null' rf='null' spread
	icount_k=$(icount_stat "$1" median) icount_r=$(icount_base "$fig") icount_q='—'
	if [ -z "$icount_k" ]; then
		icount_json+="    { \"figure\": \"$fig\", \"kiln\": null, \"reference\": null, \"reference_name\": null, \"ratio\": null, \"skipped\": \"the harness failed (needs a userfaultfd: root)\" },
"
		icount_k='—' icount_r=${icount_r:-none in the baseline}
		return
	fi
	lo=$(icount_stat "$1" min) hi=$(icount_stat "$1" max)
	spread=$(awk -v a="$lo" -v b="$hi" 'BEGIN { printf "%.1f", b - a }')
	[ -n "$2" ] && fl=$(icount_stat "$2" median)
	if [ -n "$fl" ]; then
		flv=$(icount_fmt "$fl") fln="\"$3\"" rf=$(ratio "$icount_k" "$fl")
	fi
	[ -n "$icount_r" ] && icount_q=$(ratio "$icount_k" "$icount_r")
	icount_json+="    { \"figure\": \"$fig\", \"kiln\": $(icount_fmt "$icount_k"), \"reference\": ${icount_r:-null}, \"reference_name\": $([ -n "$icount_r" ] && echo "\"icount-baseline-$icount_base_commit\"" || echo null), \"ratio\": $([ -n "$icount_r" ] && echo "$icount_q" || echo null), \"floor\": $flv, \"floor_name\": $fln, \"ratio_floor\": $rf, \"unit\": \"Ir per operation\", \"runs\": $icount_runs, \"spread\": $spread, \"measured_on\": \"host\" },
"
	icount_k=$(icount_fmt "$icount_k")
	[ -n "$icount_r" ] && icount_r=$(icount_fmt "$icount_r")
	: "${icount_r:=none in the baseline}"
}

# icount_md LABEL: a table row from icount_row's numbers.
icount_md() {
	icount_rows+="| $1 | $icount_k | baseline: $icount_r | $icount_q |
"
}

# icount_entries N: "1 entry", "1,000 entries".
icount_entries() {
	[ "$1" = 1 ] && echo "1 entry" || echo "$(sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$1") entries"
}

# icount_write_baseline: bench/icount-baseline.json from this run's medians.
icount_write_baseline() {
	local dirty first=1 name
	# kiln's sources that differ from the commit (other work in the tree), as a JSON list.
	dirty=$(git status --porcelain -- vmm devices migration seccomp | cut -c4- |
		awk '{ printf "%s\"%s\"", (NR > 1) ? ", " : "", $0 }')
	{
		printf '{\n  "commit": "%s",\n  "kiln_sources_modified": [%s],\n' "$(git rev-parse HEAD)" "$dirty"
		printf '  "date": "%s",\n  "valgrind": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(valgrind --version)"
		printf '  "note": "callgrind Ir per operation from bench/icount.sh; rewrite with KILN_ICOUNT_BASELINE=write",\n'
		printf '  "figures": {\n'
		for name in $(cut -d' ' -f1 "$icount_dir/r1.txt" | grep -v '^floor_\|^json_loadb'); do
			[ $first = 1 ] || printf ',\n'
			first=0
			printf '    "icount_%s_ir": %s' "$name" "$(icount_fmt "$(icount_stat "$name" median)")"
		done
		printf '\n  }\n}\n'
	} >"$icount_baseline"
	python3 -m json.tool "$icount_baseline" >/dev/null || die "icount: $icount_baseline is not JSON"
	say "icount: wrote $icount_baseline"
}

icount_benches() {
	local r e varied base_note
	command -v valgrind >/dev/null || die "icount: valgrind is not installed"
	[ -x "$icount_bin/icount_api" ] || die "icount: build the harnesses first (ninja bench-icount)"
	icount_dir=$work/icount
	# At least two runs, to show the counts repeat; at most three (the counts do not vary).
	icount_runs=$(($1 < 2 ? 2 : $1 > 3 ? 3 : $1))
	rm -rf "$icount_dir"
	for ((r = 1; r <= icount_runs; r++)); do icount_measure "$icount_dir/r$r"; done
	[ "${KILN_ICOUNT_BASELINE:-}" = write ] && icount_write_baseline
	icount_base_commit=$(grep -o '"commit": "[0-9a-f]*' "$icount_baseline" 2>/dev/null | cut -c12-18 || true)

	icount_json='' icount_rows=''
	icount_row uffd_fault '' ''
	icount_md "icount: uffd thread serves one 4 KiB missing-page fault, message read to page copied (Ir)"
	icount_row virtq_pop_push_1desc floor_virtq_1desc plain-loads-and-stores
	icount_md "icount: virtqueue pop + push of a 1-descriptor chain, EVENT_IDX (Ir)"
	icount_row virtq_pop_push_2desc floor_virtq_2desc plain-loads-and-stores
	icount_md "icount: virtqueue pop + push of a 2-descriptor chain, EVENT_IDX (Ir)"
	icount_row api_put_machine_config json_loadb_machine_config jansson-json_loadb-alone
	icount_md "icount: API PUT /machine-config below HTTP: check, parse, validate, apply, reply (Ir)"
	icount_row api_get_root '' ''
	icount_md "icount: API GET / below HTTP (Ir)"
	icount_row http_put_machine_config '' ''
	icount_md "icount: API PUT /machine-config through libmicrohttpd, server side (Ir)"
	icount_row http_get_root '' ''
	icount_md "icount: API GET / through libmicrohttpd, server side (Ir)"
	# The poison log: one table row per size, hit / miss.
	icount_row poison_0_miss floor_poison_0_miss bare-binary-search
	icount_md "icount: poison log lookup of a 4 KiB page, empty log (every access's fast path) (Ir)"
	for e in 1 1000 100000; do
		local hk hr hq
		icount_row "poison_${e}_hit" "floor_poison_${e}_hit" bare-binary-search
		hk=$icount_k hr=$icount_r hq=$icount_q
		icount_row "poison_${e}_miss" "floor_poison_${e}_miss" bare-binary-search
		icount_k="$hk / $icount_k" icount_r="$hr / $icount_r" icount_q="$hq / $icount_q"
		icount_md "icount: poison log lookup of a 4 KiB page, $(icount_entries "$e"): hit / miss (Ir)"
	done
	printf '%s' "$icount_rows" >"$work/icount.rows.md"
	printf '%s' "$icount_json" >"$work/icount.rows.json"

	# Repeatability: figures whose runs differ, and by how much.
	varied=$(cat "$icount_dir"/r*.txt | awk '{ if (!($1 in lo) || $2 < lo[$1]) lo[$1] = $2
		if ($2 > hi[$1]) hi[$1] = $2 }
		END { for (n in lo) if (hi[n] > lo[n]) {
			printf "%s%s by %.3f%%", sep, n, 100 * (hi[n] - lo[n]) / lo[n]; sep = ", " } }')
	varied=${varied:+Counts that differed between runs: $varied.}
	varied=${varied:-Every count was the same in every run.}
	if [ -s "$icount_baseline" ]; then
		base_note="taken at commit $icount_base_commit with $(grep -o '"valgrind": "[^"]*' "$icount_baseline" | cut -d'"' -f4)"
		[ "$(git rev-parse HEAD | cut -c1-7)" != "$icount_base_commit" ] ||
			base_note+=". This run measured that same commit, so every ratio is 1.00 unless a count moved"
	else
		base_note="missing, so there are no ratios"
	fi
	fmt -w 96 >"$work/icount.text.md" <<MD
The icount rows count instructions (Ir, user space only) per operation with callgrind, on the
host, with no VM. Small harnesses (bench/icount_*.c) are built with kiln's flags (-O2, no
sanitizers) and linked with kiln's own objects. \`--toggle-collect\` limits the count to kiln's
functions, and a callgrind dump before and after each batch leaves set-up and warm-up out. Each
figure is a batch's Ir over its size. Counts do not depend on the machine's load. Each harness
ran $icount_runs times. $varied The
reference is the committed baseline, bench/icount-baseline.json, $base_note. The ratio is now /
baseline: above 1 is a regression. \`KILN_ICOUNT_BASELINE=write\` rewrites the baseline.

uffd fault: kiln's uffd thread serves $icount_n_uffd faults, one at a time, and serve_faults is
counted: it reads the message, preads the page from a memfd (page_source_file), copies it in
with UFFDIO_COPY and updates its stats. The kernel's side of its five system calls is not
counted. Under valgrind clock_gettime is a plain system call; natively its two calls add a few
dozen vDSO instructions. A pump that blocks until a fault comes keeps the background fill
still. The faults come from the kernel, inside write(2) from the page into a pipe: a fault in
user code would block while holding valgrind's lock. The thread runs without its seccomp
filter, which would refuse valgrind's own calls. valgrind 3.19 lacks the userfaultfd system
call, so the harness hands uffd_server.c a userfaultfd from /dev/userfaultfd.

Virtqueue: a 256-entry queue with EVENT_IDX in 1 MiB of guest memory from guest_memory_create,
with an empty poison log attached, as in a VM. A pop and a push make six guarded accesses
(avail idx, head, descriptors, avail_event, used element, used idx). Each checks the bounds and
the poison log, then arms the SIGBUS guard with sigsetjmp: sigsetjmp alone is
$(icount_i virtq_pop_push_1desc __sigsetjmp) of the $(icount_f virtq_pop_push_1desc) Ir of a 1-descriptor pop and push. The floor moves the
same ring bytes with plain loads and stores and no checks: $(icount_f floor_virtq_1desc) Ir for 1 descriptor,
$(icount_f floor_virtq_2desc) for 2.

API: PUT /machine-config with {"vcpu_count": 1, "mem_size_mib": 128}, and GET /, through
api_check_request and api_routes_handle as kiln's API thread and event loop run them, minus the
hand-over between the two threads. tests/fuzz/stubs.c stands in for vm.c. jansson's hash seed
is fixed (kiln leaves it random), so lookups take the same path every run. Of the PUT's
$(icount_f api_put_machine_config) Ir, json_loadb takes $(icount_i api_put_machine_config ':json_loadb') and schema validation $(icount_i api_put_machine_config api_schema_validate). The floor, json_loadb
and json_decref of the same body alone, is $(icount_f json_loadb_machine_config) Ir. Through libmicrohttpd: the same
handling behind api_server.c, on one keep-alive connection to an abstract unix socket.
Everything but the client is counted, nearly all of it on libmicrohttpd's thread. Of the PUT's
$(icount_f http_put_machine_config) Ir, $(icount_i http_put_machine_config memset) are memset: libmicrohttpd 0.9.75 zeroes about 96 KiB of
its connection pool per request (the pool is 64 KiB, kiln's MHD_OPTION_CONNECTION_MEMORY_LIMIT:
all of it once, half once more), and callgrind counts each byte of glibc's rep stosb as one
instruction. Natively rep stosb clears many bytes a cycle: the time is far below the count. These two counts move a little between runs,
as libmicrohttpd's event loop turns a varying number of times.

Poison log: poison_log_contains on a 4 KiB page, in logs of 1, 1,000 and 100,000 single pages
(every other page, so none merge). The pages looked up are spread across the log in a fixed
pseudo-random order, $(icount_entries "$icount_n_poison" | cut -d" " -f1) per figure. An empty log is the fast path of every guest
memory access: one atomic load. The floor is the same binary search without the lock: $(icount_f floor_poison_0_miss) Ir
empty, then hit / miss: $(icount_f floor_poison_1_hit) / $(icount_f floor_poison_1_miss) for 1 entry, $(icount_f floor_poison_1000_hit) / $(icount_f floor_poison_1000_miss) for 1,000, $(icount_f floor_poison_100000_hit) / $(icount_f floor_poison_100000_miss) for
100,000.
MD
}
