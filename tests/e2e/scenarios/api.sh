# API scenarios on KVM: a guest configured and started through curl alone, paused, resumed and
# ended with Ctrl+Alt+Del.

# api_call SOCK METHOD PATH [BODY]: prints "STATUS BODY"; never hangs (5 s).
api_call() {
	local sock=$1 method=$2 path=$3 body=${4:-}
	local args=(-s -m 5 -o "$E2E_OUT/api.body" -w '%{http_code}' --unix-socket "$sock"
		-X "$method" "http://localhost$path")
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
	local code
	code=$(curl "${args[@]}" 2>/dev/null) || code=000
	printf '%s %s\n' "$code" "$(cat "$E2E_OUT/api.body" 2>/dev/null)"
}

# ticks LOG: the number of "kiln-tick" lines the guest has printed so far.
ticks() {
	grep -c '^kiln-tick ' "$1" 2>/dev/null || true
}

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds; false on timeout.
wait_for() {
	local limit=$1 i
	shift
	for ((i = 0; i < limit * 10; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

ticks_at_least() { [ "$(ticks "$1")" -ge "$2" ]; }

# api_kiln NAME SOCK SECONDS STEP...: starts kiln on SOCK in the background (pid in $pid,
# output in $log), waits for the socket and sends each "METHOD PATH BODY" step, which must be
# answered 204. On any failure records it, stops kiln and returns 1.
api_kiln() {
	local name=$1 sock=$2 limit=$3 step r method path body
	shift 3
	rm -f "$sock"
	timeout --kill-after=5 "$limit" "$KILN" --api-sock "$sock" --id "$name" </dev/null >"$log" 2>&1 &
	pid=$!
	if ! wait_for 10 test -S "$sock"; then
		fail "$name" "the API socket did not appear" "$log"
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return 1
	fi
	for step in "$@"; do
		read -r method path body <<<"$step"
		r=$(api_call "$sock" "$method" "$path" "$body")
		if [ "${r%% *}" != 204 ]; then
			fail "$name" "$method $path answered $r" "$log"
			kill "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			return 1
		fi
	done
}

kvm_api_boot_pause_ctrl_alt_del() {
	# The socket lives in /tmp: the L1 harness's 9p share cannot hold sockets.
	local name=api-boot sock=${TMPDIR:-/tmp}/kiln-api-boot.$$.sock klog=$E2E_OUT/api-boot.kiln.log
	local pid r step n0 n1 n2 rc
	log=$E2E_OUT/api-boot.log
	rm -f "$klog"
	# Configuration by curl alone, each answered 204.
	api_kiln api-boot "$sock" 240 \
		"PUT /logger {\"log_path\": \"$klog\", \"level\": \"Debug\", \"show_level\": true}" \
		"PUT /boot-source {\"kernel_image_path\": \"$GUEST/vmlinux\", \"initrd_path\": \"$GUEST/initramfs.cpio.gz\", \"boot_args\": \"console=ttyS0 quiet reboot=k panic=1 pci=off kiln.test=ticker\"}" \
		"PUT /machine-config {\"vcpu_count\": 2, \"mem_size_mib\": 128}" \
		"PUT /actions {\"action_type\": \"InstanceStart\"}" || return
	r=$(api_call "$sock" GET /)
	if ! wait_for 60 ticks_at_least "$log" 5 || [[ "$r" != *'"state":"Running"'* ]]; then
		fail "$name" "the guest did not start ticking (GET / said: $r)" "$log"
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return
	fi
	pass api-instance-start "configured and started by curl; GET / $r"

	# Pause: the guest's clock-driven ticks stop; resume: they continue.
	r=$(api_call "$sock" PATCH /vm '{"state": "Paused"}')
	sleep 0.5 # a tick already on its way out of the UART may still land
	n0=$(ticks "$log")
	sleep 3
	n1=$(ticks "$log")
	local state
	state=$(api_call "$sock" GET /)
	api_call "$sock" PATCH /vm '{"state": "Resumed"}' >/dev/null
	if [ "${r%% *}" != 204 ] || [ "$n1" -ne "$n0" ] || [[ "$state" != *'"state":"Paused"'* ]]; then
		fail api-pause "PATCH /vm Paused: $r; ticks $n0 -> $n1 over 3 s; GET / $state" "$log"
	else
		pass api-pause "no tick in 3 s while paused (stayed at $n0); GET / said Paused"
	fi
	if wait_for 20 ticks_at_least "$log" $((n1 + 3)); then
		pass api-resume "ticks continue after resume ($n1 -> $(ticks "$log"))"
	else
		fail api-resume "no new ticks after resume ($n1 -> $(ticks "$log"))" "$log"
	fi

	# Bad HTTP input against the running VM's socket: kiln answers or drops each request and
	# the guest never notices (its ticks keep coming through the whole barrage).
	local t0 t1 k0 k1 out
	k0=$(ticks "$log")
	t0=$(date +%s)
	out=$(timeout 120 tests/e2e/api_abuse.py "$sock" --quick 2>&1)
	t1=$(date +%s)
	k1=$(ticks "$log")
	if grep -q '^FAIL' <<<"$out" || ! grep -q '^PASS' <<<"$out"; then
		fail api-abuse-running-guest "$(grep -m3 '^FAIL' <<<"$out" | tr '\n' ' ')" "$log"
	elif [ $((k1 - k0)) -lt $(((t1 - t0) * 5 / 2)) ]; then
		fail api-abuse-running-guest "the guest ticked $((k1 - k0)) times in $((t1 - t0)) s of abuse (5/s expected)" "$log"
	else
		pass api-abuse-running-guest "$(grep -c '^PASS' <<<"$out") abuse checks passed; the guest ticked $((k1 - k0)) times in those $((t1 - t0)) s"
	fi

	# Pre-boot requests are refused now, and the VM goes on.
	r=$(api_call "$sock" PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 128}')
	if [ "${r%% *}" = 400 ] && [[ "$r" == *'after starting the microVM'* ]]; then
		pass api-pre-boot-refused-after-start "$r"
	else
		fail api-pre-boot-refused-after-start "PUT /machine-config after start answered $r"
	fi

	# Ctrl+Alt+Del: the guest's init takes it as a reboot; kiln then exits 0.
	n2=$(ticks "$log")
	r=$(api_call "$sock" PUT /actions '{"action_type": "SendCtrlAltDel"}')
	rc=0
	wait "$pid" || rc=$?
	if [ "${r%% *}" = 204 ] && [ "$rc" -eq 0 ] && grep -q 'KILN-RESULT ticker PASS' "$log"; then
		pass api-ctrl-alt-del "$(grep -o 'KILN-RESULT.*' "$log" | tr -d '\r'), kiln exit 0 after $n2 ticks"
	else
		fail api-ctrl-alt-del "SendCtrlAltDel answered $r; kiln exit $rc" "$log"
	fi
	if [ ! -e "$sock" ] && grep -q '\[api-boot:[a-z_0-9]*:Info\] microVM api-boot started' "$klog"; then
		pass api-logger "socket removed; log file lines in Firecracker's shape: $(grep -m1 'started' "$klog" | cut -c1-90)"
	else
		fail api-logger "socket left behind or no Firecracker-shaped line in $klog" "$klog"
	fi
}
