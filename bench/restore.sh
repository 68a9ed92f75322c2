# Restore latency for bench/run (sourced inside L1): the snapshot agent's guest, snapshotted once
# per size by kiln and by QEMU -M microvm (a migration file), restored $rst_runs times each with
# kiln's File and Uffd backends and QEMU's incoming migration, alternating. Sets rst_md_rows,
# rst_json_rows and rst_md_text. Needs build/kiln, build/uffd_handler/kiln-uffd-handler and
# build/bench/restoretime; uses bench/run's work, guest, say, median and ratio.
# Alone: `KILN_BENCH_ONLY=restore bench/run`, which prints the rows without touching latest.*.

rst_runs=${KILN_BENCH_RESTORE_RUNS:-3}
rst_handler='' # the running kiln-uffd-handler's pid, for a failure to stop it
# Guest RAM in MiB and how much of it the agent fills (about 60%).
rst_sizes="128:80 512:300"

# rst_run NAME CMD...: one restoretime run, its console in $work/NAME.log; appends the figures it
# prints ("load_ms=L verified_ms=V", or "take_ms=T") as "L V" (or "T") to $work/NAME.
rst_run() {
	local name=$1 line
	shift
	line=$(build/bench/restoretime "$@" 2>"$work/$name.err") || {
		[ -n "$rst_handler" ] && kill "$rst_handler" 2>/dev/null
		say "$name: restoretime failed: $(cat "$work/$name.err")"
		say "$name: last console lines:"
		tail -n 20 "$work/$name.log" >&2
		exit 1
	}
	awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); printf "%s%s", (i > 1) ? " " : "", kv[2] }
		print "" }' <<<"$line" >>"$work/$name"
}

# rst_wait_sock PATH: waits up to 10 s for a unix socket to appear.
rst_wait_sock() {
	local i
	for ((i = 0; i < 200; i++)); do [ -S "$1" ] && return 0; sleep 0.05; done
	die "no socket at $1"
}

