# Boot and footprint for bench/run (an L1 section, see bench/lib.sh): the same guest booted by
# kiln and by QEMU -M microvm alternately, timed from process start to the guest agent's init
# marker, with the monitor's resident memory beyond guest RAM at that moment.

boot_marker="kiln-agent: up"
# reboot=t (triple fault): QEMU's microvm has no i8042, and both monitors end on a triple fault.
boot_args="console=ttyS0 quiet reboot=t panic=1 pci=off kiln.test=boot kiln.expect_cpus=1 kiln.expect_mem_mib=128"

# boot_measure NAME CMD...: one run; appends "marker_ms total_ms overhead_kib" to $work/NAME.
boot_measure() {
	local name=$1 line
	shift
	line=$(build/bench/marktime "$boot_marker" --log "$work/$name.log" --timeout 120 -- "$@") || {
		say "$name: no init marker; last lines:"
		tail -n 20 "$work/$name.log" >&2
		exit 1
	}
	grep -q 'KILN-RESULT boot PASS' "$work/$name.log" || { say "$name: guest test failed"; exit 1; }
	# Resident memory beyond guest RAM: anonymous plus file-backed pages (guest RAM is a memfd,
	# counted as shmem, for both).
	echo "$line" | awk '{
		for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		print v["marker_ms"], v["total_ms"], v["rss_anon_kib"] + v["rss_file_kib"] }' >>"$work/$name"
}

boot_benches() {
	local runs=$1 i k_boot q_boot k_mem q_mem
	cat >"$work/kiln.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$guest/vmlinux",
                   "initrd_path": "$guest/initramfs.cpio.gz", "boot_args": "$boot_args" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 128 }
}
JSON
	local kiln_cmd=(build/kiln --no-api --config-file "$work/kiln.json")
	local qemu_cmd=(qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off -accel kvm -cpu host
		-smp 1 -m 128 -object memory-backend-memfd,id=mem,size=128M -machine memory-backend=mem
		-kernel "$guest/vmlinux" -initrd "$guest/initramfs.cpio.gz" -append "$boot_args"
		-nodefaults -no-user-config -nographic -serial stdio -no-reboot)

	rm -f "$work/kiln" "$work/qemu"
	for i in $(seq 1 "$runs"); do
		boot_measure kiln "${kiln_cmd[@]}"
		boot_measure qemu "${qemu_cmd[@]}"
		say "boot run $i/$runs: kiln $(tail -1 "$work/kiln"), qemu $(tail -1 "$work/qemu")"
	done
	k_boot=$(cut -d' ' -f1 "$work/kiln" | median)
	q_boot=$(cut -d' ' -f1 "$work/qemu" | median)
	k_mem=$(cut -d' ' -f3 "$work/kiln" | median)
	q_mem=$(cut -d' ' -f3 "$work/qemu" | median)

	cat >"$work/boot.rows.md" <<MD
| start → guest init marker (ms) | $k_boot | QEMU -M microvm: $q_boot | $(ratio "$k_boot" "$q_boot") |
| resident memory beyond guest RAM at init (KiB) | $k_mem | QEMU -M microvm: $q_mem | $(ratio "$k_mem" "$q_mem") |
MD
	cat >"$work/boot.rows.json" <<JSON
    { "figure": "boot_to_init_ms", "kiln": $k_boot, "reference": $q_boot, "reference_name": "qemu-microvm", "ratio": $(ratio "$k_boot" "$q_boot"), "runs": $runs },
    { "figure": "rss_beyond_guest_ram_kib", "kiln": $k_mem, "reference": $q_mem, "reference_name": "qemu-microvm", "ratio": $(ratio "$k_mem" "$q_mem"), "runs": $runs },
JSON
	cat >"$work/boot.text.md" <<MD
Boot rows: 1 vCPU, 128 MiB, build/guest/vmlinux + initramfs, median of $runs runs each, kiln
and QEMU alternating. Boot time is measured the same way for both: from process start to the
guest agent's "$boot_marker" line on the serial console. Memory is RssAnon + RssFile of the
monitor process at that moment; guest RAM is a memfd (RssShmem) for both and is left out.
MD
}
