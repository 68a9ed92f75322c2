# Poisoned pages on a kernel without UFFD_FEATURE_POISON (Debian 12's stock Linux 6.1): kiln
# cannot keep them poisoned through a restore, so it refuses, says why and keeps running. Its
# scenarios are of kind kvm61 (`suite kvm61`), never in the default `suite kvm` list: they need
# such a kernel, e.g. `tests/e2e/in-l1 --force-l1 --kernel 6.1 tests/e2e/suite kvm61`.
# Uses snapshot.sh's, migration.sh's and api.sh's helpers.

# k61_json_has TEXT PATTERN: grep -Eq PATTERN in TEXT.
k61_json_has() { grep -Eq "$2" <<<"$1"; }

# k61_load SOCK STATE BACKEND PATH: PUT /snapshot/load, not resumed; prints "STATUS BODY".
k61_load() {
	snap_call "$1" PUT /snapshot/load "{\"snapshot_path\": \"$2\", \"mem_backend\": {\"backend_type\": \"$3\", \"backend_path\": \"$4\"}, \"resume_vm\": true}"
}

# k61_cleanup: stops what kvm61_poison_refused started and closes the consoles.
k61_cleanup() {
	[ -n "${k61_hpid:-}" ] && kill -9 "$k61_hpid" 2>/dev/null && wait "$k61_hpid" 2>/dev/null
	[ -n "${dpid:-}" ] && snap_stop "$dpid"
	[ -n "${pid:-}" ] && snap_stop "$pid"
	k61_hpid='' dpid='' pid=''
	exec 7>&- 8>&-
}

