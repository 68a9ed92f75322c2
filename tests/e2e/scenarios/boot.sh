# Boot scenarios: real Linux guests to their init, on KVM (inside L1 where the host has none).

# boot_check NAME KERNEL VCPUS MEM_MIB: the guest's agent checks the CPU count and memory size.
boot_check() {
	local cfg
	cfg=$(guest_config "$1" "$2" "$3" "$4" None \
		"kiln.test=boot kiln.expect_cpus=$3 kiln.expect_mem_mib=$4")
	run_kiln "$1" 180 --no-api --config-file "$cfg"
	expect_boot "$1"
}

kvm_boot_elf() { boot_check boot-elf "$GUEST/vmlinux" 2 128; }
kvm_boot_bzimage() { boot_check boot-bzimage "$GUEST/bzImage" 2 128; }
kvm_boot_1cpu_256m() { boot_check boot-1cpu-256m "$GUEST/vmlinux" 1 256; }

# The agent compares MemTotal with what it is told to expect: tell it the wrong size and
# the same boot must fail, or the memory check proves nothing.
kvm_boot_wrong_expectation_fails() {
	local cfg
	cfg=$(guest_config boot-wrong-mem "$GUEST/vmlinux" 2 128 None \
		"kiln.test=boot kiln.expect_cpus=4 kiln.expect_mem_mib=256")
	run_kiln boot-wrong-mem 180 --no-api --config-file "$cfg"
	if grep -q 'KILN-RESULT boot FAIL' "$log" && grep -q 'cpus' "$log"; then
		pass boot-wrong-expectation-fails "$(grep -o 'KILN-RESULT.*' "$log" | head -1)"
	else
		fail boot-wrong-expectation-fails "the agent did not report a mismatch" "$log"
	fi
}

hugepages_free() {
	awk '/^HugePages_Free:/ {print $2}' /proc/meminfo
}

# 2 MiB hugetlb guest RAM: the guest boots and the host's free hugepage count drops.
kvm_boot_hugepages() {
	local cfg pid before during="" i
	before=$(hugepages_free)
	if [ "${before:-0}" -lt 64 ]; then
		fail boot-hugepages "the host has ${before:-0} free 2 MiB hugepages, the test needs 64"
		return
	fi
	cfg=$(guest_config boot-hugepages "$GUEST/vmlinux" 2 128 2M \
		"kiln.test=boot kiln.expect_cpus=2 kiln.expect_mem_mib=128")
	log=$E2E_OUT/boot-hugepages.log
	timeout --kill-after=5 180 "$KILN" --no-api --config-file "$cfg" </dev/null >"$log" 2>&1 &
	pid=$!
	# The lowest free count seen while kiln runs: the guest touches its RAM as it boots.
	while kill -0 "$pid" 2>/dev/null; do
		i=$(hugepages_free)
		if [ -z "$during" ] || [ "$i" -lt "$during" ]; then during=$i; fi
		sleep 0.05
	done
	rc=0
	wait "$pid" || rc=$?
	if [ -z "$during" ]; then
		fail boot-hugepages "kiln did not run (exit $rc)" "$log"
	elif [ "$during" -ge "$before" ]; then
		fail boot-hugepages "HugePages_Free did not drop ($before before, $during while running)" "$log"
	elif [ "$rc" -ne 0 ] || ! grep -q 'KILN-RESULT boot PASS' "$log"; then
		fail boot-hugepages "no passing boot (kiln exit $rc)" "$log"
	else
		pass boot-hugepages "HugePages_Free $before before, $during while the guest ran"
	fi
}

# Asking for more hugepages than the host has: one clear line, non-zero exit, no guest.
kvm_hugepages_too_few() {
	local cfg free need
	free=$(hugepages_free)
	need=$(((${free:-0} + 8) * 2))
	cfg=$(guest_config hugepages-too-few "$GUEST/vmlinux" 1 "$need" 2M "kiln.test=boot")
	run_kiln hugepages-too-few 60 --no-api --config-file "$cfg"
	if [ "$rc" -ne 0 ] && grep -q 'hugepages' "$log" && ! grep -q 'kiln-agent' "$log"; then
		pass hugepages-too-few "exit $rc: $(grep -m1 hugepages "$log")"
	else
		fail hugepages-too-few "expected a hugepage error and no guest (exit $rc)" "$log"
	fi
}

# The serial console can go to a file instead of stdout (Firecracker's "serial" section).
kvm_serial_to_file() {
	local cfg out=$E2E_OUT/serial-out.txt
	rm -f "$out"
	cfg=$(guest_config serial-to-file "$GUEST/vmlinux" 1 128 None \
		"kiln.test=boot kiln.expect_cpus=1 kiln.expect_mem_mib=128" \
		"\"serial\": { \"serial_out_path\": \"$out\" }")
	run_kiln serial-to-file 180 --no-api --config-file "$cfg"
	if [ "$rc" -eq 0 ] && grep -q 'KILN-RESULT boot PASS' "$out" && ! grep -q 'KILN-RESULT' "$log"; then
		pass serial-to-file "${secs}s"
	else
		fail serial-to-file "console not in $out, or also on stdout (exit $rc)" "$out"
	fi
}

# Host input reaches the guest: type into busybox sh over the serial console.
kvm_console_input() {
	local cfg fifo pid i ok=""
	fifo=$(mktemp -u "${TMPDIR:-/tmp}/kiln-console-in.XXXXXX")
	log=$E2E_OUT/console-input.log
	rm -f "$fifo"
	mkfifo "$fifo"
	cfg=$(guest_config console-input "$GUEST/vmlinux" 1 128 None "kiln.test=shell")
	timeout --kill-after=5 180 "$KILN" --no-api --config-file "$cfg" <"$fifo" >"$log" 2>&1 &
	pid=$!
	exec 7>"$fifo"
	for i in $(seq 1 1500); do
		grep -q 'kiln:.*# ' "$log" 2>/dev/null && { ok=1; break; }
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -n "$ok" ]; then
		printf 'echo KILN-ECHO-$((6*7))\n' >&7
		for i in $(seq 1 300); do
			grep -q 'KILN-ECHO-42' "$log" && break
			sleep 0.1
		done
		printf 'reboot\n' >&7
	fi
	exec 7>&-
	rc=0
	wait "$pid" || rc=$?
	rm -f "$fifo"
	if [ -z "$ok" ]; then
		fail console-input "no shell prompt (kiln exit $rc)" "$log"
	elif ! grep -q 'KILN-ECHO-42' "$log"; then
		fail console-input "the guest shell did not run what was typed" "$log"
	elif [ "$rc" -ne 0 ]; then
		fail console-input "kiln exited $rc after the guest rebooted" "$log"
	else
		pass console-input "typed a command, the guest ran it, reboot ended kiln"
	fi
}

# --boot-timer: the agent writes Firecracker's magic byte; kiln logs the boot time.
kvm_boot_timer() {
	local cfg
	cfg=$(guest_config boot-timer "$GUEST/vmlinux" 1 128 None \
		"kiln.test=boot kiln.expect_cpus=1 kiln.expect_mem_mib=128")
	run_kiln boot-timer 180 --no-api --config-file "$cfg" --boot-timer
	if [ "$rc" -eq 0 ] && grep -q 'Guest-boot-time = [0-9]* us' "$log"; then
		pass boot-timer "$(grep -o 'Guest-boot-time.*' "$log")"
	else
		fail boot-timer "no Guest-boot-time line (exit $rc)" "$log"
	fi
}
