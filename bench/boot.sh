# Boot, start and footprint for bench/run (an L1 section, see bench/lib.sh): the same guest
# started by kiln and by QEMU -M microvm alternately and timed to the guest agent's init marker:
# from process start (config file), from the start request (kiln's API, QEMU's QMP after -S), and
# as a rate (several one after another, two at a time); and the monitor's resident memory beyond
# guest RAM at that moment, with no devices and with a drive, a TAP, vsock and an rng.
. tests/e2e/scenarios/net.sh # NET_TAP, NET_MAC, net_tun_ready, net_tap_up, net_tap_down

boot_marker="kiln-agent: up"
# reboot=t (triple fault): QEMU's microvm has no i8042, and both monitors end on a triple fault.
# The i8042 flags are Firecracker's default, and kiln's without boot_args: they shorten the
# guest's probe of kiln's i8042 (QEMU's microvm has none), about 1.9 s of guest time under TCG.
boot_args="console=ttyS0 quiet reboot=t panic=1 pci=off i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd kiln.test=boot kiln.expect_cpus=1 kiln.expect_mem_mib=128"
# How many guests one start-rate figure starts (KILN_BENCH_BOOT_RATE_N, default 3): 3 keeps the
# section near 6 minutes of L1 time at 3 runs (a boot takes 5-8 s in L1), and two at a time
# still refills once.
boot_rate_n=${KILN_BENCH_BOOT_RATE_N:-3}

# boot_fail NAME: reports NAME's failure with its log's last lines, and exits 1.
boot_fail() {
	say "$1: failed; last lines of $work/$1.log:"
	tail -n 20 "$work/$1.log" | tr -d '\r' | sed 's/^/  | /' >&2
	net_tap_down
	exit 1
}

# boot_measure NAME CMD...: one run from process start; appends "marker_ms total_ms
# overhead_kib" to $work/NAME.
boot_measure() {
	local name=$1 line
	shift
	line=$(build/bench/marktime "$boot_marker" --log "$work/$name.log" --timeout 120 -- "$@") ||
		boot_fail "$name"
	grep -q 'KILN-RESULT boot PASS' "$work/$name.log" || boot_fail "$name"
	# Resident memory beyond guest RAM: anonymous plus file-backed pages (guest RAM is a memfd,
	# counted as shmem, for both).
	echo "$line" | awk '{
		for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		print v["marker_ms"], v["total_ms"], v["rss_anon_kib"] + v["rss_file_kib"] }' >>"$work/$name"
}

# boot_tool NAME ARGS...: one build/bench/boot_start run (ARGS up to and with its "--" and the
# command); appends the values of its "key=value" line, in order, to $work/NAME.
boot_tool() {
	local name=$1 line
	shift
	line=$(build/bench/boot_start "$@" 2>"$work/$name.err") || {
		say "$name: $(cat "$work/$name.err")"
		boot_fail "$name"
	}
	awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); printf "%s%s", (i > 1) ? " " : "", kv[2] }
		print "" }' <<<"$line" >>"$work/$name"
}

# boot_col NAME N: the median of column N of $work/NAME.
boot_col() { cut -d' ' -f"$2" "$work/$1" | median; }

# boot_row FIGURE LABEL KILN REF REF_LABEL REF_NAME [JSON_EXTRA]: one row into boot_md and
# boot_json.
boot_row() {
	boot_md+="| $2 | $3 | $5: $4 | $(ratio "$3" "$4") |
"
	boot_json+="    { \"figure\": \"$1\", \"kiln\": $3, \"reference\": $4, \"reference_name\": \"$6\", \"ratio\": $(ratio "$3" "$4"), \"runs\": $boot_runs${7:+, $7} },
"
}

