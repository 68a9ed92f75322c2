# What this kernel's userfaultfd does with a poison marker, as kiln's GET /capabilities probes
# it: UFFDIO_POISON a page of a scratch range, then UFFDIO_COPY onto it. Stock kernels (6.6 and
# later) let the copy erase the marker; kiln's kernel-patches make it fail with EEXIST.
# Uses api.sh's helpers.

# The expected answer comes from copy_refusal_expected (below): kernel-patches/l1-checks sets
# KILN_EXPECT_COPY_REFUSES_POISON=1 for the patched kernel; Debian's stock kernels must erase.
kvm_uffd_copy_over_poison() {
	local name=uffd-copy-over-poison sock=${TMPDIR:-/tmp}/kiln-uffdcopy.$$.sock caps want got
	local rel
	rel=$(uname -r)
	copy_refusal_expected "$name" || return
	log=$E2E_OUT/$name.log
	api_kiln "$name" "$sock" 30 || return
	caps=$(api_call "$sock" GET /capabilities)
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -f "$sock"
	if ! grep -q '"uffd_poison": *true' <<<"$caps"; then
		fail "$name" "kernel $rel: no UFFD_FEATURE_POISON; GET /capabilities: $caps" "$log"
		return
	fi
	got=$(grep -o '"uffd_copy_refuses_poison": *[a-z]*' <<<"$caps" | sed 's/.*: *//')
	case $want:$got in
	1:true) pass "$name" "kernel $rel: UFFDIO_COPY onto a poisoned page fails with EEXIST" ;;
	0:false) pass "$name" "kernel $rel: UFFDIO_COPY onto a poisoned page succeeds and erases the marker (stock behaviour)" ;;
	*) fail "$name" "kernel $rel: uffd_copy_refuses_poison is '$got', expected $([ "$want" = 1 ] && echo true || echo false); GET /capabilities: $caps" "$log" ;;
	esac
}

# copy_refusal_expected NAME: sets want to 1 or 0, as KILN_EXPECT_COPY_REFUSES_POISON says or,
# unset, 0 on a Debian kernel (its release has -amd64 or +deb); on any other kernel records a
# failure of NAME and returns 1.
copy_refusal_expected() {
	local rel
	rel=$(uname -r)
	want=${KILN_EXPECT_COPY_REFUSES_POISON:-}
	[ -n "$want" ] && return 0
	case $rel in
	*-amd64 | *+deb*) want=0 ;;
	*)
		fail "$1" "kernel $rel is not Debian's: set KILN_EXPECT_COPY_REFUSES_POISON"
		return 1
		;;
	esac
}

# A poisoned snapshot whose memory an external handler serves, the handler copying every page
# up front (--eager) as a prefetching handler would. Where UFFDIO_COPY erases a poison marker
# (stock kernels) kiln refuses the load, naming why; where it refuses (kernel-patches) the load
# goes ahead, the handler's copy of the poisoned page is refused, every other page verifies and
# the poisoned one still takes a machine check. Uses snapshot.sh's helpers.
kvm_snapshot_uffd_eager_poison() {
	local name=snapshot-uffd-eager dir=${TMPDIR:-/tmp}/kiln-eager.$$ want gpa r hpid
	local handler=${KILN_UFFD_HANDLER:-$PWD/build/uffd_handler/kiln-uffd-handler}
	sock=$dir/api.sock
	copy_refusal_expected "$name" || return
	rm -rf "$dir"
	mkdir -p "$dir"
	mkfifo "$dir/console"
	exec 7<>"$dir/console"
	if ! snap_boot "$name" eager-src "$sock" "$dir/console" kiln.snap_mib=24 '"mem_size_mib": 128'; then
		exec 7>&-
		return
	fi
	gpa=$(agent_lines "$log" 'KILN-SNAP-READY' | grep -o 'gpa=0x[0-9a-f]*' | head -1 | cut -d= -f2)
	r=$(api_call "$sock" PUT /memory/poison "{\"guest_phys_addr\": $((gpa)), \"length\": 4096}")
	if [ "${r%% *}" != 204 ]; then
		fail "$name" "PUT /memory/poison answered $r" "$log"
		snap_stop; exec 7>&-; return
	fi
	snap_take "$name" "$sock" "$dir/a.state" "$dir/a.mem" || { snap_stop; exec 7>&-; return; }
	snap_stop

	"$handler" --eager "$dir/uffd.sock" "$dir/a.mem" >"$E2E_OUT/$name-handler.log" 2>&1 &
	hpid=$!
	if ! wait_for 10 test -S "$dir/uffd.sock"; then
		fail "$name" "the example handler did not listen" "$E2E_OUT/$name-handler.log"
		kill "$hpid" 2>/dev/null; exec 7>&-; return
	fi
	if [ "$want" = 0 ]; then
		snap_kiln eager-dst "$sock" "$dir/console" || { fail "$name" "no API socket" "$log"; exec 7>&-; return; }
		r=$(snap_call "$sock" PUT /snapshot/load "{\"snapshot_path\": \"$dir/a.state\", \"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": \"$dir/uffd.sock\"}, \"resume_vm\": true}")
		snap_stop
		kill "$hpid" 2>/dev/null
		wait "$hpid" 2>/dev/null
		exec 7>&-
		rm -rf "$dir"
		if [ "${r%% *}" != 400 ] || [[ "$r" != *"UFFDIO_COPY erases a poison marker"* ]]; then
			fail "$name" "kernel $(uname -r): the load answered $r (wanted 400: UFFDIO_COPY erases a poison marker)" "$log"
			return
		fi
		pass "$name" "kernel $(uname -r): refused, $(grep -o 'it has [^,]*, so a page-fault handler could turn them readable again' <<<"$r")"
		return
	fi
	if ! snap_restore eager-dst "$sock" "$dir/a.state" "$dir/uffd.sock" "$dir/console" Uffd; then
		kill "$hpid" 2>/dev/null; exec 7>&-; return
	fi
	if snap_verify "$name" "$log" 1 && snap_poison_read "$name" "$log" 1; then
		if ! grep -q 'eager copy: [0-9]* pages copied, [1-9][0-9]* refused' "$E2E_OUT/$name-handler.log"; then
			fail "$name" "the handler's eager copy refused nothing" "$E2E_OUT/$name-handler.log"
		else
			pass "$name" "kernel $(uname -r): $(grep -o 'eager copy: .*' "$E2E_OUT/$name-handler.log"); $(agent_lines "$log" 'KILN-SNAP-VERIFIED' | tail -1 | grep -o 'pages=[0-9]* bad=0'); the poisoned page took a machine check"
		fi
	fi
	snap_stop
	kill "$hpid" 2>/dev/null
	wait "$hpid" 2>/dev/null
	exec 7>&-
	rm -rf "$dir"
}
