# Hostile whole-process tests: a flood of API requests while a guest runs; a guest that writes
# random values to every port and MMIO address kiln decodes and to ones it does not; a guest
# that feeds every virtio device random virtqueues; migration peers that send random frames
# after a valid handshake. Each passes only if kiln keeps running (or stops the one VM under
# attack with a clear line), other clients are still served and nothing is lost. Uses api.sh's,
# snapshot.sh's and net.sh's helpers.

HOSTILE_TAP=kilnhst0
MIG_FUZZ=${MIG_FUZZ:-$PWD/build/tests/mig_fuzz}

# hostile_seed: the run's seed, from KILN_HOSTILE_SEED to repeat a run, else a fresh one.
hostile_seed() {
	echo "${KILN_HOSTILE_SEED:-$((RANDOM * 32768 + RANDOM + 1))}"
}

# hostile_relay PREFIX OUT: turns OUT's "PASS NAME (DETAIL)" and "FAIL NAME: REASON" lines into
# results, each NAME prefixed; returns 1 when there was none.
hostile_relay() {
	local line name rest n=0
	while IFS= read -r line; do
		case $line in
		"PASS "*)
			rest=${line#PASS }
			name=${rest%% *}
			rest=${rest#"$name"}
			rest=${rest# (}
			pass "$1$name" "${rest%)}"
			n=$((n + 1))
			;;
		"FAIL "*)
			rest=${line#FAIL }
			name=${rest%%: *}
			fail "$1$name" "${rest#"$name": }" "$log"
			n=$((n + 1))
			;;
		esac
	done <"$2"
	[ "$n" -gt 0 ]
}

# hostile_watch PID SOCK OUT: in the background until PID exits, GET / on SOCK every second;
# each answer's status and seconds go to OUT, one line each ("200 0.004"), and a failed call
# while PID still ran as "down". Sets watch_pid.
hostile_watch() {
	local p=$1 s=$2 out=$3
	: >"$out"
	(
		while kill -0 "$p" 2>/dev/null; do
			r=$(curl -s -m 5 -o /dev/null -w '%{http_code} %{time_total}' --unix-socket "$s" \
				http://localhost/ 2>/dev/null) || r="000 5"
			if [ "${r%% *}" = 200 ]; then
				echo "$r" >>"$out"
			elif kill -0 "$p" 2>/dev/null && [ -S "$s" ]; then
				echo "down $r" >>"$out"
			fi
			sleep 1
		done
	) &
	watch_pid=$!
}

# hostile_watch_verdict OUT: "N answers, worst S s", or returns 1 (reason on stdout) when kiln
# failed to answer while it ran, or never answered.
hostile_watch_verdict() {
	local ok down worst
	ok=$(grep -c '^200 ' "$1")
	down=$(grep -c '^down' "$1")
	worst=$(awk '$1 == 200 && $2 > w { w = $2 } END { printf "%.2f", w }' "$1")
	if [ "$down" -gt 0 ] || [ "$ok" -eq 0 ]; then
		echo "GET / failed $down times while kiln ran ($ok answered): $(grep -m1 '^down' "$1")"
		return 1
	fi
	echo "GET / answered $ok times while the guest attacked, worst ${worst}s"
}

# hostile_devices NAME ARGS: a guest with every kind of device kiln has (the read-only drive
# $ro_img, the writable $rw_img, a network interface on $HOSTILE_TAP, vsock in $vsock_dir,
# entropy); writes both images and prints the config's path.
hostile_devices() {
	{ printf 'kiln-ro-drive-ok'; head -c $((1024 * 1024 - 16)) /dev/zero; } >"$ro_img"
	rm -f "$rw_img"
	truncate -s 1M "$rw_img"
	guest_config "$1" "$GUEST/vmlinux" 1 128 None "$2" \
		"\"drives\": [
    { \"drive_id\": \"ro\", \"path_on_host\": \"$ro_img\", \"is_root_device\": false, \"is_read_only\": true },
    { \"drive_id\": \"rw\", \"path_on_host\": \"$rw_img\", \"is_root_device\": false, \"is_read_only\": false }
  ],
  \"network-interfaces\": [ { \"iface_id\": \"eth0\", \"host_dev_name\": \"$HOSTILE_TAP\" } ],
  \"vsock\": { \"guest_cid\": 3, \"uds_path\": \"$vsock_dir/v.sock\" },
  \"entropy\": {}"
}

# hostile_guest NAME TEST SECS: boots the agent's TEST (hostile-mmio or hostile-virtq) with
# every device, SECS seconds of attack, the API on a socket watched throughout; sets rc, log,
# seed, watch (the watcher's verdict), watch_ok, ro_img, rw_img, ro_sum_before and secs. 1 when
# it could not start.
hostile_guest() {
	local name=$1 test=$2 sock cfg pid t0
	log=$E2E_OUT/$name.log
	seed=$(hostile_seed)
	if ! net_tun_ready || ! { ip link del "$HOSTILE_TAP" 2>/dev/null; ip tuntap add dev "$HOSTILE_TAP" mode tap; }; then
		fail "$name" "cannot create TAP $HOSTILE_TAP"
		return 1
	fi
	ro_img=$E2E_OUT/$name-ro.img
	rw_img=$E2E_OUT/$name-rw.img
	vsock_dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-hostile.XXXXXX")
	cfg=$(hostile_devices "$name" "kiln.test=$test kiln.seed=$seed kiln.secs=$3")
	ro_sum_before=$(sha256sum <"$ro_img")
	sock=$vsock_dir/api.sock
	t0=$(date +%s.%N)
	timeout --kill-after=5 $(($3 + 150)) "$KILN" --api-sock "$sock" --id "$name" --boot-timer \
		--config-file "$cfg" </dev/null >"$log" 2>&1 &
	pid=$!
	wait_for 20 test -S "$sock"
	hostile_watch "$pid" "$sock" "$E2E_OUT/$name.watch"
	rc=0
	wait "$pid" || rc=$?
	secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
	wait "$watch_pid" 2>/dev/null
	watch_ok=0
	watch=$(hostile_watch_verdict "$E2E_OUT/$name.watch") || watch_ok=1
	ip link del "$HOSTILE_TAP" 2>/dev/null
	rm -rf "$vsock_dir"
}

# hostile_kiln_verdict NAME TEST: kiln ended on its own, exit 0 after the guest's passing
# result, no vCPU failure logged, the API answered throughout, the read-only image unchanged.
# 0 when all held (after reporting nothing), else reports the failure.
hostile_kiln_verdict() {
	local name=$1 test=$2
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		fail "$name" "kiln did not end within its time limit (seed $seed)" "$log"
	elif [ "$rc" -gt 128 ]; then
		fail "$name" "kiln died of signal $((rc - 128)) (seed $seed)" "$log"
	elif grep -aq 'unexpected exit reason\|KVM internal error\|VM entry failed' "$log"; then
		fail "$name" "a vCPU failed (seed $seed): $(grep -a -m1 'unexpected exit reason\|KVM internal error\|VM entry failed' "$log")" "$log"
	elif ! grep -aq "KILN-RESULT $test PASS" "$log"; then
		fail "$name" "no passing KILN-RESULT line, kiln exit $rc (seed $seed): $(grep -a -o "KILN-RESULT.*" "$log" | head -1)" "$log"
	elif [ "$rc" -ne 0 ]; then
		fail "$name" "the guest passed but kiln exited $rc (seed $seed)" "$log"
	elif [ "$watch_ok" -ne 0 ]; then
		fail "$name" "$watch (seed $seed)" "$E2E_OUT/$name.watch"
	elif [ "$(sha256sum <"$ro_img")" != "$ro_sum_before" ]; then
		fail "$name" "the read-only drive's image changed (seed $seed)" "$log"
	else
		return 0
	fi
	return 1
}

# A guest hammers every port and MMIO window kiln decodes (virtio-mmio of blk, net, vsock and
# rng; serial 0x3f8; i8042 0x60-0x64; the boot timer), random unclaimed ports and MMIO pages,
# with reads and writes of 1 to 8 bytes, string I/O, and full virtio initialisations, its
# virtio-mmio and i8042 drivers unbound. Afterwards the devices must still answer as devices;
# kiln must end the VM normally when the guest reboots.
kvm_hostile_mmio() {
	local name=hostile-mmio
	hostile_guest "$name" hostile-mmio 15 || return
	hostile_kiln_verdict "$name" hostile-mmio || return
	pass "$name" "${secs}s, seed $seed: $(grep -a -o 'kiln-hostile: [0-9]* accesses in [0-9]* ms' "$log" | head -1 | cut -d' ' -f2-); $watch"
}

# A guest drives every virtio device itself with random virtqueues (loops, bad indices, indirect
# tables, buffers past RAM or over the top of memory, misaligned rings, notifications for queues
# that do not exist), resetting each after its round; then by-the-book requests must work: rng
# gives bytes, the read-only drive its magic, a write to the writable one lands in its image.
kvm_hostile_virtq() {
	local name=hostile-virtq got resets
	hostile_guest "$name" hostile-virtq 15 || return
	hostile_kiln_verdict "$name" hostile-virtq || return
	got=$(dd if="$rw_img" bs=512 skip=1 count=1 2>/dev/null | tr -d '\0')
	if [ "$got" != "kiln-hostile-virtq-final seed=$seed" ]; then
		fail "$name" "sector 1 of the writable drive holds '${got:0:60}', not the guest's final write (seed $seed)" "$log"
	elif [ "$(stat -c %s "$rw_img")" -ne $((1024 * 1024)) ]; then
		fail "$name" "the writable drive's image is $(stat -c %s "$rw_img") bytes, not 1 MiB (seed $seed)" "$log"
	else
		resets=$(grep -a -c 'the device needs a reset' "$log")
		pass "$name" "${secs}s, seed $seed: $(grep -a -o 'rounds=[0-9]* chains=[0-9]* used=[0-9]* needs_reset=[0-9]*' "$log" | head -1); kiln logged $resets resets asked; the final requests worked; $watch"
	fi
}

# While a guest ticks, thousands of requests from more connections than kiln serves at once
# (tests/e2e/api_flood.py): good ones must get right answers, bad ones refusals, a well-behaved
# client answers within 5 s; idle connections holding every slot are dropped by the idle
# timeout. The guest ticks on throughout and kiln ends normally on Ctrl+Alt+Del.
kvm_hostile_api_flood() {
	local name=hostile-api-flood sock=${TMPDIR:-/tmp}/kiln-flood.$$.sock cfg pid r rc out
	local k0 k1 t0 t1 seed
	log=$E2E_OUT/$name.log
	out=$E2E_OUT/$name.out
	seed=$(hostile_seed)
	cfg=$(guest_config "$name" "$GUEST/vmlinux" 2 128 None "kiln.test=ticker kiln.ticks=3000")
	rm -f "$sock"
	timeout --kill-after=5 300 "$KILN" --api-sock "$sock" --id "$name" --config-file "$cfg" \
		</dev/null >"$log" 2>&1 &
	pid=$!
	if ! wait_for 60 ticks_at_least "$log" 3; then
		fail "$name" "the guest did not start ticking" "$log"
		snap_stop
		return
	fi
	k0=$(ticks "$log")
	t0=$(date +%s)
	timeout --kill-after=5 150 tests/e2e/api_flood.py "$sock" --seconds 20 --seed "$seed" \
		>"$out" 2>&1
	t1=$(date +%s)
	k1=$(ticks "$log")
	hostile_relay hostile- "$out" || fail "$name" "api_flood.py gave no result" "$out"
	# 5 ticks a second when it has the CPU; L1 has one CPU for the guest, kiln and the flood.
	if [ $((k1 - k0)) -lt $((t1 - t0)) ]; then
		fail "$name-guest" "the guest ticked $((k1 - k0)) times in $((t1 - t0)) s of flood (at least 1/s expected)" "$log"
	else
		pass "$name-guest" "the guest ticked $((k1 - k0)) times in the $((t1 - t0)) s of flood"
	fi
	r=$(api_call "$sock" PUT /actions '{"action_type": "SendCtrlAltDel"}')
	rc=0
	wait "$pid" || rc=$?
	if [ "${r%% *}" = 204 ] && [ "$rc" -eq 0 ] && grep -q 'KILN-RESULT ticker PASS' "$log" &&
		[ ! -e "$sock" ]; then
		pass "$name-end" "Ctrl+Alt+Del answered 204, kiln exit 0, socket removed: $(grep -o 'KILN-RESULT.*' "$log" | tr -d '\r')"
	else
		fail "$name-end" "SendCtrlAltDel answered $r; kiln exit $rc (seed $seed)" "$log"
	fi
}

# hostile_rearm DIR DPID: the destination (API DIR/dst.sock) listens again on unix:DIR/mig.sock
# once its last migration has failed (waiting up to 60 s for that); 1 when its kiln has exited,
# with dead set to a line saying how.
hostile_rearm() {
	local end=$((SECONDS + 60)) state rc=0
	while kill -0 "$2" 2>/dev/null; do
		state=$(mig_field "$1/dst.sock" state)
		[ "$state" = listening ] && return 0
		if [ "$state" = failed ]; then
			api_call "$1/dst.sock" PUT /migration/incoming "{\"uri\": \"unix:$1/mig.sock\"}" >/dev/null
			return 0
		fi
		[ $SECONDS -lt $end ] || return 0
		sleep 0.5
	done
	wait "$2" || rc=$?
	dead="the destination kiln exited $rc"
	return 1
}

# Migration peers that complete the handshake and then send random frames
# (tests/e2e/mig_fuzz.c): a destination must refuse each source with its reason and stay ready
# for the next, also a source whose STATE gets as far as the VM build and which then goes
# silent (within 10 s, its API answering meanwhile); a source must give up on each fake
# destination with its reason and run its VM on. Then both kilns, after all that, migrate the
# ticking guest for real, and it ends normally.
kvm_hostile_migration() {
	local name=hostile-migration dir seed cfg spid dpid slog dlog out r rc k0 dead=
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-hmig.XXXXXX")
	seed=$(hostile_seed)
	dlog=$E2E_OUT/$name-dst.log
	slog=$E2E_OUT/$name-src.log
	out=$E2E_OUT/$name-dest.out

	timeout --kill-after=5 400 "$KILN" --api-sock "$dir/dst.sock" --id "$name-dst" \
		--migrate-in "unix:$dir/mig.sock" </dev/null >"$dlog" 2>&1 &
	dpid=$!
	if ! wait_for 10 test -S "$dir/mig.sock"; then
		fail "$name-dest-frames" "the destination did not listen" "$dlog"
		snap_stop "$dpid"; rm -rf "$dir"; return
	fi
	log=$dlog
	timeout --kill-after=5 240 "$MIG_FUZZ" dest "$dir/dst.sock" "$dir/mig.sock" "$seed" 25 >"$out" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		pass "$name-dest-frames" "seed $seed: $(tail -1 "$out"), each refused: $(grep -c 'ERROR answered' "$out") with an ERROR frame, $(grep -c 'went away' "$out") on the close; kiln still serving"
	else
		fail "$name-dest-frames" "seed $seed, mig_fuzz exit $rc: $(grep -m1 'FAIL' "$out")" "$dlog"
	fi
	# A STATE that gets as far as the VM build, from a source that then goes silent.
	if ! hostile_rearm "$dir" "$dpid"; then
		fail "$name-dest-frames" "$dead" "$dlog"
	else
		timeout --kill-after=5 240 "$MIG_FUZZ" dest-silent "$dir/dst.sock" "$dir/mig.sock" \
			"$seed" 1 >"$out" 2>&1
		rc=$?
		if [ "$rc" -eq 0 ]; then
			pass "$name-dest-silent-source" "a STATE that reached the VM build, then silence:$(grep -m1 '^round' "$out" | cut -d: -f3-)"
		else
			fail "$name-dest-silent-source" "seed $seed, mig_fuzz exit $rc: $(grep -m1 'FAIL' "$out")" "$dlog"
		fi
	fi

	cfg=$(guest_config "$name-src" "$GUEST/vmlinux" 1 64 None "kiln.test=ticker kiln.ticks=3000")
	timeout --kill-after=5 400 "$KILN" --api-sock "$dir/src.sock" --id "$name-src" \
		--config-file "$cfg" </dev/null >"$slog" 2>&1 &
	spid=$!
	log=$slog
	if ! wait_for 60 ticks_at_least "$slog" 3; then
		fail "$name-source-answers" "the source's guest did not start ticking" "$slog"
		snap_stop "$spid"; snap_stop "$dpid"; rm -rf "$dir"; return
	fi
	out=$E2E_OUT/$name-source.out
	timeout --kill-after=5 300 "$MIG_FUZZ" source "$dir/src.sock" "$dir/fake.sock" "$seed" 8 >"$out" 2>&1
	rc=$?
	k0=$(ticks "$slog")
	if [ "$rc" -ne 0 ]; then
		fail "$name-source-answers" "seed $seed, mig_fuzz exit $rc: $(grep -m1 'FAIL' "$out")" "$slog"
	elif ! wait_for 20 ticks_at_least "$slog" $((k0 + 3)); then
		fail "$name-source-answers" "the guest stopped ticking on the source after the rounds" "$slog"
	else
		pass "$name-source-answers" "seed $seed: $(tail -1 "$out"): each failed with its reason and the VM ran on ($(grep -c 'after-STATE' "$out") after the VM was paused for its STATE)"
	fi

	# After all that, a real migration between the two.
	if [ -n "$dead" ] || ! hostile_rearm "$dir" "$dpid"; then
		fail "$name-after" "no real migration: $dead" "$dlog"
		snap_stop "$spid"; rm -rf "$dir"; return
	fi
	r=$(api_call "$dir/src.sock" PUT /migration/start "{\"uri\": \"unix:$dir/mig.sock\", \"mode\": \"precopy\"}")
	rc=0
	if [ "${r%% *}" != 204 ] || ! wait_for 120 mig_gone "$spid"; then
		fail "$name-after" "the real migration did not finish: start answered $r; $(api_call "$dir/src.sock" GET /migration)" "$slog"
		snap_stop "$spid"; snap_stop "$dpid"; rm -rf "$dir"; return
	fi
	wait "$spid" || rc=$?
	k0=$(ticks "$dlog")
	if [ "$rc" -ne 0 ] || ! grep -q 'migration to .* completed' "$slog" ||
		! wait_for 30 ticks_at_least "$dlog" $((k0 + 3)); then
		fail "$name-after" "source exit $rc; the guest ticks on the destination: $(ticks "$dlog")" "$dlog"
		snap_stop "$dpid"; rm -rf "$dir"; return
	fi
	r=$(api_call "$dir/dst.sock" PUT /actions '{"action_type": "SendCtrlAltDel"}')
	rc=0
	wait "$dpid" || rc=$?
	if [ "$rc" -eq 0 ] && grep -q 'KILN-RESULT ticker PASS' "$dlog"; then
		pass "$name-after" "then a real migration between the same two kilns: the guest ticked on over there and ended on Ctrl+Alt+Del, exit 0"
	else
		fail "$name-after" "after the migration: Ctrl+Alt+Del answered $r, the destination exited $rc" "$dlog"
	fi
	rm -rf "$dir"
}
