# Command-line and configuration errors: no KVM needed, no guest may start.

# bad_config NAME EXPECTED_CODE PATTERN JSON: kiln must exit EXPECTED_CODE printing exactly one
# line that matches PATTERN, and no guest output.
bad_config() {
	local name=$1 code=$2 pattern=$3 json=$4 f=$E2E_OUT/bad-$1.json lines
	printf '%s' "$json" >"$f"
	run_kiln "bad-$name" 30 --no-api --config-file "$f"
	lines=$(wc -l <"$log")
	if [ "$rc" -ne "$code" ]; then
		fail "bad-config-$name" "exit $rc, expected $code" "$log"
	elif [ "$lines" -ne 1 ] || ! grep -q -- "$pattern" "$log"; then
		fail "bad-config-$name" "expected one line matching '$pattern'" "$log"
	else
		pass "bad-config-$name" "$(cat "$log")"
	fi
}

host_bad_configs() {
	local k=$GUEST/vmlinux boot
	boot="\"boot-source\": {\"kernel_image_path\": \"$k\"}"
	bad_config missing-kernel 152 'kernel_image_path: /nonexistent/vmlinux: No such file' \
		'{"boot-source": {"kernel_image_path": "/nonexistent/vmlinux"}}'
	bad_config no-boot-source 152 'boot-source' \
		'{"machine-config": {"vcpu_count": 1, "mem_size_mib": 128}}'
	bad_config zero-vcpus 152 'machine-config.vcpu_count' \
		"{$boot, \"machine-config\": {\"vcpu_count\": 0, \"mem_size_mib\": 128}}"
	bad_config too-many-vcpus 152 'machine-config.vcpu_count' \
		"{$boot, \"machine-config\": {\"vcpu_count\": 33, \"mem_size_mib\": 128}}"
	bad_config absurd-memory 152 'machine-config.mem_size_mib' \
		"{$boot, \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 1000000000000}}"
	bad_config malformed-json 152 ':3:[0-9]*: invalid JSON' \
		"$(printf '{\n  "boot-source": {\n    "kernel_image_path" "x"\n  }\n}')"
	bad_config unknown-key 152 'unknown key "bogus"' "{$boot, \"bogus\": 1}"
	bad_config unknown-field 152 'machine-config: unknown field "cpus"' \
		"{$boot, \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 128, \"cpus\": 2}}"
	bad_config unsupported-section 152 'balloon: not supported by kiln yet' \
		"{$boot, \"balloon\": {\"amount_mib\": 64, \"deflate_on_oom\": false}}"
	bad_config drive-without-path 152 'drives\[0\].path_on_host: required field missing' \
		"{$boot, \"drives\": [{\"drive_id\": \"root\", \"is_root_device\": true}]}"
	bad_config second-root-drive 152 'drives\[1\].is_root_device: .*second root device' \
		"{$boot, \"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"a\", \"is_root_device\": true},
		 {\"drive_id\": \"b\", \"path_on_host\": \"b\", \"is_root_device\": true}]}"
	bad_config duplicate-tap 152 'network-interfaces\[1\].host_dev_name: "tap0" is already used' \
		"{$boot, \"network-interfaces\": [{\"iface_id\": \"a\", \"host_dev_name\": \"tap0\"},
		 {\"iface_id\": \"b\", \"host_dev_name\": \"tap0\"}]}"
	bad_config multicast-mac 152 'network-interfaces\[0\].guest_mac: .*multicast' \
		"{$boot, \"network-interfaces\": [{\"iface_id\": \"a\", \"host_dev_name\": \"tap0\",
		 \"guest_mac\": \"01:00:5e:00:00:01\"}]}"
	bad_config vsock-cid 152 'vsock.guest_cid: expected an integer from 3' \
		"{$boot, \"vsock\": {\"guest_cid\": 2, \"uds_path\": \"/tmp/v.sock\"}}"
	bad_config wrong-type 152 'machine-config.mem_size_mib' \
		"{$boot, \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": \"128\"}}"

	run_kiln bad-unreadable 30 --no-api --config-file /nonexistent/config.json
	if [ "$rc" -eq 152 ] && [ "$(wc -l <"$log")" -eq 1 ] && grep -q 'cannot read' "$log"; then
		pass bad-config-unreadable "$(cat "$log")"
	else
		fail bad-config-unreadable "exit $rc" "$log"
	fi
}

host_cli() {
	run_kiln cli-version 10 --version
	if [ "$rc" -eq 0 ] && grep -q '^kiln v[0-9]' "$log"; then pass cli-version "$(cat "$log")"
	else fail cli-version "exit $rc" "$log"; fi
	run_kiln cli-unknown 10 --bogus
	if [ "$rc" -eq 153 ] && grep -q 'unknown argument' "$log"; then pass cli-unknown-argument
	else fail cli-unknown-argument "exit $rc" "$log"; fi
	run_kiln cli-bad-id 10 --id 'bad id!' --no-api --config-file x
	if [ "$rc" -eq 153 ] && grep -q -- '--id' "$log"; then pass cli-bad-id
	else fail cli-bad-id "exit $rc" "$log"; fi
	run_kiln cli-help 10 --help
	if [ "$rc" -eq 0 ] && grep -q -- '--config-file' "$log"; then pass cli-help
	else fail cli-help "exit $rc" "$log"; fi
}
