# Host memory errors on KVM: the host poisons a guest page through PUT /memory/poison while the
# guest's agent (kiln.test=poison) keeps reading it; the guest must take a machine check, kill
# only the reader, and go on. Uses api.sh's api_kiln, api_call and wait_for.

# log_has LOG PATTERN: grep -q, for wait_for.
log_has() { grep -q "$2" "$1" 2>/dev/null; }

# poison_guest NAME HUGE(None|2M) VCPUS MEM_MIB AGENT_ARGS: boots the agent through the API,
# poisons the page it reports, and checks the guest, kiln's log and GET /memory/poison.
poison_guest() {
	local name=$1 huge=$2 vcpus=$3 mem=$4 args=$5
	local sock=${TMPDIR:-/tmp}/kiln-$name.$$.sock pid r gpa dec want_len pages rc=0
	log=$E2E_OUT/$name.log
	want_len=4096
	[ "$huge" = 2M ] && want_len=2097152
	api_kiln "$name" "$sock" 400 \
		"PUT /boot-source {\"kernel_image_path\": \"$GUEST/vmlinux\", \"initrd_path\": \"$GUEST/initramfs.cpio.gz\", \"boot_args\": \"console=ttyS0 quiet reboot=k panic=1 pci=off kiln.test=poison $args\"}" \
		"PUT /machine-config {\"vcpu_count\": $vcpus, \"mem_size_mib\": $mem, \"huge_pages\": \"$huge\"}" \
		"PUT /actions {\"action_type\": \"InstanceStart\"}" || return
	if ! wait_for 150 log_has "$log" 'KILN-POISON-GPA 0x'; then
		fail "$name" "the agent never reported its buffer's guest-physical address" "$log"
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return
	fi
	gpa=$(grep -o 'KILN-POISON-GPA 0x[0-9a-f]*' "$log" | head -1 | cut -d' ' -f2)
	dec=$((gpa))
	# Always 4 KiB: on 2 MiB backing kiln rounds it to the whole host page.
	r=$(api_call "$sock" PUT /memory/poison "{\"guest_phys_addr\": $dec, \"length\": 4096}")
	pages=$(api_call "$sock" GET /memory/poison)
	if [ "${r%% *}" != 204 ]; then
		fail "$name" "PUT /memory/poison $gpa answered $r" "$log"
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return
	fi
	if ! wait_for 200 log_has "$log" 'KILN-RESULT poison'; then
		fail "$name" "no KILN-RESULT from the agent after poisoning $gpa" "$log"
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return
	fi
	wait "$pid" || rc=$?
	if ! grep -q 'KILN-RESULT poison PASS' "$log"; then
		fail "$name" "the agent failed (kiln exit $rc)" "$log"
	elif [ "$rc" -ne 0 ]; then
		fail "$name" "the agent passed but kiln exited $rc" "$log"
	elif ! grep -Eq "^200 .*\"guest_phys_addr\": *$dec, *\"length\": *$want_len, *\"origin\": *\"injected\"" <<<"$pages"; then
		fail "$name" "GET /memory/poison: $pages (wanted $dec, $want_len, injected)" "$log"
	elif ! grep -Eq 'poisoned guest-physical .* with (MADV_HWPOISON|userfaultfd)' "$log"; then
		fail "$name" "kiln's log does not say how it poisoned the page" "$log"
	elif ! grep -q 'machine check injected' "$log"; then
		fail "$name" "kiln's log shows no injected machine check" "$log"
	else
		pass "$name" "$(grep -o 'with [A-Za-z_ ]*, recorded' "$log" | head -1); $(grep -o 'machine check injected ([^)]*)' "$log" | head -1); GET ${pages#200 }; $(grep -o 'KILN-RESULT.*' "$log" | tr -d '\r' | head -1)"
	fi
}

kvm_poison_4k() {
	# Two vCPUs: the machine check goes to whichever one the reader ran on, and only there.
	poison_guest poison-4k None 2 128 ""
}

kvm_poison_2m() {
	local free
	free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
	if [ "${free:-0}" -lt 32 ]; then
		fail poison-2m "the host has ${free:-0} free 2 MiB hugepages, the test needs 32"
		return
	fi
	poison_guest poison-2m 2M 1 64 "kiln.poison_huge=1"
}

# A virtio-blk write whose data lies in a poisoned page: kiln refuses to read the page, the
# guest's write fails with EIO, the next write from another page works, kiln goes on.
kvm_poison_blk_write() {
	local name=poison-blk-write sock=${TMPDIR:-/tmp}/kiln-poison-blk.$$.sock pid r gpa img rc=0
	log=$E2E_OUT/$name.log
	img=$E2E_OUT/$name.img
	rm -f "$img"
	truncate -s 16M "$img"
	api_kiln "$name" "$sock" 300 \
		"PUT /boot-source {\"kernel_image_path\": \"$GUEST/vmlinux\", \"initrd_path\": \"$GUEST/initramfs.cpio.gz\", \"boot_args\": \"console=ttyS0 quiet reboot=k panic=1 pci=off kiln.test=poison kiln.poison_blk=1\"}" \
		"PUT /drives/scratch {\"drive_id\": \"scratch\", \"path_on_host\": \"$img\", \"is_root_device\": false, \"is_read_only\": false}" \
		"PUT /actions {\"action_type\": \"InstanceStart\"}" || return
	if wait_for 150 log_has "$log" 'KILN-POISON-GPA 0x'; then
		gpa=$(grep -o 'KILN-POISON-GPA 0x[0-9a-f]*' "$log" | head -1 | cut -d' ' -f2)
		r=$(api_call "$sock" PUT /memory/poison "{\"guest_phys_addr\": $((gpa)), \"length\": 4096}")
	fi
	wait_for 200 log_has "$log" 'KILN-RESULT poison' || kill "$pid" 2>/dev/null
	wait "$pid" || rc=$?
	if [ -z "${gpa:-}" ] || [ "${r%% *}" != 204 ]; then
		fail "$name" "no buffer address, or PUT /memory/poison answered ${r:-nothing}" "$log"
	elif ! grep -q "poisoned guest-physical \[$(printf '%#x' "$((gpa))"), .* recorded as injected" "$log"; then
		# The guest reboots as soon as it is done, so kiln's log, not GET, says what it did.
		fail "$name" "kiln's log does not show page $gpa poisoned and recorded" "$log"
	elif [ "$rc" -ne 0 ] || ! grep -q 'KILN-RESULT poison PASS' "$log"; then
		fail "$name" "the agent failed (kiln exit $rc)" "$log"
	else
		pass "$name" "$(grep -o 'KILN-RESULT.*' "$log" | tr -d '\r' | head -1); kiln exit 0"
	fi
}

# Poisoning needs a running VM: before InstanceStart the API refuses with 400.
kvm_poison_before_boot_refused() {
	local sock=${TMPDIR:-/tmp}/kiln-poison-early.$$.sock pid r
	log=$E2E_OUT/poison-before-boot.log
	api_kiln poison-before-boot "$sock" 60 \
		"PUT /machine-config {\"vcpu_count\": 1, \"mem_size_mib\": 128}" || return
	r=$(api_call "$sock" PUT /memory/poison '{"guest_phys_addr": 1048576, "length": 4096}')
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if [ "${r%% *}" = 400 ]; then
		pass poison-before-boot-refused "$r"
	else
		fail poison-before-boot-refused "PUT /memory/poison before boot answered $r" "$log"
	fi
}
