# Poison-log apply for bench/run (a host section, see bench/lib.sh): how long kiln's restore takes
# to put a snapshot's poison log of 1, 1,000 and 100,000 pages back on fresh guest memory, beside
# a bare userfaultfd loop (bench/poisonapply). No VM, no KVM.

# poison_field FILE KEY: the number poisonapply's JSON in FILE gives for poison_KEY ("" if none).
poison_field() { grep -o "\"poison_$2\": [0-9.]*" "$1" | cut -d' ' -f2 || true; }
# poison_text FILE KEY: the string it gives for poison_KEY ("" if none).
poison_text() { grep -o "\"poison_$2\": \"[^\"]*\"" "$1" | cut -d'"' -f4 || true; }
# poison_fmt FORMAT VALUE [DIVISOR]: VALUE / DIVISOR (default 1) printed with FORMAT.
poison_fmt() { awk -v v="$2" -v d="${3:-1}" -v f="$1" 'BEGIN { printf f, v / d }'; }

# poison_size MIB: "N GiB" when whole gibibytes, else "N MiB".
poison_size() { if [ $(($1 % 1024)) -eq 0 ]; then echo "$(($1 / 1024)) GiB"; else echo "$1 MiB"; fi; }

# poison_row FIGURE_MD FIGURE_JSON KIND PAGES UNIT REF_MD: one row of the table and of the JSON
# for KIND (4k, 2m) and PAGES, in UNIT (us, ms, us_per_page).
poison_row() {
	local f=$work/poison.json md=$1 fig=$2 k=$3 n=$4 unit=$5 refmd=$6
	local kiln bare ioctl div=1 fmt='%.1f' kv bv iv
	kiln=$(poison_field "$f" "${k}_${n}_kiln_us") bare=$(poison_field "$f" "${k}_${n}_bare_us")
	ioctl=$(poison_field "$f" "${k}_${n}_ioctl_us")
	[ -n "$kiln" ] && [ -n "$bare" ] || die "poisonapply gave no figure for $n $k pages"
	case $unit in
	ms) div=1000 ;;
	us_per_page) div=$n fmt='%.3f' ;;
	esac
	kv=$(poison_fmt "$fmt" "$kiln" "$div") bv=$(poison_fmt "$fmt" "$bare" "$div")
	iv=$(poison_fmt "$fmt" "$ioctl" "$div")
	printf '| %s | %s | %s | %s |\n' "$md" "$kv" "${refmd//@B/$bv}" "$(ratio "$kv" "$bv")" |
		sed "s/@I/$iv/" >>"$work/poison.rows.md"
	printf '    { "figure": "%s", "kiln": %s, "reference": %s, "reference_name": "%s", "ratio": %s, "unit": "%s", "pages": %s, "page_size": "%s", "memory_mib": %s, "page_set": "random even-numbered pages, none adjacent", "ioctls_alone": %s, "kiln_parse_count_probe_us": %s, "kiln_decode_us": %s, "kiln_restore_memory_us": %s, "kiln_min_us": %s, "kiln_max_us": %s, "bare_min_us": %s, "sigbus": "%s", "runs": %s, "measured_on": "host" },\n' \
		"$fig" "$kv" "$bv" "bare-userfaultfd-register-uffdio-poison-per-page" \
		"$(ratio "$kv" "$bv")" "$unit" "$n" "$k" "$(poison_field "$f" "${k}_mib")" "$iv" \
		"$(poison_field "$f" "${k}_${n}_validate_us")" "$(poison_field "$f" "${k}_${n}_decode_us")" \
		"$(poison_field "$f" "${k}_${n}_start_us")" "$(poison_field "$f" "${k}_${n}_kiln_min_us")" \
		"$(poison_field "$f" "${k}_${n}_kiln_max_us")" "$(poison_field "$f" "${k}_${n}_bare_min_us")" \
		"$(poison_text "$f" sigbus)" "$(poison_field "$f" "${k}_${n}_runs")" >>"$work/poison.rows.json"
}

# poison_skip LABEL FIGURE REASON: a skipped row in the table and the JSON.
poison_skip() {
	printf '| %s | skipped: %s | — | — |\n' "$1" "$3" >>"$work/poison.rows.md"
	printf '    { "figure": "%s", "kiln": null, "reference": null, "reference_name": null, "ratio": null, "skipped": "%s", "measured_on": "host" },\n' \
		"$2" "$3" >>"$work/poison.rows.json"
}

