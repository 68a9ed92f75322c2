# seccomp scenarios: each thread kind's policy prints; kiln's threads really run under their
# filters (the kernel's /proc/PID/task/TID/status says so); --no-seccomp turns them off.

# thread_filters PID: one "NAME:MODE:FILTERS" word per thread of PID (Seccomp: 2 is filter mode,
# Seccomp_filters counts the filters stacked on the thread).
thread_filters() {
	local s
	for s in /proc/"$1"/task/*/status; do
		awk -F'\t' '/^Name:/ { n = $2 } /^Seccomp:/ { m = $2 } /^Seccomp_filters:/ { f = $2 }
			END { printf "%s:%s:%s ", n, m, f }' "$s" 2>/dev/null
	done
}

# kiln_of PID: kiln's pid, PID being the timeout(1) that runs it.
kiln_of() {
	pgrep -P "$1" | head -1
}

host_seccomp_print() {
	local t out rc rules
	for t in main main-running api vcpu uffd; do
		rc=0
		out=$("$KILN" --print-seccomp "$t" 2>&1) || rc=$?
		rules=$(grep -vc '^#' <<<"$out")
		if [ "$rc" -ne 0 ] || ! grep -q "^# kiln's seccomp filter \"$t\", for " <<<"$out" ||
			[ "$rules" -lt 10 ]; then
			fail "seccomp-print-$t" "exit $rc, $rules rules: $(head -2 <<<"$out" | tr '\n' ' ')"
		elif [ "$t" = vcpu ] && { ! grep -q '^ioctl .*KVM_RUN' <<<"$out" ||
			grep -Eq '^(socket|openat|execve) |== KVM_CREATE_VM( |$)' <<<"$out"; }; then
			fail "seccomp-print-$t" "the vCPU policy lacks KVM_RUN or allows socket/openat"
		elif [ "$t" = api ] && grep -Eq '^(ioctl|openat|socket) ' <<<"$out"; then
			fail "seccomp-print-$t" "the API policy allows ioctl, openat or socket"
		elif [ "$t" = uffd ] && { ! grep -q 'UFFDIO_COPY' <<<"$out" ||
			grep -Eq '^(socket|openat|execve) |KVM_RUN' <<<"$out"; }; then
			fail "seccomp-print-$t" "the uffd policy lacks UFFDIO_COPY or allows socket/openat/KVM_RUN"
		elif [ "$t" = main-running ] && grep -Eq 'KVM_CREATE_VM|^io_uring_setup |^clone ' <<<"$out"; then
			fail "seccomp-print-$t" "the running main thread may still create a VM, a ring or a thread"
		else
			pass "seccomp-print-$t" "$(head -1 <<<"$out" | sed 's/^# //')"
		fi
	done
	rc=0
	out=$("$KILN" --print-seccomp migration 2>&1) || rc=$?
	if [ "$rc" -eq 153 ] && [[ "$out" == *'expected main, main-running, api, vcpu or uffd'* ]]; then
		pass seccomp-print-unknown "exit 153: $out"
	else
		fail seccomp-print-unknown "expected exit 153 naming the kinds, got $rc: $out"
	fi
}

# The main thread and libmicrohttpd's thread are filtered (the API thread twice: the main
# filter it was born with and its own, from its first connection on); --no-seccomp warns and
# filters nothing.
host_seccomp_threads() {
	local seen dir pid rc=0
	if ! start_api seccomp-threads; then
		fail seccomp-threads "the API socket did not appear" "$log"
		return
	fi
	curl -s -m 5 --unix-socket "$api_sock" http://localhost/ >/dev/null
	curl -s -m 5 --unix-socket "$api_sock" http://localhost/capabilities >"$E2E_OUT/seccomp-caps.json"
	seen=$(thread_filters "$(kiln_of "$api_pid")")
	if [[ "$seen" == *'kiln_main:2:1 '* && "$seen" == *'MHD-single:2:2 '* ]] &&
		grep -q '"kernel_release"' "$E2E_OUT/seccomp-caps.json"; then
		pass seccomp-threads "$seen; GET /capabilities answered from the event loop"
	else
		fail seccomp-threads "threads: $seen; capabilities: $(head -c 100 "$E2E_OUT/seccomp-caps.json")" "$log"
	fi
	stop_api || fail seccomp-threads-sigterm "kiln exited $api_stop_rc" "$log"
	rm -rf "$api_dir"

	dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-noseccomp.XXXXXX")
	log=$E2E_OUT/seccomp-off.log
	timeout --kill-after=5 60 "$KILN" --api-sock "$dir/api.sock" --no-seccomp </dev/null >"$log" 2>&1 &
	pid=$!
	wait_for 5 test -S "$dir/api.sock"
	curl -s -m 5 --unix-socket "$dir/api.sock" http://localhost/ >/dev/null
	seen=$(thread_filters "$(kiln_of "$pid")")
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	if [[ "$seen" == *'kiln_main:0:0 '* && "$seen" == *'MHD-single:0:0 '* ]] &&
		grep -q 'no-seccomp: running without seccomp filters' "$log" && [ "$rc" -eq 143 ]; then
		pass seccomp-off "$seen; $(grep -m1 -o 'no-seccomp:.*filters' "$log")"
	else
		fail seccomp-off "threads: $seen, exit $rc" "$log"
	fi
	rm -rf "$dir"
}

# A running guest: every vCPU thread carries the main filter and its own, the main thread the
# main filter and main-running; the guest runs, kiln answers GET /capabilities (KVM and
# userfaultfd probes on the event loop thread), and Ctrl+Alt+Del ends it with exit 0.
kvm_seccomp_running_guest() {
	local name=seccomp-guest sock=${TMPDIR:-/tmp}/kiln-seccomp.$$.sock pid seen r rc=0
	log=$E2E_OUT/$name.log
	api_kiln "$name" "$sock" 240 \
		"PUT /boot-source {\"kernel_image_path\": \"$GUEST/vmlinux\", \"initrd_path\": \"$GUEST/initramfs.cpio.gz\", \"boot_args\": \"console=ttyS0 quiet reboot=k panic=1 pci=off kiln.test=ticker\"}" \
		"PUT /machine-config {\"vcpu_count\": 2, \"mem_size_mib\": 128}" \
		"PUT /entropy {}" \
		"PUT /actions {\"action_type\": \"InstanceStart\"}" || return
	if ! wait_for 60 ticks_at_least "$log" 3; then
		fail "$name" "the guest did not start ticking" "$log"
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return
	fi
	seen=$(thread_filters "$(kiln_of "$pid")")
	r=$(api_call "$sock" GET /capabilities)
	api_call "$sock" PUT /actions '{"action_type": "SendCtrlAltDel"}' >/dev/null
	wait "$pid" || rc=$?
	if [[ "$seen" != *'kiln-vcpu0:2:2 '* || "$seen" != *'kiln-vcpu1:2:2 '* ||
		"$seen" != *'kiln_main:2:2 '* || "$seen" != *'MHD-single:2:2 '* ]]; then
		fail "$name" "threads: $seen" "$log"
	elif [[ "$r" != 200* ]] || [ "$rc" -ne 0 ]; then
		fail "$name" "GET /capabilities: ${r:0:80}; kiln exit $rc" "$log"
	else
		pass "$name" "$seen; GET /capabilities 200 while running; exit 0 after Ctrl+Alt+Del"
	fi
	rm -f "$sock"
}
