# What this kernel's userfaultfd does with a poison marker, as kiln's GET /capabilities probes
# it: UFFDIO_POISON a page of a scratch range, then UFFDIO_COPY onto it. Stock kernels (6.6 and
# later) let the copy erase the marker; kiln's kernel-patches make it fail with EEXIST.
# Uses api.sh's helpers.

# The expected answer: KILN_EXPECT_COPY_REFUSES_POISON (1 or 0) when set, which
# kernel-patches/l1-checks sets for the patched kernel; otherwise 0 on a Debian kernel (its
# release has -amd64 or +deb), and no expectation (a failure) on any other kernel.
kvm_uffd_copy_over_poison() {
	local name=uffd-copy-over-poison sock=${TMPDIR:-/tmp}/kiln-uffdcopy.$$.sock caps want got
	local rel
	rel=$(uname -r)
	want=${KILN_EXPECT_COPY_REFUSES_POISON:-}
	if [ -z "$want" ]; then
		case $rel in
		*-amd64 | *+deb*) want=0 ;;
		*)
			fail "$name" "kernel $rel is not Debian's: set KILN_EXPECT_COPY_REFUSES_POISON"
			return
			;;
		esac
	fi
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
