#!/usr/bin/env bash
# Installs what kiln needs, builds it, and runs every test: CMocka unit tests (ASan+UBSan),
# host-side end-to-end checks, and real-guest end-to-end scenarios on KVM (inside the
# nested-KVM harness, tests/e2e/in-l1, when this host has no usable KVM).
# Ends with one line "total: N passed, M failed"; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh
t0=$(date +%s)
passed=0
failed=0

# count_from LOG: adds the pass/fail counts a step printed (CMocka or e2e summary lines).
count_from() {
	local p f
	p=$(grep -ohE '^\[  PASSED  \] [0-9]+ test' "$1" | awk '{s+=$4} END {print s+0}')
	f=$(grep -ohE '^\[  FAILED  \] [0-9]+ test' "$1" | awk '{s+=$4} END {print s+0}')
	passed=$((passed + p))
	failed=$((failed + f))
	if grep -qE '^e2e: [0-9]+ passed' "$1"; then
		p=$(grep -E '^e2e: [0-9]+ passed' "$1" | tail -1 | awk '{print $2}')
		f=$(grep -E '^e2e: [0-9]+ passed' "$1" | tail -1 | awk '{print $4}')
		passed=$((passed + p))
		failed=$((failed + f))
	fi
}

# step NAME CMD...: runs a step, showing its output, and counts a failure if it exits non-zero
# without having reported any failed test itself.
step() {
	local name=$1 log rc before=$failed
	shift
	log=$(mktemp)
	say "== $name"
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	count_from "$log"
	rm -f "$log"
	if [ "$rc" -ne 0 ] && [ "$failed" -eq "$before" ]; then
		say "step '$name' failed (exit $rc)"
		failed=$((failed + 1))
	fi
	return 0
}

run_unit_tests() {
	local rc=0 t
	for t in build/unit/test_*; do
		[ -x "$t" ] || continue
		"$t" || rc=1
	done
	return $rc
}

# The libFuzzer targets (API 30 s, virtq 20 s, virtio-mmio 20 s), one check each.
fuzz_smoke() {
	local log rc
	log=$(mktemp)
	tests/fuzz/run-smoke | tee "$log"
	rc=${PIPESTATUS[0]}
	echo "e2e: $(grep -c '^PASS fuzz-' "$log") passed, $(grep -c '^FAIL fuzz-' "$log") failed"
	rm -f "$log"
	return "$rc"
}

install_packages || exit 1
step "guest images" tests/guest/build-all
step "build" ninja
step "unit tests" run_unit_tests
step "e2e (host)" tests/e2e/suite host
step "fuzz" fuzz_smoke
step "e2e (KVM)" tests/e2e/in-l1 --timeout 2400 tests/e2e/suite kvm
# Debian 12's stock kernel, without UFFD_FEATURE_POISON: always in an L1, whatever this host runs.
step "e2e (stock 6.1)" tests/e2e/in-l1 --force-l1 --kernel 6.1 --timeout 900 tests/e2e/suite kvm61
# The UFFDIO_POISON series for 6.1: applied, checked, built (cached) and booted as L1 and guests.
step "kernel patches (6.1 + UFFDIO_POISON)" kernel-patches/build-and-test

say "whole suite: $(( $(date +%s) - t0 )) s"
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