# One guest, poisoned with MADV_HWPOISON (the only way on 6.1): GET /capabilities says why
# poison cannot be preserved; a migration to a destination here is refused before the VM runs
# there, the refusal reaching the source, whose VM keeps running; its snapshot is then refused
# by a fresh kiln with the File and the Uffd backend, which keeps running without a VM.
kvm61_poison_refused() {
	local name=kernel61-poison dir=${TMPDIR:-/tmp}/kiln-k61.$$ r caps gpa dsock mig_src mig_dst s
	local handler=${KILN_UFFD_HANDLER:-$PWD/build/uffd_handler/kiln-uffd-handler} lsock refusals=()
	local t0=$SECONDS
	sock=$dir/src.sock dsock=$dir/dst.sock lsock=$dir/load.sock k61_hpid='' dpid='' pid=''
	mig_setup "$dir"
	if ! snap_boot "$name" kernel61-src "$sock" "$dir/console" kiln.snap_mib=24 '"mem_size_mib": 64'; then
		exec 7>&- 8>&-
		return
	fi

	# GET /capabilities: no UFFD_FEATURE_POISON, and why that matters.
	caps=$(api_call "$sock" GET /capabilities)
	if ! k61_json_has "$caps" '"uffd_poison": *false'; then
		fail "$name" "this kernel ($(uname -r)) offers UFFD_FEATURE_POISON: kvm61 scenarios need one without it (tests/e2e/in-l1 --force-l1 --kernel 6.1); GET /capabilities: $caps" "$log"
		k61_cleanup; return
	fi
	if ! k61_json_has "$caps" '"uffd_copy_refuses_poison": *null' ||
		! k61_json_has "$caps" '"uffd_poison_reason": *"this kernel cannot preserve poisoned pages \(no UFFD_FEATURE_POISON; Linux 6.6\+ or kiln.s kernel-patches for 6.1\): snapshot loads'; then
		fail "$name" "GET /capabilities: $caps" "$log"
		k61_cleanup; return
	fi

	# Poison the agent's page: MADV_HWPOISON, since UFFDIO_POISON does not exist here.
	gpa=$(agent_lines "$log" 'KILN-SNAP-READY' | grep -o 'gpa=0x[0-9a-f]*' | head -1 | cut -d= -f2)
	r=$(api_call "$sock" PUT /memory/poison "{\"guest_phys_addr\": $((gpa)), \"length\": 4096}")
	if [ "${r%% *}" != 204 ] || ! grep -q 'poisoned guest-physical .* with MADV_HWPOISON' "$log"; then
		fail "$name" "PUT /memory/poison $gpa answered $r" "$log"
		k61_cleanup; return
	fi

	# A migration to a destination on this kernel: refused at STATE, before any VM there.
	if ! mig_dest kernel61-dst "$dsock" "$dir/console-dst" "unix:$dir/mig.sock"; then
		fail "$name" "the destination's API socket did not appear" "$dlog"
		k61_cleanup; return
	fi
	r=$(api_call "$sock" PUT /migration/start "{\"uri\": \"unix:$dir/mig.sock\", \"mode\": \"precopy\"}")
	[ "${r%% *}" = 204 ] || { fail "$name" "PUT /migration/start answered $r" "$log"; k61_cleanup; return; }
	if ! wait_for 300 eval '[ "$(mig_field "$sock" state)" = failed ]'; then
		fail "$name" "the source's migration did not fail: $(api_call "$sock" GET /migration)" "$log"
		tail -20 "$dlog"
		k61_cleanup; return
	fi
	mig_src=$(api_call "$sock" GET /migration)
	wait_for 10 eval '[ "$(mig_field "$dsock" state)" = failed ]'
	mig_dst=$(api_call "$dsock" GET /migration)
	s=$(api_call "$dsock" GET /)
	if ! k61_json_has "$mig_src" '"error": *"the destination refused: the destination cannot take a microVM with 1 poisoned range\(s\): this kernel cannot preserve poisoned pages \(no UFFD_FEATURE_POISON'; then
		fail "$name" "source's GET /migration: $mig_src" "$log"
		k61_cleanup; return
	fi
	if ! k61_json_has "$mig_dst" '"state": *"failed"' || ! k61_json_has "$mig_dst" 'no UFFD_FEATURE_POISON' ||
		[[ "$s" != 200*'"state":"Not started"'* ]]; then
		fail "$name" "destination's GET /migration: $mig_dst; GET /: $s" "$dlog"
		k61_cleanup; return
	fi
	snap_stop "$dpid"
	dpid=''
	s=$(api_call "$sock" GET /)
	if [[ "$s" != 200*'"state":"Running"'* ]] || ! grep -q 'the microVM runs here again' "$log"; then
		fail "$name" "after the refusal the source's GET / answered $s" "$log"
		k61_cleanup; return
	fi
	# The guest runs on: every page but the poisoned one verifies, that one takes a machine check.
	if ! snap_verify "$name" "$log" 1 || ! snap_poison_read "$name" "$log" 1; then
		k61_cleanup; return
	fi

	# A snapshot of it carries the poisoned page...
	snap_take "$name" "$sock" "$dir/a.state" "$dir/a.mem" || { k61_cleanup; return; }
	snap_stop "$pid"
	pid=''
	r=$("$KILN" --describe-snapshot "$dir/a.state" 2>&1)
	if ! grep -q "0x$(printf '%x' $((gpa))) +0x1000 (injected)" <<<"$r"; then
		fail "$name" "--describe-snapshot does not list the poisoned page: $r"
		k61_cleanup; return
	fi
	# ... and a fresh kiln refuses to load it with either backend, and keeps running.
	snap_kiln kernel61-load "$lsock" /dev/null || { fail "$name" "the API socket did not appear" "$log"; k61_cleanup; return; }
	r=$(k61_load "$lsock" "$dir/a.state" File "$dir/a.mem")
	if [ "${r%% *}" != 400 ] || ! k61_json_has "$r" 'it has 1 poisoned range\(s\) and this kernel cannot preserve poisoned pages \(no UFFD_FEATURE_POISON'; then
		fail "$name" "File load answered $r" "$log"
		k61_cleanup; return
	fi
	refusals+=("File: ${r#400 }")
	"$handler" "$dir/uffd.sock" "$dir/a.mem" >"$E2E_OUT/kernel61-handler.log" 2>&1 &
	k61_hpid=$!
	if ! wait_for 10 test -S "$dir/uffd.sock"; then
		fail "$name" "the example handler did not listen" "$E2E_OUT/kernel61-handler.log"
		k61_cleanup; return
	fi
	r=$(k61_load "$lsock" "$dir/a.state" Uffd "$dir/uffd.sock")
	s=$(api_call "$lsock" GET /)
	if [ "${r%% *}" != 400 ] || ! k61_json_has "$r" 'no UFFD_FEATURE_POISON.*neither the Uffd nor the File backend'; then
		fail "$name" "Uffd load answered $r" "$log"
		k61_cleanup; return
	fi
	refusals+=("Uffd: ${r#400 }")
	if [[ "$s" != 200*'"state":"Not started"'* ]]; then
		fail "$name" "after the refusals GET / answered $s" "$log"
		k61_cleanup; return
	fi
	k61_cleanup
	pass "$name" "$(uname -r), $((SECONDS - t0)) s: GET /capabilities uffd_poison false; migration refused, source: $(grep -o '"error": *"[^"]*"' <<<"$mig_src"); the source's VM ran on; snapshot loads refused: ${refusals[*]}"
	rm -rf "$dir"
}
