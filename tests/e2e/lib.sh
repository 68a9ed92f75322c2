# Helpers for kiln's end-to-end scenarios: configs, bounded kiln runs, verdicts.
# Sourced by tests/e2e/suite; every scenario runs kiln with a timeout and never hangs.

E2E_OUT=${E2E_OUT:-$PWD/build/e2e}
KILN=${KILN:-$PWD/build/kiln}
GUEST=${GUEST:-$PWD/build/guest}
e2e_passed=0
e2e_failed=0
e2e_failures=()

# pass NAME [DETAIL]
pass() {
	e2e_passed=$((e2e_passed + 1))
	printf 'PASS %s%s\n' "$1" "${2:+ ($2)}"
}

# fail NAME REASON [LOG]: records a failure and shows the log's tail.
fail() {
	e2e_failed=$((e2e_failed + 1))
	e2e_failures+=("$1")
	printf 'FAIL %s: %s\n' "$1" "$2"
	if [ -n "${3:-}" ] && [ -s "$3" ]; then
		printf '  last lines of %s:\n' "$3"
		tail -n 25 "$3" | tr -d '\r' | sed 's/^/  | /'
	fi
}

# guest_config NAME KERNEL VCPUS MEM_MIB HUGE BOOT_ARGS [EXTRA_JSON]: writes
# $E2E_OUT/NAME.json and prints its path. EXTRA_JSON is spliced in as more top-level keys.
guest_config() {
	local name=$1 kernel=$2 vcpus=$3 mem=$4 huge=$5 args=$6 extra=${7:-}
	local f=$E2E_OUT/$name.json
	cat >"$f" <<JSON
{
  "boot-source": {
    "kernel_image_path": "$kernel",
    "initrd_path": "$GUEST/initramfs.cpio.gz",
    "boot_args": "console=ttyS0 quiet reboot=k panic=1 pci=off $args"
  },
  "machine-config": { "vcpu_count": $vcpus, "mem_size_mib": $mem, "huge_pages": "$huge" }${extra:+,
  $extra}
}
JSON
	printf '%s\n' "$f"
}

# run_kiln NAME SECONDS ARGS...: runs kiln with stdin from /dev/null, output to
# $E2E_OUT/NAME.log; sets rc (124 on timeout) and log. Also records wall seconds in secs.
run_kiln() {
	local name=$1 limit=$2 start end
	shift 2
	log=$E2E_OUT/$name.log
	start=$(date +%s.%N)
	rc=0
	timeout --kill-after=5 "$limit" "$KILN" "$@" </dev/null >"$log" 2>&1 || rc=$?
	end=$(date +%s.%N)
	secs=$(printf '%.1f' "$(echo "$end - $start" | bc)")
}

# expect_boot NAME: the guest's agent passed and kiln exited 0.
expect_boot() {
	local name=$1
	if [ "$rc" -eq 124 ]; then
		fail "$name" "kiln timed out" "$log"
	elif ! grep -q 'KILN-RESULT [a-z-]* PASS' "$log"; then
		fail "$name" "no passing KILN-RESULT line (kiln exit $rc)" "$log"
	elif [ "$rc" -ne 0 ]; then
		fail "$name" "guest passed but kiln exited $rc" "$log"
	else
		pass "$name" "${secs}s, $(grep -o 'KILN-RESULT.*' "$log" | tr -d '\r' | head -1)"
		return 0
	fi
	return 1
}

# summary: prints the closing count line; returns non-zero if anything failed.
summary() {
	printf '\ne2e: %d passed, %d failed\n' "$e2e_passed" "$e2e_failed"
	if [ "$e2e_failed" -gt 0 ]; then
		printf 'failed: %s\n' "${e2e_failures[*]}"
		return 1
	fi
}