boot_benches() {
	local i dir kiln vmlinux initrd vsock_note qemu_vsock=() cpus
	local boot_runs=$1 boot_md='' boot_json='' # read by boot_row
	# Under /tmp (tmpfs in L1): sockets, which the harness's 9p share cannot hold, the drive
	# image, and copies of kiln and the guest images, so that neither monitor reads them
	# through 9p (QEMU's binary is on the host's root share, which L1 caches).
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-boot.XXXXXX")
	kiln=$dir/kiln vmlinux=$dir/vmlinux initrd=$dir/initramfs.cpio.gz
	cp build/kiln "$kiln"
	cp "$guest/vmlinux" "$vmlinux"
	cp "$guest/initramfs.cpio.gz" "$initrd"
	fallocate -l 16M "$dir/disk.img"
	cpus=$(nproc)

	local boot_source="{ \"kernel_image_path\": \"$vmlinux\", \"initrd_path\": \"$initrd\", \"boot_args\": \"$boot_args\" }"
	local machine='{ "vcpu_count": 1, "mem_size_mib": 128 }'
	local devices="\"drives\": [ { \"drive_id\": \"scratch\", \"path_on_host\": \"$dir/disk.img\", \"is_root_device\": false, \"is_read_only\": false } ],
  \"network-interfaces\": [ { \"iface_id\": \"eth0\", \"host_dev_name\": \"$NET_TAP\", \"guest_mac\": \"$NET_MAC\" } ],
  \"vsock\": { \"guest_cid\": 3, \"uds_path\": \"$dir/vsock.sock\" },
  \"entropy\": {}"
	printf '{\n  "boot-source": %s,\n  "machine-config": %s\n}\n' "$boot_source" "$machine" \
		>"$work/kiln.json"
	printf '{\n  "boot-source": %s,\n  "machine-config": %s,\n  %s\n}\n' "$boot_source" \
		"$machine" "$devices" >"$work/kiln-dev.json"

	local kiln_cmd=("$kiln" --no-api --config-file "$work/kiln.json")
	local kiln_dev_cmd=("$kiln" --no-api --config-file "$work/kiln-dev.json")
	local kiln_api_cmd=(kiln "$dir/api.sock" "$boot_marker" --put /boot-source "$boot_source"
		--put /machine-config "$machine" --log "$work/kiln-api.log" --timeout 120 --
		"$kiln" --api-sock "$dir/api.sock" --id bench-boot)
	local qemu_cmd=(qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off -accel kvm -cpu host
		-smp 1 -m 128 -object memory-backend-memfd,id=mem,size=128M -machine memory-backend=mem
		-kernel "$vmlinux" -initrd "$initrd" -append "$boot_args"
		-nodefaults -no-user-config -nographic -serial stdio -no-reboot)
	# vhost-vsock needs L1's vhost_vsock module; kiln's vsock is its own (a unix socket).
	if [ -c /dev/vhost-vsock ]; then
		qemu_vsock=(-device vhost-vsock-device,guest-cid=3)
		vsock_note="vhost-vsock-device (guest-cid 3)"
	else
		vsock_note="no vsock: L1 has no /dev/vhost-vsock, so QEMU's vhost-vsock-device cannot be made and is left out"
	fi
	local qemu_dev_cmd=("${qemu_cmd[@]}"
		-drive id=d0,file="$dir/disk.img",format=raw,if=none -device virtio-blk-device,drive=d0
		-netdev tap,id=n0,ifname="$NET_TAP",script=no,downscript=no,vhost=off
		-device virtio-net-device,netdev=n0,mac="$NET_MAC" "${qemu_vsock[@]}"
		-object rng-builtin,id=rng0 -device virtio-rng-device,rng=rng0)
	local qemu_api_cmd=(qemu "$dir/qmp.sock" "$boot_marker" --log "$work/qemu-api.log"
		--timeout 120 -- "${qemu_cmd[@]}" -S -qmp "unix:$dir/qmp.sock,server=on,wait=off")

	net_tun_ready || die "boot: no /dev/net/tun"
	net_tap_up >"$work/boot-tap.log" 2>&1 || { cat "$work/boot-tap.log" >&2; die "boot: cannot create $NET_TAP"; }
	rm -f "$work"/{kiln,qemu}{,-dev,-api,-serial,-par}
	for i in $(seq 1 "$boot_runs"); do
		boot_measure kiln "${kiln_cmd[@]}"
		boot_measure qemu "${qemu_cmd[@]}"
		rm -f "$dir/vsock.sock"
		boot_measure kiln-dev "${kiln_dev_cmd[@]}"
		boot_measure qemu-dev "${qemu_dev_cmd[@]}"
		rm -f "$dir/api.sock" "$dir/qmp.sock"
		boot_tool kiln-api "${kiln_api_cmd[@]}"
		boot_tool qemu-api "${qemu_api_cmd[@]}"
		boot_tool kiln-serial rate "$boot_rate_n" 1 "$boot_marker" --log "$work/kiln-serial.log" \
			--timeout 300 -- "${kiln_cmd[@]}"
		boot_tool qemu-serial rate "$boot_rate_n" 1 "$boot_marker" --log "$work/qemu-serial.log" \
			--timeout 300 -- "${qemu_cmd[@]}"
		boot_tool kiln-par rate "$boot_rate_n" 2 "$boot_marker" --log "$work/kiln-par.log" \
			--timeout 300 -- "${kiln_cmd[@]}"
		boot_tool qemu-par rate "$boot_rate_n" 2 "$boot_marker" --log "$work/qemu-par.log" \
			--timeout 300 -- "${qemu_cmd[@]}"
		say "boot run $i/$boot_runs: start→init ms kiln $(tail -1 "$work/kiln" | cut -d' ' -f1), qemu $(tail -1 "$work/qemu" | cut -d' ' -f1); start request→init ms kiln $(tail -1 "$work/kiln-api" | cut -d' ' -f3), qemu $(tail -1 "$work/qemu-api" | cut -d' ' -f3); per s serial kiln $(tail -1 "$work/kiln-serial" | cut -d' ' -f2), qemu $(tail -1 "$work/qemu-serial" | cut -d' ' -f2)"
	done
	net_tap_down
	rm -rf "$dir"

	local k q kr qr ka qa qset qjson
	qset="QEMU -M microvm, blk + net + rng$([ ${#qemu_vsock[@]} -gt 0 ] && echo " + vhost-vsock" ||
		echo " (no /dev/vhost-vsock in L1)")"
	qjson="\"qemu_vsock\": $([ ${#qemu_vsock[@]} -gt 0 ] && echo true || echo false)"
	k=$(boot_col kiln 1) q=$(boot_col qemu 1)
	boot_row boot_to_init_ms "process start → guest init marker (ms)" "$k" "$q" \
		"QEMU -M microvm" qemu-microvm
	k=$(boot_col kiln-dev 1) q=$(boot_col qemu-dev 1)
	boot_row boot_to_init_all_devices_ms \
		"process start → guest init marker, blk + net + vsock + rng (ms)" "$k" "$q" "$qset" \
		qemu-microvm "$qjson"
	k=$(boot_col kiln-api 3) q=$(boot_col qemu-api 3)
	kr=$(boot_col kiln-api 1) qr=$(boot_col qemu-api 1)
	ka=$(boot_col kiln-api 2) qa=$(boot_col qemu-api 2)
	boot_row instance_start_to_init_ms "\`InstanceStart\` → guest init marker (ms)" "$k" "$q" \
		"QEMU -M microvm -S, QMP \`cont\`" qemu-microvm-cont \
		"\"kiln_ready_ms\": $kr, \"reference_ready_ms\": $qr, \"kiln_answer_ms\": $ka, \"reference_answer_ms\": $qa"
	k=$(boot_col kiln 3) q=$(boot_col qemu 3)
	boot_row rss_beyond_guest_ram_kib "resident memory beyond guest RAM at init, no devices (KiB)" \
		"$k" "$q" "QEMU -M microvm" qemu-microvm
	k=$(boot_col kiln-dev 3) q=$(boot_col qemu-dev 3)
	boot_row rss_beyond_guest_ram_all_devices_kib \
		"resident memory beyond guest RAM at init, blk + net + vsock + rng (KiB)" "$k" "$q" \
		"$qset" qemu-microvm "$qjson"
	k=$(boot_col kiln-serial 2) q=$(boot_col qemu-serial 2)
	boot_row start_rate_serial_per_s \
		"start rate, $boot_rate_n one after another (microVMs/s to init marker)" "$k" "$q" \
		"QEMU -M microvm" qemu-microvm "\"vms\": $boot_rate_n, \"at_once\": 1, \"l1_cpus\": $cpus, \"higher_is_better\": true"
	k=$(boot_col kiln-par 2) q=$(boot_col qemu-par 2)
	boot_row start_rate_two_at_a_time_per_s \
		"start rate, $boot_rate_n two at a time (microVMs/s to init marker)" "$k" "$q" \
		"QEMU -M microvm" qemu-microvm "\"vms\": $boot_rate_n, \"at_once\": 2, \"l1_cpus\": $cpus, \"higher_is_better\": true"

	printf '%s' "$boot_md" >"$work/boot.rows.md"
	printf '%s' "$boot_json" >"$work/boot.rows.json"
	cat >"$work/boot.text.md" <<MD