restore_benches() {
	local dir kiln handler mib fill size cfg args i b body f u q qv fv uv rst_notes
	# Under /tmp (tmpfs in L1): snapshot files in memory for both monitors, and sockets, which
	# the harness's 9p share cannot hold. Private copies of the binaries, which may be rebuilt
	# while this runs.
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-rst.XXXXXX")
	kiln=$dir/kiln handler=$dir/kiln-uffd-handler
	cp build/kiln "$kiln"
	cp build/uffd_handler/kiln-uffd-handler "$handler"
	rst_md_rows='' rst_json_rows='' rst_notes=''
	for size in $rst_sizes; do
		mib=${size%%:*} fill=${size#*:}
		rm -f "$work"/rst-*-"$mib"
		args="console=ttyS0 quiet reboot=t panic=1 pci=off kiln.test=snapshot kiln.snap_mib=$fill"
		cfg=$work/kiln-rst-$mib.json
		cat >"$cfg" <<JSON
{
  "boot-source": { "kernel_image_path": "$guest/vmlinux",
                   "initrd_path": "$guest/initramfs.cpio.gz", "boot_args": "$args" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": $mib }
}
JSON
		local qemu=(qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off -accel kvm -cpu host
			-smp 1 -m "$mib" -object memory-backend-memfd,id=mem,size="${mib}M"
			-machine memory-backend=mem -kernel "$guest/vmlinux" -initrd "$guest/initramfs.cpio.gz"
			-append "$args" -nodefaults -no-user-config -nographic -serial stdio -no-reboot
			-qmp "unix:$dir/qmp.sock,server=on,wait=off")

		rm -f "$dir/api.sock"
		rst_run "rst-kiln-take-$mib" kiln-take "$dir/api.sock" \
			"{\"snapshot_type\": \"Full\", \"snapshot_path\": \"$dir/k.state\", \"mem_file_path\": \"$dir/k.mem\"}" \
			--log "$work/rst-kiln-take-$mib.log" --timeout 600 -- \
			"$kiln" --api-sock "$dir/api.sock" --id bench-rst --config-file "$cfg"
		rm -f "$dir/qmp.sock"
		rst_run "rst-qemu-take-$mib" qemu-take "$dir/qmp.sock" "$dir/q.mig" \
			--log "$work/rst-qemu-take-$mib.log" --timeout 600 -- "${qemu[@]}"
		say "restore $mib MiB: snapshots taken (kiln $(stat -c %s "$dir/k.mem") + $(stat -c %s "$dir/k.state") bytes in $(cat "$work/rst-kiln-take-$mib") ms, QEMU $(stat -c %s "$dir/q.mig") bytes in $(cat "$work/rst-qemu-take-$mib") ms)"

		for i in $(seq 1 "$rst_runs"); do
			for b in File Uffd; do
				f=$dir/k.mem
				if [ $b = Uffd ]; then
					f=$dir/uffd.sock
					rm -f "$f"
					"$handler" "$f" "$dir/k.mem" >>"$work/rst-uffd-handler-$mib.log" 2>&1 &
					rst_handler=$!
					rst_wait_sock "$f"
				fi
				body="{\"snapshot_path\": \"$dir/k.state\", \"mem_backend\": {\"backend_type\": \"$b\", \"backend_path\": \"$f\"}, \"resume_vm\": true}"
				rm -f "$dir/api.sock"
				rst_run "rst-kiln-$b-$mib" kiln-load "$dir/api.sock" "$body" \
					--log "$work/rst-kiln-$b-$mib.log" --timeout 600 -- \
					"$kiln" --api-sock "$dir/api.sock" --id bench-rst
				# The handler ends when kiln's connection goes.
				if [ $b = Uffd ]; then
					wait "$rst_handler" || true
					rst_handler=''
				fi
			done
			rm -f "$dir/qmp.sock"
			rst_run "rst-qemu-$mib" qemu-load "$dir/qmp.sock" "$dir/q.mig" \
				--log "$work/rst-qemu-$mib.log" --timeout 600 -- "${qemu[@]}" -incoming defer
			say "restore $mib MiB run $i/$rst_runs (load verified, ms): kiln File $(tail -1 "$work/rst-kiln-File-$mib"), Uffd $(tail -1 "$work/rst-kiln-Uffd-$mib"), QEMU $(tail -1 "$work/rst-qemu-$mib")"
		done
		rm -f "$dir"/k.* "$dir/q.mig"
		# restoretime's log lines start with "[ms since the load request]".
		f=$(grep 'guest memory restored: ' "$work/rst-kiln-File-$mib.log" | tr -d '\r' | tail -1 |
			sed -E 's/^\[ *([0-9.]+)\] .*guest memory restored: (.*)/\2, the last of them \1 ms after the load call/')
		rst_notes+="${rst_notes:+; }$mib MiB: ${f:-not all restored when the guest was done}"

		f=$(cut -d' ' -f1 "$work/rst-kiln-File-$mib" | median)
		u=$(cut -d' ' -f1 "$work/rst-kiln-Uffd-$mib" | median)
		q=$(cut -d' ' -f1 "$work/rst-qemu-$mib" | median)
		fv=$(cut -d' ' -f2 "$work/rst-kiln-File-$mib" | median)
		uv=$(cut -d' ' -f2 "$work/rst-kiln-Uffd-$mib" | median)
		qv=$(cut -d' ' -f2 "$work/rst-qemu-$mib" | median)
		rst_md_rows+="| restore, $mib MiB guest: load call → running (ms) | File $f / Uffd $u | QEMU -M microvm incoming: $q | $(ratio "$f" "$q") / $(ratio "$u" "$q") |
| restore, $mib MiB guest: load call → guest verified its $fill MiB (ms) | File $fv / Uffd $uv | QEMU -M microvm incoming: $qv | $(ratio "$fv" "$qv") / $(ratio "$uv" "$qv") |
"
		rst_json_rows+="    { \"figure\": \"restore_${mib}mib_load_to_running_ms\", \"kiln\": $f, \"kiln_uffd\": $u, \"reference\": $q, \"reference_name\": \"qemu-microvm-incoming\", \"ratio\": $(ratio "$f" "$q"), \"ratio_uffd\": $(ratio "$u" "$q"), \"runs\": $rst_runs },
    { \"figure\": \"restore_${mib}mib_load_to_verified_ms\", \"kiln\": $fv, \"kiln_uffd\": $uv, \"reference\": $qv, \"reference_name\": \"qemu-microvm-incoming\", \"ratio\": $(ratio "$fv" "$qv"), \"ratio_uffd\": $(ratio "$uv" "$qv"), \"guest_filled_mib\": $fill, \"runs\": $rst_runs },
"
	done
	rm -rf "$dir"
	rst_md_text="Restore rows: the snapshot agent's guest (1 vCPU; 128 MiB filling 80 MiB, 512 MiB filling
300 MiB with a pattern whose CRC it keeps per page) is snapshotted once per size and monitor,
then restored by each monitor in turn, $rst_runs restores per figure (median given), all files
on L1's tmpfs.
kiln: paused, \`PUT /snapshot/create\` (Full); each restore is a fresh \`kiln --api-sock\` given
\`PUT /snapshot/load\` with \`resume_vm\` true, from the memory file (File: kiln's own uffd
thread, faulted pages first, the rest in the background) or through
\`kiln-uffd-handler\` (Uffd: every page on its first fault, nothing in the background). QEMU:
the same kernel, initramfs, boot arguments and machine (\`-M microvm\`, memfd RAM), \`stop\` and
\`migrate \"exec:cat > FILE\"\`; each restore is a fresh QEMU with \`-incoming defer\` given
\`migrate-incoming \"exec:cat FILE\"\` and, on the MIGRATION completed event, \`cont\` (the
source was paused, as kiln's was, so QEMU waits for it). Both clocks start when
bench/restoretime writes the load request (the monitor already started and its API or QMP
socket connected), read with CLOCK_MONOTONIC. *Running*: kiln's 204, QEMU's answer to
\`cont\`. *Verified*: the guest's answer to \`verify\`, written on its serial console right
after, has arrived: it has read every page it filled and found them intact (bad=0), so for
kiln every one of them has been faulted in. QEMU reads the whole file before its guest runs;
kiln's guest runs first and takes its memory as it touches it, while (File) kiln's uffd thread
copies the rest; L1 has one CPU, which that thread, the handler and the guest's vCPU share.
kiln's own account of its last File restore: $rst_notes. Ratio: File/QEMU and Uffd/QEMU;
below 1 kiln is faster."
}
