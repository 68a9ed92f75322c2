# kiln-jailer scenarios: argument errors (host), a guest booted through the jailer as an
# unprivileged uid in a cgroup, and what a jailed process can and cannot reach (kvm: in L1).

JAILER=${JAILER:-$PWD/build/kiln-jailer}
JAIL_PROBE=${JAIL_PROBE:-$PWD/build/tests/jail_probe}
# L1's /tmp is a tmpfs without nodev; elsewhere choose a base where device nodes open.
JAIL_BASE=${KILN_JAIL_BASE:-/tmp/kiln-jailer-e2e}
JAIL_UID=10000
JAIL_GID=10000

# jail_arg_case NAME WANT_RC WANT_TEXT ARGS...: runs the jailer, which must exit WANT_RC and
# say WANT_TEXT on stderr (stdout for rc 0). Appends a line to $jail_errors when it does not.
jail_arg_case() {
	local name=$1 want_rc=$2 want=$3 out rc=0
	shift 3
	out=$(timeout 10 "$JAILER" "$@" 2>&1 </dev/null) || rc=$?
	if [ "$rc" -ne "$want_rc" ]; then
		jail_errors+="$name: exit $rc, wanted $want_rc ($out); "
	elif ! grep -qF -- "$want" <<<"$out"; then
		jail_errors+="$name: no \"$want\" in: $out; "
	fi
}

host_jailer_args() {
	local base=$E2E_OUT/jailer-args-base ok=(--uid 1 --gid 1 --chroot-base-dir "$E2E_OUT/jailer-args-base")
	local k=(--exec-file "$KILN") long flag out rc
	jail_errors=''
	rm -rf "$base"
	if [ ! -x "$JAILER" ]; then
		fail jailer-args "$JAILER is missing (ninja builds it)"
		return
	fi
	long=$(printf 'a%.0s' $(seq 65))
	jail_arg_case no-args 2 "--id is required"
	jail_arg_case no-id 2 "--id is required" "${k[@]}" "${ok[@]}"
	jail_arg_case bad-id 2 '--id "vm_1": use 1 to 64 letters, digits or' --id vm_1 "${k[@]}" "${ok[@]}"
	jail_arg_case slash-id 2 '--id "../x"' --id ../x "${k[@]}" "${ok[@]}"
	jail_arg_case long-id 2 "--id \"$long\"" --id "$long" "${k[@]}" "${ok[@]}"
	jail_arg_case relative-exec 2 '--exec-file "build/kiln": must be an absolute path' \
		--id a --exec-file build/kiln "${ok[@]}"
	jail_arg_case dotdot-exec 2 '".."' --id a --exec-file /usr/../bin/true "${ok[@]}"
	jail_arg_case no-uid 2 "--uid is required" --id a "${k[@]}" --gid 1
	jail_arg_case bad-uid 2 '--uid "nobody": expected a number' --id a "${k[@]}" --uid nobody --gid 1
	jail_arg_case bad-cgroup 2 "expected FILE=VALUE" --id a "${k[@]}" "${ok[@]}" --cgroup memory.max
	jail_arg_case cgroup-file 2 "is not a cgroup file name" --id a "${k[@]}" "${ok[@]}" \
		--cgroup ../../etc/passwd=x
	jail_arg_case cgroup-v1 2 "supports only cgroup v2" --id a "${k[@]}" "${ok[@]}" --cgroup-version 1
	jail_arg_case bad-rlimit 2 "expected fsize=N or no-file=N" --id a "${k[@]}" "${ok[@]}" \
		--resource-limit core=0
	jail_arg_case relative-base 2 '--chroot-base-dir "srv": must be an absolute path' \
		--id a "${k[@]}" --uid 1 --gid 1 --chroot-base-dir srv
	jail_arg_case relative-copy 2 '--copy-in "vmlinux": must be an absolute path' \
		--id a "${k[@]}" "${ok[@]}" --copy-in vmlinux
	jail_arg_case unknown 2 'unknown argument "--no-api"' --id a "${k[@]}" "${ok[@]}" --no-api
	jail_arg_case no-value 2 "--gid needs a value" --id a "${k[@]}" --uid 1 --gid
	jail_arg_case missing-exec 1 "--exec-file /nonexistent/kiln: No such file or directory" \
		--id a --exec-file /nonexistent/kiln "${ok[@]}"
	jail_arg_case missing-copy 1 "--copy-in /nonexistent/vmlinux: No such file" \
		--id a "${k[@]}" "${ok[@]}" --copy-in /nonexistent/vmlinux
	for flag in --id --exec-file --uid --gid --chroot-base-dir --netns --cgroup --parent-cgroup \
		--cgroup-version --resource-limit --daemonize --new-pid-ns --copy-in --copy-libs; do
		jail_arg_case "help$flag" 0 "$flag" --help
	done
	# Not root: refused after the arguments check out, before anything is created.
	if [ "$(id -u)" = 0 ]; then
		out=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$JAILER" --id a "${k[@]}" "${ok[@]}" 2>&1)
		rc=$?
	else
		out=$("$JAILER" --id a "${k[@]}" "${ok[@]}" 2>&1)
		rc=$?
	fi
	[ "$rc" = 1 ] && grep -q "must run as root" <<<"$out" || jail_errors+="not-root: exit $rc: $out; "
	[ ! -e "$base" ] || jail_errors+="$base was created by a failing run; "
	if [ -z "$jail_errors" ]; then
		pass jailer-args "every bad argument refused with a message naming the flag"
	else
		fail jailer-args "$jail_errors"
	fi
}

