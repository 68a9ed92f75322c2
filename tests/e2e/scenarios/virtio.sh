# virtio-blk and virtio-rng scenarios: real guests on real devices (net and vsock have their own
# files).

# crc32 FILE: zlib's CRC-32 of FILE as 8 hex digits (the agent's blk_crc).
crc32() {
	/usr/bin/python3 -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()))' "$1"
}

# disk_config NAME ROOT_IMG RO_IMG ENGINE ARGS [EXTRA]: a guest booting from ROOT_IMG as its root
# drive (no initramfs), with RO_IMG as a read-only second drive; prints the config's path.
disk_config() {
	local name=$1 root=$2 ro=$3 engine=$4 args=$5 extra=${6:-} f=$E2E_OUT/$1.json
	cat >"$f" <<JSON
{
  "boot-source": {
    "kernel_image_path": "$GUEST/vmlinux",
    "boot_args": "console=ttyS0 quiet reboot=k panic=1 pci=off init=/sbin/init $args"
  },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 128 },
  "drives": [
    { "drive_id": "scratch", "path_on_host": "$ro", "is_root_device": false,
      "is_read_only": true, "io_engine": "$engine" },
    { "drive_id": "rootfs", "path_on_host": "$root", "is_root_device": true,
      "is_read_only": false, "cache_type": "Writeback", "io_engine": "$engine" }
  ]${extra:+,
  $extra}
}
JSON
	printf '%s\n' "$f"
}

# The guest boots from an ext4 root on virtio-blk, checks a read-only second drive, writes 4 MiB,
# fsyncs, reads it back past its page cache and reboots; the host finds the same bytes in the
# image. ENGINE is Sync or Async.
blk_root_check() {
	local engine=$1 name=blk-root-${1,,} root ro seed=$((RANDOM + 1)) want got ro_sum
	root=$E2E_OUT/$name.ext4
	ro=$E2E_OUT/$name-ro.img
	cp --sparse=always "$GUEST/rootfs.ext4" "$root"
	{ printf 'kiln-ro-drive-ok'; head -c $((1024 * 1024 - 16)) /dev/zero; } >"$ro"
	ro_sum=$(sha256sum <"$ro")
	cfg=$(disk_config "$name" "$root" "$ro" "$engine" "kiln.test=blk kiln.blk_seed=$seed kiln.blk_ro=1")
	run_kiln "$name" 180 --no-api --config-file "$cfg"
	if [ "$rc" -eq 124 ]; then
		fail "$name" "kiln timed out" "$log"
		return
	elif [ "$rc" -ne 0 ] || ! grep -q 'KILN-RESULT blk PASS' "$log"; then
		fail "$name" "no passing KILN-RESULT line (kiln exit $rc)" "$log"
		return
	fi
	want=$(grep -o 'blk_crc=[0-9a-f]*' "$log" | head -1 | cut -d= -f2)
	rm -f "$E2E_OUT/$name.bin"
	debugfs -R "dump /kiln-blk.bin $E2E_OUT/$name.bin" "$root" >/dev/null 2>&1
	got=$([ -s "$E2E_OUT/$name.bin" ] && crc32 "$E2E_OUT/$name.bin")
	if [ -z "$want" ] || [ "$want" != "$got" ]; then
		fail "$name" "the image holds crc ${got:-nothing}, the guest wrote ${want:-?}" "$log"
	elif [ "$(sha256sum <"$ro")" != "$ro_sum" ]; then
		fail "$name" "the read-only drive's image changed" "$log"
	else
		pass "$name" "${secs}s, 4 MiB written in the guest read back on the host, crc32 $got; $(grep -o 'ro-[a-z]*=[^;)]*' "$log" | head -1)"
	fi
}

kvm_blk_root_sync() { blk_root_check Sync; }
kvm_blk_root_async() { blk_root_check Async; }

