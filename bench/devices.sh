# Device throughput for bench/run (sourced inside L1): virtio-blk under kiln (Sync and Async
# engines) and under QEMU -M microvm, the same guest doing the same work on the same image file;
# virtio-net TCP throughput both ways through the same TAP. Sets dev_md_rows and dev_json_rows.
. tests/e2e/scenarios/net.sh # NET_HOST_PY, NET_* addresses, net_tap_up/down

# blk_bench NAME CMD...: one guest run of kiln.test=blkbench; prints its KILN-BENCH figures.
blk_bench() {
	local name=$1 line
	shift
	timeout --kill-after=5 300 "$@" </dev/null >"$work/$name.log" 2>&1 || true
	line=$(grep -o 'KILN-BENCH blk .*' "$work/$name.log" | tr -d '\r' | head -1)
	[ -n "$line" ] || { say "$name: no KILN-BENCH line; last lines:"; tail -n 20 "$work/$name.log" >&2; exit 1; }
	echo "$line"
}

# bench_field LINE KEY: the value of KEY=VALUE in LINE.
bench_field() { grep -o "$2=[0-9.]*" <<<"$1" | cut -d= -f2; }

# dev_median NAME KEY: the median of KEY over the runs in $work/dev-NAME.runs (a line each).
dev_median() { grep -o "$2=[0-9.]*" "$work/dev-$1.runs" | cut -d= -f2 | median; }

# Runs per monitor and figure, alternating: bench/run's RUNS.
dev_runs=${runs:-1}

# net_bench NAME CMD...: the agent's net test (32 MiB each way over TCP to a host peer on the
# TAP); prints "tx_mbps=.. rx_mbps=..".
net_bench() {
	local name=$1 py res
	shift
	net_tap_up >"$work/$name-tap.log" 2>&1 || { say "$name: cannot create $NET_TAP"; exit 1; }
	timeout -k 5 280 /usr/bin/python3 -c "$NET_HOST_PY" "$NET_HOST_IP" "$NET_PORT" 32 \
		"$NET_GUEST_IP" >"$work/$name-host.log" 2>&1 &
	py=$!
	for _ in $(seq 1 100); do
		grep -q listening "$work/$name-host.log" 2>/dev/null && break
		sleep 0.1
	done
	timeout --kill-after=5 300 "$@" </dev/null >"$work/$name.log" 2>&1 || true
	kill "$py" 2>/dev/null || true
	wait "$py" 2>/dev/null || true
	net_tap_down
	res=$(grep -o 'KILN-RESULT net PASS.*' "$work/$name.log" | tr -d '\r' | head -1)
	[ -n "$res" ] || { say "$name: no passing net test; last lines:"; tail -n 20 "$work/$name.log" >&2; exit 1; }
	echo "$(grep -o 'tx_mbps=[0-9.]*' <<<"$res") $(grep -o 'rx_mbps=[0-9.]*' <<<"$res")"
}