# jail_needs_root NAME: fails NAME unless this shell is root (in L1 it is).
jail_needs_root() {
	[ "$(id -u)" = 0 ] && return 0
	fail "$1" "needs root (run it through tests/e2e/in-l1)"
	return 1
}

# jail_cgroup2 NAME: makes sure cgroup v2 is mounted at /sys/fs/cgroup. L1 mounts none; there
# we mount it. Elsewhere a missing cgroup2 fails NAME rather than touching the host's mounts.
jail_cgroup2() {
	[ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ] && return 0
	if [ "${KILN_IN_L1:-0}" = 1 ] && mount -t cgroup2 none /sys/fs/cgroup; then
		return 0
	fi
	fail "$1" "/sys/fs/cgroup is not a cgroup2 mount"
	return 1
}

# A guest boots through kiln-jailer: kiln runs as $JAIL_UID as PID 1 of its own PID namespace,
# in the cgroup kiln/jailer-boot with memory and CPU limits, with only its kernel, initramfs,
# config and libraries in the chroot.
kvm_jailer_boot() {
	local name=jailer-boot id=jailer-boot cg=/sys/fs/cgroup/kiln/jailer-boot root pid='' cfg
	local status='' cgline='' nspid='' peak mmax cmax jpid
	jail_needs_root "$name" && jail_cgroup2 "$name" || return
	root=$JAIL_BASE/kiln/$id/root
	rm -rf "${root%/root}"
	rmdir "$cg" 2>/dev/null
	cfg=$E2E_OUT/$name.json
	cat >"$cfg" <<JSON
{
  "boot-source": {
    "kernel_image_path": "/vmlinux",
    "initrd_path": "/initramfs.cpio.gz",
    "boot_args": "console=ttyS0 quiet reboot=k panic=1 pci=off kiln.test=boot kiln.expect_cpus=1 kiln.expect_mem_mib=128"
  },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 128 }
}
JSON
	log=$E2E_OUT/$name.log
	timeout --kill-after=5 240 "$JAILER" --id "$id" --exec-file "$KILN" \
		--uid "$JAIL_UID" --gid "$JAIL_GID" --chroot-base-dir "$JAIL_BASE" \
		--cgroup memory.max=512M --cgroup "cpu.max=100000 100000" --new-pid-ns --copy-libs \
		--copy-in "$GUEST/vmlinux:/vmlinux" --copy-in "$GUEST/initramfs.cpio.gz" \
		--copy-in "$cfg:/vm.json" -- --no-api --config-file /vm.json </dev/null >"$log" 2>&1 &
	jpid=$!
	# While the guest boots: who kiln runs as, which cgroup and PID namespace it is in.
	for _ in $(seq 1 2400); do
		[ -n "$pid" ] || pid=$(cat "$root/kiln.pid" 2>/dev/null)
		if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
			status=$(grep -E '^(Uid|Gid|Groups):' "/proc/$pid/status" | tr -s '\t ' ' ')
			nspid=$(awk '/^NSpid:/ {print $2, $3}' "/proc/$pid/status")
			cgline=$(cat "/proc/$pid/cgroup")
			break
		fi
		kill -0 "$jpid" 2>/dev/null || break
		sleep 0.05
	done
	rc=0
	wait "$jpid" || rc=$?
	peak=$(cat "$cg/memory.peak" 2>/dev/null || echo 0)
	mmax=$(cat "$cg/memory.max" 2>/dev/null)
	cmax=$(cat "$cg/cpu.max" 2>/dev/null)
	if [ "$rc" -eq 124 ]; then
		fail "$name" "timed out" "$log"
	elif ! grep -q 'KILN-RESULT boot PASS' "$log" || [ "$rc" -ne 0 ]; then
		fail "$name" "no passing boot through the jailer (exit $rc)" "$log"
	elif ! grep -q "Uid: $JAIL_UID $JAIL_UID $JAIL_UID $JAIL_UID" <<<"$status" ||
		! grep -q "Gid: $JAIL_GID $JAIL_GID $JAIL_GID $JAIL_GID" <<<"$status" ||
		! grep -qE '^Groups: ?$' <<<"$status"; then
		fail "$name" "kiln (pid ${pid:-?}) did not run as $JAIL_UID:$JAIL_GID without groups: $status"
	elif [ "${nspid#* }" != 1 ]; then
		fail "$name" "kiln was not PID 1 of a new PID namespace (NSpid: $nspid)"
	elif [ "$cgline" != "0::/kiln/$id" ]; then
		fail "$name" "kiln was in cgroup '$cgline', not 0::/kiln/$id"
	elif [ "$mmax" != 536870912 ] || [ "$cmax" != "100000 100000" ]; then
		fail "$name" "cgroup limits memory.max=$mmax cpu.max=$cmax"
	elif [ "$peak" -lt $((16 << 20)) ]; then
		fail "$name" "the cgroup's memory.peak is $peak bytes: the guest's memory was not charged there"
	else
		pass "$name" "$(grep -o 'KILN-RESULT.*' "$log" | tr -d '\r' | head -1); pid $pid = 1 in its namespace, uid $JAIL_UID, cgroup /kiln/$id, memory.peak $((peak >> 20)) MiB"
	fi
	rm -rf "${root%/root}"
	rmdir "$cg" 2>/dev/null
}

