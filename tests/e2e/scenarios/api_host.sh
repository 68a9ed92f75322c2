# API scenarios that need no KVM: kiln serves its socket and takes configuration without a VM.

# start_api NAME: starts kiln on a fresh socket in a fresh directory; sets api_pid, api_sock,
# api_dir and log. The directory is under /tmp: the L1 harness's 9p share cannot hold sockets.
start_api() {
	api_dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-$1.XXXXXX")
	api_sock=$api_dir/api.sock
	log=$E2E_OUT/$1.log
	timeout --kill-after=5 300 "$KILN" --api-sock "$api_sock" --id "$1" </dev/null >"$log" 2>&1 &
	api_pid=$!
	local i
	for ((i = 0; i < 100; i++)); do
		[ -S "$api_sock" ] && return 0
		sleep 0.05
	done
	return 1
}

# stop_api: SIGTERM, and kiln must exit 143 and take its socket away.
stop_api() {
	local rc=0
	kill -TERM "$api_pid" 2>/dev/null
	wait "$api_pid" || rc=$?
	api_stop_rc=$rc
	[ "$rc" -eq 143 ] && [ ! -e "$api_sock" ]
}

host_api_conformance() {
	if ! start_api api-conformance; then
		fail api-conformance "the API socket did not appear" "$log"
		return
	fi
	local out
	out=$(tests/e2e/api_conformance.py "$api_sock" "$api_dir" 2>&1)
	if grep -q '^PASS' <<<"$out"; then
		out=${out#PASS api-conformance (}
		pass api-conformance "${out%)}"
	else
		printf '%s\n' "$out" | grep -v '^FAIL' | head -30
		fail api-conformance "$(grep '^FAIL' <<<"$out" | head -1)" "$log"
	fi
	if stop_api; then
		pass api-sigterm "exit 143, socket removed"
	else
		fail api-sigterm "kiln exited $api_stop_rc or left $api_sock behind" "$log"
	fi
	rm -rf "$api_dir"
}

# Socket options: an existing path is refused (Firecracker does the same), as are --no-api
# with --api-sock.
host_api_socket_cli() {
	local dir rc out
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-cli.XXXXXX")
	touch "$dir/taken.sock"
	rc=0
	out=$("$KILN" --api-sock "$dir/taken.sock" 2>&1 </dev/null) || rc=$?
	if [ "$rc" -ne 0 ] && [[ "$out" == *"Address already in use"* ]]; then
		pass api-socket-exists "exit $rc: $out"
	else
		fail api-socket-exists "exit $rc: $out"
	fi
	rc=0
	out=$("$KILN" --no-api --api-sock "$dir/x.sock" --config-file /dev/null 2>&1) || rc=$?
	if [ "$rc" -eq 153 ] && [[ "$out" == *"exclude each other"* ]]; then
		pass api-no-api-conflict "exit 153: $out"
	else
		fail api-no-api-conflict "exit $rc: $out"
	fi
	rm -rf "$dir"
}

# Pre-boot configuration needs no KVM; InstanceStart then fails with a clear 400 and kiln goes
# on serving. /dev/kvm is hidden in a private mount namespace (/dev/null bound over it).
host_api_start_without_kvm() {
	local dir out rc r1 r2 r3 r4
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-nokvm.XXXXXX")
	log=$E2E_OUT/api-no-kvm.log
	if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null; then
		fail api-start-without-kvm "needs root and unshare(1) to hide /dev/kvm"
		return
	fi
	unshare -m sh -c 'mount --bind /dev/null /dev/kvm && exec "$@"' sh \
		timeout 60 "$KILN" --api-sock "$dir/api.sock" --id nokvm </dev/null >"$log" 2>&1 &
	local pid=$! i
	for ((i = 0; i < 100; i++)); do [ -S "$dir/api.sock" ] && break; sleep 0.05; done
	c() { curl -s -m 5 -w ' %{http_code}' --unix-socket "$dir/api.sock" "$@"; }
	r1=$(c -X PUT -d "{\"kernel_image_path\": \"$GUEST/vmlinux\"}" http://localhost/boot-source)
	r2=$(c -X PUT -d '{"vcpu_count": 1, "mem_size_mib": 64}' http://localhost/machine-config)
	r3=$(c -X PUT -d '{"action_type": "InstanceStart"}' http://localhost/actions)
	r4=$(c http://localhost/)
	kill -TERM "$pid" 2>/dev/null
	rc=0
	wait "$pid" || rc=$?
	if [ "${r1: -3}" = 204 ] && [ "${r2: -3}" = 204 ] && [ "${r3: -3}" = 400 ] &&
		[[ "$r3" == *kvm* ]] && [[ "$r4" == *'"Not started"'*' 200' ]] && [ "$rc" -eq 143 ]; then
		pass api-start-without-kvm "configured without KVM; InstanceStart: ${r3% *}"
	else
		fail api-start-without-kvm "boot-source $r1; machine-config $r2; InstanceStart $r3; GET / $r4; exit $rc" "$log"
	fi
	rm -rf "$dir"
}