device_benches() {
	local img dir bargs row key i
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-blk.XXXXXX")
	img=$dir/disk.img
	# Same preallocated file on L1's tmpfs for every run: no disk noise, no sparse-file effects.
	fallocate -l 128M "$img"
	bargs="console=ttyS0 quiet reboot=t panic=1 pci=off kiln.test=blkbench kiln.bench_dev=vda kiln.bench_mib=64 kiln.bench_secs=3"
	for engine in Sync Async; do
		cat >"$work/kiln-blk-$engine.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$guest/vmlinux",
                   "initrd_path": "$guest/initramfs.cpio.gz", "boot_args": "$bargs" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 128 },
  "drives": [ { "drive_id": "bench", "path_on_host": "$img", "is_root_device": false,
                "is_read_only": false, "io_engine": "$engine" } ]
}
JSON
	done
	rm -f "$work"/dev-*.runs
	for i in $(seq 1 "$dev_runs"); do
		blk_bench kiln-blk-sync build/kiln --no-api --config-file "$work/kiln-blk-Sync.json" \
			>>"$work/dev-kiln-sync.runs"
		blk_bench kiln-blk-async build/kiln --no-api --config-file "$work/kiln-blk-Async.json" \
			>>"$work/dev-kiln-async.runs"
		blk_bench qemu-blk qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off -accel kvm \
			-cpu host -smp 1 -m 128 -object memory-backend-memfd,id=mem,size=128M \
			-machine memory-backend=mem -kernel "$guest/vmlinux" -initrd "$guest/initramfs.cpio.gz" \
			-append "$bargs" -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
			-drive id=d0,file="$img",format=raw,if=none -device virtio-blk-device,drive=d0 \
			>>"$work/dev-qemu-blk.runs"
		say "blk run $i/$dev_runs: kiln Sync: $(tail -1 "$work/dev-kiln-sync.runs");" \
			"kiln Async: $(tail -1 "$work/dev-kiln-async.runs"); QEMU: $(tail -1 "$work/dev-qemu-blk.runs")"
	done
	rm -rf "$dir"

	local nargs="console=ttyS0 quiet reboot=t panic=1 pci=off kiln.test=net kiln.net_ip=$NET_GUEST_IP/30 kiln.net_peer=$NET_HOST_IP kiln.net_port=$NET_PORT kiln.net_mib=32 kiln.net_mac=$NET_MAC"
	cat >"$work/kiln-net.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$guest/vmlinux",
                   "initrd_path": "$guest/initramfs.cpio.gz", "boot_args": "$nargs" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 256 },
  "network-interfaces": [ { "iface_id": "eth0", "host_dev_name": "$NET_TAP", "guest_mac": "$NET_MAC" } ]
}
JSON
	for i in $(seq 1 "$dev_runs"); do
		net_bench kiln-net build/kiln --no-api --config-file "$work/kiln-net.json" \
			>>"$work/dev-kiln-net.runs"
		net_bench qemu-net qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off -accel kvm \
			-cpu host -smp 1 -m 256 -object memory-backend-memfd,id=mem,size=256M \
			-machine memory-backend=mem -kernel "$guest/vmlinux" -initrd "$guest/initramfs.cpio.gz" \
			-append "$nargs" -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
			-netdev tap,id=n0,ifname="$NET_TAP",script=no,downscript=no \
			-device virtio-net-device,netdev=n0,mac="$NET_MAC" >>"$work/dev-qemu-net.runs"
		say "net run $i/$dev_runs: kiln: $(tail -1 "$work/dev-kiln-net.runs");" \
			"QEMU: $(tail -1 "$work/dev-qemu-net.runs")"
	done
	dev_md_rows='' dev_json_rows=''
	for row in "seq_write_mbs|virtio-blk sequential write, 1 MiB O_DIRECT (MB/s)" \
		"seq_read_mbs|virtio-blk sequential read, 1 MiB O_DIRECT (MB/s)" \
		"rand_read_iops|virtio-blk 4 KiB random read, O_DIRECT (IOPS)" \
		"rand_write_iops|virtio-blk 4 KiB random write, O_DIRECT (IOPS)"; do
		key=${row%%|*}
		local s a r
		s=$(dev_median kiln-sync "$key") a=$(dev_median kiln-async "$key") r=$(dev_median qemu-blk "$key")
		dev_md_rows+="| ${row#*|} | Sync $s / Async $a | QEMU -M microvm: $r | $(ratio "$s" "$r") / $(ratio "$a" "$r") |
"
		dev_json_rows+="    { \"figure\": \"blk_$key\", \"kiln\": $s, \"kiln_async\": $a, \"reference\": $r, \"reference_name\": \"qemu-microvm\", \"ratio\": $(ratio "$s" "$r"), \"ratio_async\": $(ratio "$a" "$r"), \"runs\": $dev_runs },
"
	done
	for row in "tx_mbps|virtio-net TCP guest → host, 32 MiB (Mbit/s)" \
		"rx_mbps|virtio-net TCP host → guest, 32 MiB (Mbit/s)"; do
		key=${row%%|*}
		local k r
		k=$(dev_median kiln-net "$key") r=$(dev_median qemu-net "$key")
		dev_md_rows+="| ${row#*|} | $k | QEMU -M microvm: $r | $(ratio "$k" "$r") |
"
		dev_json_rows+="    { \"figure\": \"net_$key\", \"kiln\": $k, \"reference\": $r, \"reference_name\": \"qemu-microvm\", \"ratio\": $(ratio "$k" "$r"), \"runs\": $dev_runs },
"
	done
}