# A drive that does not exist: one clear error naming it, no guest.
kvm_blk_missing_file() {
	local cfg
	cfg=$(disk_config blk-missing /nonexistent/root.ext4 /nonexistent/ro.img Sync "kiln.test=blk")
	run_kiln blk-missing 60 --no-api --config-file "$cfg"
	if [ "$rc" -ne 0 ] && grep -q 'drive .*/nonexistent/.*No such file' "$log" &&
		! grep -q 'kiln-agent' "$log"; then
		pass blk-missing-file "exit $rc: $(grep -m1 'nonexistent' "$log" | tr -d '\r')"
	else
		fail blk-missing-file "expected a clear error about the drive (exit $rc)" "$log"
	fi
}

# virtio-rng: the guest's hwrng is kiln's device and gives random bytes.
kvm_rng() {
	local cfg
	cfg=$(guest_config rng "$GUEST/vmlinux" 1 128 None "kiln.test=rng" '"entropy": {}')
	run_kiln rng 180 --no-api --config-file "$cfg"
	expect_boot rng
}

# Drives and entropy through the REST API alone, as a Firecracker SDK would set them up: the guest
# boots from the root drive given by PUT /drives, runs the block test and reads its hwrng; then
# GET /vm/config shows the devices.
kvm_api_drives() {
	local name=api-drives sock=${TMPDIR:-/tmp}/kiln-api-drives.$$.sock pid root ro cfgdoc
	local metrics=$E2E_OUT/$name.metrics
	root=$E2E_OUT/$name.ext4
	ro=$E2E_OUT/$name-ro.img
	log=$E2E_OUT/$name.log
	cp --sparse=always "$GUEST/rootfs.ext4" "$root"
	{ printf 'kiln-ro-drive-ok'; head -c $((1024 * 1024 - 16)) /dev/zero; } >"$ro"
	rm -f "$metrics"
	api_kiln "$name" "$sock" 180 \
		"PUT /boot-source {\"kernel_image_path\": \"$GUEST/vmlinux\", \"boot_args\": \"console=ttyS0 quiet reboot=k panic=1 pci=off init=/sbin/init kiln.test=blk kiln.blk_ro=1\"}" \
		"PUT /drives/rootfs {\"drive_id\": \"rootfs\", \"path_on_host\": \"$root\", \"is_root_device\": true, \"is_read_only\": false}" \
		"PUT /drives/scratch {\"drive_id\": \"scratch\", \"path_on_host\": \"$ro\", \"is_root_device\": false, \"is_read_only\": true, \"io_engine\": \"Async\"}" \
		"PUT /entropy {}" \
		"PUT /metrics {\"metrics_path\": \"$metrics\"}" \
		"PUT /actions {\"action_type\": \"InstanceStart\"}" || return
	cfgdoc=$(api_call "$sock" GET /vm/config)
	rc=0
	wait "$pid" || rc=$?
	if [ "$rc" -ne 0 ] || ! grep -q 'KILN-RESULT blk PASS' "$log"; then
		fail "$name" "no passing block test (kiln exit $rc)" "$log"
	elif [[ "$cfgdoc" != *'"drive_id":"scratch"'* || "$cfgdoc" != *'"entropy":{}'* ]]; then
		fail "$name" "GET /vm/config does not show the devices: $cfgdoc"
	elif ! grep -q 'entropy: virtio-mmio' "$log"; then
		fail "$name" "no entropy device was created" "$log"
	elif ! /usr/bin/python3 - "$metrics" <<'PY'
import json, sys
last = json.loads(open(sys.argv[1]).read().splitlines()[-1])
root, scratch, total = last["block_rootfs"], last["block_scratch"], last["block"]
assert root["write_bytes"] >= 4 << 20, root
assert root["read_count"] > 0 and scratch["read_count"] > 0, (root, scratch)
assert scratch["write_count"] == 0, scratch
assert total["read_count"] == root["read_count"] + scratch["read_count"], total
assert last["entropy"]["entropy_bytes"] > 0, last["entropy"]
PY
	then
		fail "$name" "the block and entropy metrics do not add up" "$metrics"
	else
		pass "$name" "root and read-only drives and entropy by curl alone, counted in block_rootfs, block_scratch and entropy metrics; $(grep -o 'KILN-RESULT.*' "$log" | tr -d '\r')"
	fi
}