poison_benches() {
	local runs=$1 f=$work/poison.json
	build/bench/poisonapply --json --runs "$runs" >"$f" 2>"$work/poison.log" ||
		{ cat "$work/poison.log" >&2; die "poisonapply failed"; }
	poison_rows "$runs"
}

# poison_rows RUNS: the section's three files from poisonapply's JSON ($work/poison.json).
poison_rows() {
	local runs=$1 f=$work/poison.json skip4 skip2 sig mib p reg one
	: >"$work/poison.rows.md"
	: >"$work/poison.rows.json"
	skip4=$(poison_text "$f" 4k_skipped) skip2=$(poison_text "$f" 2m_skipped)
	sig=$(poison_text "$f" sigbus) mib=$(poison_field "$f" 4k_mib)
	p='poison log apply, 4 KiB pages'
	one='one UFFDIO_POISON per page'
	if [ -n "$skip4" ]; then
		poison_skip "$p, 1 / 1,000 / 100,000 pages" poison_apply_4k "$skip4"
	else
		reg="userfaultfd + UFFDIO_REGISTER of the $(poison_size "$mib")"
		poison_row "$p, empty log: restore's fixed cost (µs)" poison_apply_4k_empty_us 4k 0 us \
			"$reg: @B"
		poison_row "$p, 1 page (µs)" poison_apply_4k_1_us 4k 1 us \
			"$reg + 1 UFFDIO_POISON: @B (the ioctl alone: @I)"
		poison_row "$p, 1,000 pages (µs)" poison_apply_4k_1000_us 4k 1000 us \
			"$reg + $one: @B (ioctls alone: @I)"
		poison_row "$p, 100,000 pages (ms)" poison_apply_4k_100000_ms 4k 100000 ms \
			"$reg + $one: @B (ioctls alone: @I)"
		poison_row "$p, 100,000 pages: time per page (µs)" poison_apply_4k_us_per_page 4k 100000 \
			us_per_page "the same, per page: @B (ioctls alone: @I)"
	fi
	if [ -n "$skip2" ]; then
		poison_skip "poison log apply, 2 MiB hugetlb pages, 1 / 100 pages" poison_apply_2m "$skip2"
	else
		p='poison log apply, 2 MiB hugetlb pages'
		reg="userfaultfd + UFFDIO_REGISTER of the $(poison_size "$(poison_field "$f" 2m_mib)")"
		poison_row "$p, 1 page (µs)" poison_apply_2m_1_us 2m 1 us \
			"$reg + 1 UFFDIO_POISON: @B (the ioctl alone: @I)"
		if [ -n "$(poison_field "$f" 2m_100_kiln_us)" ]; then
			poison_row "$p, 100 pages (µs)" poison_apply_2m_100_us 2m 100 us \
				"$reg + $one: @B (ioctls alone: @I)"
		fi
	fi
	poison_write_text "$runs" "$skip4" "$skip2" "$sig"
}