Boot rows: 1 vCPU, 128 MiB, build/guest/vmlinux + initramfs, the same boot arguments for both,
median of $boot_runs runs each, kiln and QEMU alternating, in L1 with $cpus CPU$([ "$cpus" -gt 1 ] && echo s).
Both monitors read the guest images, and kiln its binary, from copies on L1's tmpfs. Every guest
must print "$boot_marker", then \`KILN-RESULT boot PASS\`, and its monitor must end; if one does
not, the section fails with the log's tail. The timing tools read CLOCK_MONOTONIC when they
read the marker line from the monitor's stdout (the serial console).

*Process start → init*: bench/marktime times from its fork of the monitor, kiln with
\`--no-api --config-file\`, QEMU with its whole command line. kiln emulates an i8042 controller (for
\`SendCtrlAltDel\`, as Firecracker does) and QEMU's microvm has none; with no ACPI tables the
guest probes kiln's i8042 directly during boot. Both get Firecracker's default
\`i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd\` (kiln's too when a config gives no
\`boot_args\`), which shorten that probe; without them kiln's guest spent about 1.9 s of guest
time in it in a one-off run.

*\`InstanceStart\` → init*: bench/boot_start forks kiln with \`--api-sock\`, connects, sends
\`PUT /boot-source\` and \`PUT /machine-config\`, reads the clock (t0) and writes
\`PUT /actions {"action_type": "InstanceStart"}\`. QEMU is forked with \`-S\` and a QMP socket;
boot_start negotiates QMP, reads the clock (t0) and writes \`cont\`. Both end at the marker line.
QEMU builds its machine and loads the kernel and initramfs before \`-S\` stops it, so \`cont\`
only starts the vCPU. kiln builds the VM and loads the images after \`InstanceStart\`, as
Firecracker does. Process start → ready (socket connected, configured): kiln $kr ms, QEMU
$qr ms. t0 → answer (kiln's 204, QMP's return to \`cont\`): kiln $ka ms, QEMU $qa ms.

*Resident memory*: RssAnon + RssFile of the monitor process when the marker arrives. Guest
RAM is a memfd (RssShmem) for both and is left out. *blk + net + vsock + rng*: kiln with a
virtio-blk drive (a 16 MiB file on tmpfs, Sync engine), virtio-net on a TAP, vsock (its unix
socket) and entropy. QEMU with virtio-blk-device on the same file (default cache),
virtio-net-device on the same TAP (tap netdev, vhost=off), virtio-rng-device (rng-builtin) and
$vsock_note.

*Start rate*: boot_start starts $boot_rate_n guests of the no-device configuration. One after
another: the next is forked when the one before prints its marker; that one then ends on its
own meanwhile. Two at a time: two are forked at once, and a new one each time one of them prints
its marker. The rate is $boot_rate_n over the time from the first fork to the last marker; its
ratio above 1 means kiln starts more per second.
$([ "$cpus" -eq 1 ] && echo "L1 has one CPU, so two guests at a time share it, with their monitors and the timing tool." || echo "L1 has $cpus CPUs, shared by the guests, their monitors and the timing tool.")
MD
}
