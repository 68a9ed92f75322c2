# virtio-net scenarios: a TAP device in L1, a guest on it, ping and TCP both ways. Every TAP
# made here is deleted again, whatever happened.

NET_TAP=kilntap0
NET_HOST_IP=172.16.0.1
NET_GUEST_IP=172.16.0.2
NET_MAC=06:00:ac:10:00:02
NET_PORT=5201

# The host's side of the net test: listen on HOST:PORT, take the guest's stream to its end and
# answer "crc=H bytes=N back=M backcrc=H2" and M random bytes, then ping the guest and tell it
# how that went on PORT+1. argv: HOST PORT BACK_MIB GUEST.
NET_HOST_PY='
import os, socket, subprocess, sys, time, zlib
host, port, back_mib, guest = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, port))
ls.listen(1)
ls.settimeout(240)
print("listening", flush=True)
c, _ = ls.accept()
c.settimeout(120)
crc = n = 0
t0 = time.monotonic()
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    crc = zlib.crc32(b, crc)
    n += len(b)
secs = time.monotonic() - t0
data = os.urandom(back_mib << 20)
c.sendall(b"crc=%08x bytes=%d back=%d backcrc=%08x\n" % (crc, n, len(data), zlib.crc32(data)))
c.sendall(data)
c.close()
print("host-rx crc=%08x bytes=%d secs=%.1f" % (crc, n, secs), flush=True)
r = subprocess.run(["/bin/busybox", "ping", "-c", "3", "-W", "3", "-w", "30", guest],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
word = "ping=ok" if r.returncode == 0 else "ping=fail"
print("host-ping %s: %s" % (word, r.stdout.decode(errors="replace").strip().splitlines()[-1:]),
      flush=True)
for i in range(60):
    try:
        s = socket.create_connection((guest, port + 1), timeout=5)
        s.sendall(word.encode() + b"\n")
        s.close()
        print("told the guest", flush=True)
        break
    except OSError:
        time.sleep(0.5)
'

# net_tun_ready: /dev/net/tun works (tests/e2e/in-l1 loads L1's tun module).
net_tun_ready() {
	for _ in $(seq 1 50); do
		[ -c /dev/net/tun ] && return 0
		sleep 0.1
	done
	return 1
}

# net_tap_up: a fresh TAP $NET_TAP with $NET_HOST_IP/30 on the host side, up.
net_tap_up() {
	ip link del "$NET_TAP" 2>/dev/null
	ip tuntap add dev "$NET_TAP" mode tap &&
		ip addr add "$NET_HOST_IP/30" dev "$NET_TAP" &&
		ip link set "$NET_TAP" up
}

net_tap_down() {
	ip link del "$NET_TAP" 2>/dev/null || true
}

# net_prepare NAME: the TAP is up, or NAME failed (and nothing is left behind).
net_prepare() {
	if ! net_tun_ready; then
		fail "$1" "no /dev/net/tun (is the tun module loaded?)"
		return 1
	fi
	if ! net_tap_up >"$E2E_OUT/$1-tap.log" 2>&1; then
		fail "$1" "cannot create TAP $NET_TAP" "$E2E_OUT/$1-tap.log"
		net_tap_down
		return 1
	fi
}

# net_config NAME ARGS [MAC]: a guest on $NET_TAP (with guest_mac MAC when given).
net_config() {
	local mac=${3:+, \"guest_mac\": \"$3\"}
	guest_config "$1" "$GUEST/vmlinux" 1 256 None "$2" \
		"\"network-interfaces\": [ { \"iface_id\": \"eth0\", \"host_dev_name\": \"$NET_TAP\"$mac } ]"
}

# net_traffic NAME MIB [MAC [offload]]: the agent's net test with MIB MiB each way; the host
# checks what it received against the CRC the guest reports. With offload, the guest must have
# negotiated TSO both ways and mergeable buffers, and seen frames bigger than the MTU both ways.
net_traffic() {
	local name=$1 mib=$2 mac=${3:-} offload=${4:-} hostlog py_pid cfg args want got res counts
	net_prepare "$name" || return
	hostlog=$E2E_OUT/$name-host.log
	timeout -k 5 280 /usr/bin/python3 -c "$NET_HOST_PY" "$NET_HOST_IP" "$NET_PORT" "$mib" \
		"$NET_GUEST_IP" >"$hostlog" 2>&1 &
	py_pid=$!
	for _ in $(seq 1 100); do
		grep -q listening "$hostlog" 2>/dev/null && break
		kill -0 "$py_pid" 2>/dev/null || break
		sleep 0.1
	done
	args="kiln.test=net kiln.net_ip=$NET_GUEST_IP/30 kiln.net_peer=$NET_HOST_IP"
	args+=" kiln.net_port=$NET_PORT kiln.net_mib=$mib${mac:+ kiln.net_mac=$mac}"
	cfg=$(net_config "$name" "$args" "$mac")
	run_kiln "$name" 300 --no-api --config-file "$cfg"
	kill "$py_pid" 2>/dev/null
	wait "$py_pid" 2>/dev/null
	net_tap_down
	cat "$hostlog" >>"$log"
	if [ "$rc" -eq 124 ]; then
		fail "$name" "kiln timed out" "$log"
		return
	elif ! grep -q 'KILN-RESULT net PASS' "$log"; then
		fail "$name" "no passing KILN-RESULT line (kiln exit $rc)" "$log"
		return
	elif [ "$rc" -ne 0 ]; then
		fail "$name" "guest passed but kiln exited $rc" "$log"
		return
	fi
	res=$(grep -o 'KILN-RESULT net PASS.*' "$log" | tr -d '\r' | head -1)
	want=$(grep -o 'tx_crc=[0-9a-f]*' <<<"$res" | cut -d= -f2)
	got=$(grep -o 'host-rx crc=[0-9a-f]*' "$hostlog" | head -1 | cut -d= -f2)
	# kiln's device counters, logged when it goes away: a healthy run drops nothing.
	counts=$(grep -o 'network interface eth0: rx .*' "$log" | tr -d '\r' | head -1)
	if [ -z "$want" ] || [ "$want" != "$got" ]; then
		fail "$name" "the host received crc ${got:-nothing}, the guest sent ${want:-?}" "$log"
	elif ! grep -q 'host-ping ping=ok' "$hostlog"; then
		fail "$name" "the host's pings to the guest failed" "$log"
	elif [ -z "$mac" ] && [[ ,$(grep -o 'features=[a-z0-9_,]*' <<<"$res" | cut -d= -f2), == *,mac,* ]]; then
		fail "$name" "no guest_mac configured, yet the device offered one: ${res#KILN-RESULT net PASS }" "$log"
	elif [ -n "$offload" ] && ! net_offloads_seen "$res"; then
		fail "$name" "no TSO both ways: ${res#KILN-RESULT net PASS }" "$log"
	elif [ -z "$counts" ] || grep -o '[0-9]* dropped' <<<"$counts" | grep -qv '^0 dropped'; then
		fail "$name" "kiln's counters: ${counts:-none logged}" "$log"
	else
		pass "$name" "${secs}s, $mib MiB each way, crc $got; ${res#*mac=}; kiln ${counts#*: }"
	fi
}

# net_offloads_seen RESULT: TSO and mergeable buffers negotiated, frames above 1514 bytes both ways.
net_offloads_seen() {
	local f tx rx bit
	f=$(grep -o 'features=[a-z0-9_,]*' <<<"$1")
	tx=$(grep -o 'frame_avg tx=[0-9]*' <<<"$1" | cut -d= -f2)
	rx=$(grep -o ' rx=[0-9]*$' <<<"$1" | cut -d= -f2)
	for bit in csum gcsum gtso4 gtso6 htso4 htso6 mrg; do
		[[ ,${f#features=}, == *,$bit,* ]] || return 1
	done
	[ "${tx:-0}" -gt 1514 ] && [ "${rx:-0}" -gt 1514 ]
}

# The guest with the configured MAC: ping both ways, 32 MiB over TCP each way with TSO and
# checksum offload on both sides and mergeable receive buffers.
kvm_net_tap() { net_traffic net-tap 32 "$NET_MAC" offload; }

# No guest_mac: the device offers no MAC and the guest picks its own; traffic still flows.
kvm_net_tap_random_mac() { net_traffic net-tap-random-mac 1; }

# A TAP another process holds (not multi-queue: one user at a time): kiln fails with one clear
# line naming it, and no guest runs.
kvm_net_tap_busy() {
	local name=net-tap-busy holder hlog cfg
	net_prepare "$name" || return
	hlog=$E2E_OUT/$name-holder.log
	# TUNSETIFF is _IOW('T', 202, int); IFF_TAP | IFF_NO_PI.
	timeout -k 5 120 /usr/bin/python3 -c '
import fcntl, struct, sys, time
f = open("/dev/net/tun", "r+b", buffering=0)
fcntl.ioctl(f, 0x400454ca, struct.pack("16sH", sys.argv[1].encode(), 0x0002 | 0x1000))
print("held", flush=True)
time.sleep(110)' "$NET_TAP" >"$hlog" 2>&1 &
	holder=$!
	for _ in $(seq 1 100); do
		grep -q held "$hlog" 2>/dev/null && break
		kill -0 "$holder" 2>/dev/null || break
		sleep 0.1
	done
	cfg=$(net_config "$name" "kiln.test=boot" "$NET_MAC")
	if grep -q held "$hlog"; then
		run_kiln "$name" 60 --no-api --config-file "$cfg"
	else
		rc=-1 log=$hlog
	fi
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	net_tap_down
	if [ "$rc" = -1 ]; then
		fail "$name" "could not hold $NET_TAP for the test" "$hlog"
	elif [ "$rc" -ne 0 ] && grep -q "TAP device $NET_TAP: Device or resource busy" "$log" &&
		! grep -q 'kiln-agent' "$log"; then
		pass "$name" "exit $rc: $(grep -m1 'TAP device' "$log" | tr -d '\r')"
	else
		fail "$name" "expected a busy-TAP error and no guest (exit $rc)" "$log"
	fi
}
