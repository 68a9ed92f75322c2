# Shared helpers for bench/run and its sections. Sourced after scripts/lib.sh, never run.
#
# A section is bench/NAME.sh, sourced by bench/run from the repository's top with $work
# (build/bench/work) in place. It defines NAME_benches, called with the run count, which
# writes three files:
#   $work/NAME.rows.md    rows of the table: | figure | kiln | reference | ratio (kiln/ref) |
#   $work/NAME.rows.json  one JSON object per line, each line "    { ... },": at least
#                         figure, kiln, reference, reference_name and ratio (null when none)
#   $work/NAME.text.md    how the rows were measured, and where kiln is behind and why
# Host sections run where bench/run starts, before it enters L1; L1 sections inside it.
# `KILN_BENCH_ONLY=NAME bench/run` measures one section and prints its files.

# median: the median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# ratio A B: A / B with two decimals (0 when B is not positive).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }

# section_run NAME RUNS: sources bench/NAME.sh and measures it into its three files.
section_run() {
	rm -f "$work/$1.rows.md" "$work/$1.rows.json" "$work/$1.text.md"
	. "bench/$1.sh"
	"$1_benches" "$2"
	local f
	for f in rows.md rows.json text.md; do
		[ -s "$work/$1.$f" ] || die "bench section $1 wrote no $f"
	done
}

# section_print NAME: a measured section's rows and text, for KILN_BENCH_ONLY.
section_print() { cat "$work/$1.rows.md"; echo; cat "$work/$1.text.md"; }