# jail_probe_run NAME TARGET_PID MARKER [JAILER_FLAGS...]: jails the probe, which tries to read
# host files and to signal TARGET_PID; its report goes to $E2E_OUT/NAME.log.
jail_probe_run() {
	local name=$1 target=$2 marker=$3
	shift 3
	log=$E2E_OUT/$name.log
	rm -rf "$JAIL_BASE/jail_probe/$name"
	rc=0
	timeout --kill-after=5 30 "$JAILER" --id "$name" --exec-file "$JAIL_PROBE" \
		--uid "$JAIL_UID" --gid "$JAIL_GID" --chroot-base-dir "$JAIL_BASE" "$@" -- \
		--open /etc/hostname --open "$marker" --open "$KILN" --open /proc/1/environ \
		--kill "$target" </dev/null >"$log" 2>&1 || rc=$?
	rm -rf "$JAIL_BASE/jail_probe/$name"
}

# A jailed process sees only its chroot (no host file, however it is named), has no
# capabilities, environment or inherited descriptors, is PID 1 of its namespace, and cannot
# signal a host process of its own uid. The same probe without --new-pid-ns does kill that
# process: the ESRCH comes from the PID namespace, not from the permissions.
kvm_jailer_isolation() {
	local name=jailer-isolation marker target why='' l entries want
	jail_needs_root "$name" || return
	if [ ! -x "$JAIL_PROBE" ]; then
		fail "$name" "$JAIL_PROBE is missing (ninja builds it)"
		return
	fi
	[ -e /etc/hostname ] || echo kiln >/etc/hostname 2>/dev/null
	mkdir -p "$JAIL_BASE"
	marker=$(mktemp "$JAIL_BASE/marker.XXXXXX")
	setpriv --reuid "$JAIL_UID" --regid "$JAIL_GID" --clear-groups sleep 120 &
	target=$!
	sleep 0.2
	# An inherited descriptor: the jailer must close it.
	exec 8<"$marker"
	jail_probe_run jailer-isolation "$target" "$marker" --new-pid-ns
	exec 8<&-
	l=$log
	for want in "pid 1" "uid $JAIL_UID $JAIL_UID gid $JAIL_GID $JAIL_GID groups 0" "caps 0" \
		"bounding 0" "env 0" "fds 0" "nofile 2048" \
		"open /etc/hostname ENOENT" "open $marker ENOENT" "open $KILN ENOENT" \
		"open /proc/1/environ ENOENT" "kill $target ESRCH" "id jailer-isolation"; do
		grep -qE "^jail_probe: ($want)\$" "$l" || why+="no 'jail_probe: $want'; "
	done
	# Everything in the jail's root: what the jailer put there, nothing of the host's.
	entries=$(sed -n 's/^jail_probe: root //p' "$l" | tr ' ' '\n' | sort | tr '\n' ' ')
	[ "$entries" = "dev jail_probe jail_probe.pid run " ] || why+="the jail's / holds: $entries; "
	kill -0 "$target" 2>/dev/null || why+="the host process $target died; "
	if [ -z "$why" ] && [ "$rc" -eq 0 ]; then
		# The control: without a PID namespace the same signal reaches the same process.
		jail_probe_run jailer-isolation-control "$target" "$marker"
		sleep 0.2
		grep -q "^jail_probe: kill $target ok\$" "$log" && ! kill -0 "$target" 2>/dev/null ||
			why+="the control run without --new-pid-ns could not signal $target (see $log); "
	fi
	kill "$target" 2>/dev/null
	wait "$target" 2>/dev/null
	rm -f "$marker"
	if [ "$rc" -ne 0 ] || [ -n "$why" ]; then
		fail "$name" "exit $rc: $why" "$l"
	else
		pass "$name" "pid 1, uid $JAIL_UID, no capabilities (bounding set empty), environment or fds, host files ENOENT, kill of host pid $target ESRCH (ok without --new-pid-ns)"
	fi
}