# poison_write_text RUNS SKIP4 SKIP2 SIGBUS: how the rows were measured, and where kiln is behind.
poison_write_text() {
	local f=$work/poison.json runs=$1 skip4=$2 skip2=$3 sig=$4 huge sigtext share
	local k0 b0 min0 max0 t0 tmax k1 b1 v1 k3 b3 s3 i3 kn bn v d s i kmin bmin
	if [ -n "$skip4" ]; then
		cat >"$work/poison.text.md" <<MD
Poison-log apply rows (build/bench/poisonapply, kiln's restore steps on the host): skipped,
$skip4. A restore of a snapshot with poisoned pages is refused on such a host, so there is
nothing to time.
MD
		return 0
	fi
	poison_pv() { poison_field "$f" "4k_$1"; }
	poison_pms() { poison_fmt '%.1f' "$(poison_pv "$1")" 1000; }
	k0=$(poison_pv 0_kiln_us) b0=$(poison_pv 0_bare_us)
	min0=$(poison_pv 0_kiln_min_us) max0=$(poison_pv 0_kiln_max_us)
	t0=$(poison_pv 0_thread_us) tmax=$(poison_pv 0_thread_max_us)
	k1=$(poison_pv 1_kiln_us) b1=$(poison_pv 1_bare_us) v1=$(poison_pv 1_validate_us)
	k3=$(poison_pv 1000_kiln_us) b3=$(poison_pv 1000_bare_us)
	s3=$(poison_pv 1000_start_us) i3=$(poison_pv 1000_ioctl_us)
	kn=$(poison_pms 100000_kiln_us) bn=$(poison_pms 100000_bare_us)
	v=$(poison_pms 100000_validate_us) d=$(poison_pms 100000_decode_us)
	s=$(poison_pms 100000_start_us) i=$(poison_pms 100000_ioctl_us)
	kmin=$(poison_pms 100000_kiln_min_us) bmin=$(poison_pms 100000_bare_min_us)
	share=$(awk -v a="$v" -v b="$d" -v t="$kn" 'BEGIN { printf "%.0f", (t > 0) ? 100 * (a + b) / t : 0 }')
	sigtext="The code was $sig."
	# x86 sends BUS_MCEERR_AR for a memory error only with CONFIG_MEMORY_FAILURE.
	[ "$sig" != BUS_ADRERR ] ||
		sigtext="The code was BUS_ADRERR: BUS_MCEERR_AR needs CONFIG_MEMORY_FAILURE, not here."
	huge="2 MiB hugetlb pages: skipped,
$skip2."
	[ -n "$skip2" ] || huge="2 MiB pages: a hugetlb memfd of $(poison_field "$f" 2m_mib) MiB
from the free hugepages, the same steps."
	cat >"$work/poison.text.md" <<MD
Poison-log apply rows: build/bench/poisonapply on the host, with no VM. It runs kiln's own
restore code, linked from kiln's objects (seccomp off). The steps are state_parse of a state
image holding the POIS section, snapshot_count_poison, then uffd_poison_supported
(snapshot_open's check for the File backend), then poison_log_init and snapshot_restore_poison
(poison_log_decode into the VM's log, as inherited), then snapshot_restore_memory: ranges to
memfd offsets, and uffd_server_start (userfaultfd, UFFDIO_REGISTER in MISSING mode, the
markers, the uffd thread started). The time runs from the state image in memory to
snapshot_restore_memory's return. Creating guest memory is outside it on both sides. Guest
memory: guest_memory_create's memfd, $(poison_size "$(poison_field "$f" 4k_mib)") of 4 KiB pages.
$huge
The logged pages are a fixed random set of even-numbered pages, so no two are adjacent. kiln
poisons a run of adjacent pages with one ioctl; here it issues one per page, as the floor does.
The floor works on fresh memory of the same kind: userfaultfd, UFFDIO_API, UFFDIO_REGISTER
(MISSING), then one UFFDIO_POISON per page in address order. The reference column also gives
the ioctls alone. Each figure is a median of $runs runs (logs of up to 1,000 pages: 15 runs),
kiln and the floor alternating, on fresh memory each time. After every run, 16 logged pages
(the first and last among them) raised SIGBUS at the touched address.
$sigtext
The page after each read as zeros. kiln's uffd thread counted one marker per logged page.

Where kiln is behind. With an empty log kiln takes $k0 µs, the floor's userfaultfd and
register $b0 µs. kiln's runs spread from $min0 to $max0 µs. The difference is the fixed work of
snapshot_restore_memory and uffd_server_start: bitmaps, eventfds, a 2 MiB chunk buffer, and
starting the uffd thread, then waiting for it to say it runs. The uffd thread never sleeps while
pages are missing. On this 2-CPU host, with other work on the second CPU, the main thread can
then wait a scheduler slice to run again. A bare pthread_create and that wait, the new thread
then spinning, took $t0 µs in the same runs (median), up to $tmax µs. Every restore pays
this, poison or not. With one page kiln takes $k1 µs against $b1 µs. It also opens a second
userfaultfd to check for UFFDIO_POISON (uffd_poison_supported): $v1 µs with the parse and the
count. With 1,000 pages kiln takes $k3 µs against $b3 µs; snapshot_restore_memory alone
takes $s3 µs, the ioctls alone $i3 µs. With 100,000 pages kiln takes $kn ms, the floor
$bn ms. Checking the encoded log (state_parse, snapshot_count_poison and the probe) takes
$v ms; decoding it into the VM's log (snapshot_restore_poison), each range appended past the
last, $d ms; together $share% of kiln's time. snapshot_restore_memory takes $s ms, against $i ms for the ioctls alone.
The host is shared and noisy: the floor's fastest run took $bmin ms, kiln's $kmin ms.

There is no peer monitor to compare. QEMU 7.2 does not keep poison across migration, so
the floor is the only reference. A migration destination (migrate_in.c) runs the
same decode and uffd_server_start on the STATE it receives. It also drops precopy's copies of
poisoned pages. That path is not measured here.
MD
}
