# The API under bad input: tests/e2e/api_abuse.py against a kiln with no VM, no KVM needed.

# host_api_abuse: starts kiln on a fresh socket, relays api_abuse.py's PASS/FAIL lines as
# results, then checks kiln survived and stops cleanly on SIGTERM.
host_api_abuse() {
	local sock=$E2E_OUT/abuse.sock log=$E2E_OUT/api-abuse.log out=$E2E_OUT/api-abuse.out
	local pid rc=0 i line name rest lines=0
	rm -f "$sock"
	"$KILN" --api-sock "$sock" --id abuse </dev/null >"$log" 2>&1 &
	pid=$!
	for i in $(seq 50); do
		[ -S "$sock" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ ! -S "$sock" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		fail api-abuse-start "kiln did not create $sock within 5s" "$log"
		return
	fi

	timeout --kill-after=5 60 tests/e2e/api_abuse.py "$sock" --quick >"$out" 2>&1 || rc=$?
	while IFS= read -r line; do
		case $line in
		"PASS "*)
			lines=$((lines + 1))
			rest=${line#PASS }
			name=${rest%% *}
			rest=${rest#"$name"}
			rest=${rest# (}
			pass "$name" "${rest%)}"
			;;
		"FAIL "*)
			lines=$((lines + 1))
			rest=${line#FAIL }
			name=${rest%%: *}
			fail "$name" "${rest#"$name": }" "$log"
			;;
		esac
	done <"$out"
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		fail api-abuse-script "api_abuse.py timed out" "$out"
	elif [ "$lines" -eq 0 ] || { [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$out"; }; then
		fail api-abuse-script "api_abuse.py exited $rc with $lines result lines" "$out"
	fi

	if ! kill -0 "$pid" 2>/dev/null; then
		rc=0
		wait "$pid" || rc=$?
		fail api-abuse-kiln-alive "kiln exited ($rc) during the checks" "$log"
		return
	fi
	pass api-abuse-kiln-alive "pid $pid still running"

	kill -TERM "$pid"
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		fail api-abuse-sigterm "kiln still running 5s after SIGTERM (killed)" "$log"
		return
	fi
	rc=0
	wait "$pid" || rc=$?
	if [ "$rc" -ne 143 ]; then
		fail api-abuse-sigterm "exit $rc after SIGTERM, expected 143" "$log"
	elif [ -e "$sock" ]; then
		fail api-abuse-sigterm "exit 143 but $sock was left behind" "$log"
	else
		pass api-abuse-sigterm "exit 143, socket removed"
	fi
}
