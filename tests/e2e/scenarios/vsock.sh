# virtio-vsock scenarios: Firecracker's hybrid unix socket both ways with a real guest, and a
# uds_path that already exists. The sockets live in ${TMPDIR:-/tmp}: the L1 harness's 9p share
# cannot hold them.

# The host's programs for kvm_vsock_echo, in one python process:
# - an echo server on UDS_<HPORT>, which the guest reaches by connecting to CID 2 port HPORT;
# - a client of the hybrid socket UDS that retries "CONNECT GPORT" until the guest's listener
#   answers "OK <port>", checks that a CONNECT to GPORT+1 (no listener) and a malformed line
#   are closed without an OK, then streams BYTES random bytes through the guest's echo while
#   reading it back.
# Prints "HOST key=value ..." with the CRC-32s, or "HOST-ERROR ..." lines; exits 1 on errors.
# usage: python3 -c "$vsock_host_py" UDS GPORT HPORT BYTES SECONDS READY_FILE
vsock_host_py='
import os, socket, sys, threading, time, zlib

uds, gport, hport, nbytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
deadline = time.monotonic() + float(sys.argv[5])
res, errors = {}, []

srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind("%s_%d" % (uds, hport))
srv.listen(4)
open(sys.argv[6], "w").close()

def left():
    return max(0.1, deadline - time.monotonic())

def g2h():
    try:
        srv.settimeout(left())
        c, _ = srv.accept()
        c.settimeout(120)
        n, crc, t0 = 0, 0, time.monotonic()
        while True:
            b = c.recv(65536)
            if not b:
                break
            n += len(b)
            crc = zlib.crc32(b, crc)
            c.sendall(b)
        c.close()
        res["g2h_bytes"], res["g2h_crc"] = n, "%08x" % crc
        res["g2h_MBps"] = "%.2f" % (2 * n / 1e6 / max(1e-6, time.monotonic() - t0))
    except Exception as e:
        errors.append("g2h: %r" % e)

def hybrid(text):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(uds)
    s.sendall(text.encode())
    line = b""
    while not line.endswith(b"\n") and len(line) < 64:
        b = s.recv(1)
        if not b:
            break
        line += b
    return s, line

def h2g():
    s = None
    while s is None and time.monotonic() < deadline:
        try:
            s, line = hybrid("CONNECT %d\n" % gport)
            if not line.startswith(b"OK "):
                s.close()
                s = None
        except OSError:
            s = None
        if s is None:
            time.sleep(0.2)
    if s is None:
        errors.append("h2g: guest port %d never answered OK" % gport)
        return
    res["ok"] = line.decode().split()[1]
    for text, what in (("CONNECT %d\n" % (gport + 1), "refused"), ("CONNECT x\n", "malformed")):
        try:
            t0 = time.monotonic()
            c, reply = hybrid(text)
            c.close()
            if reply:
                errors.append("%s CONNECT answered %r" % (what, reply))
            else:
                res[what] = "closed-%.1fs" % (time.monotonic() - t0)
        except OSError as e:
            errors.append("%s CONNECT: %r" % (what, e))
    data = os.urandom(nbytes)
    s.settimeout(120)
    got = bytearray()
    def send():
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append("h2g send: %r" % e)
    try:
        t = threading.Thread(target=send)
        t0 = time.monotonic()
        t.start()
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        t.join()
        res["h2g_MBps"] = "%.2f" % (2 * len(got) / 1e6 / max(1e-6, time.monotonic() - t0))
        s.close()
    except Exception as e:
        errors.append("h2g: %r after %d bytes" % (e, len(got)))
        return
    res["h2g_bytes"], res["h2g_crc"] = len(got), "%08x" % zlib.crc32(got)
    if bytes(got) != data:
        errors.append("h2g: the echo differs from the %d bytes sent (crc %08x)" %
                      (nbytes, zlib.crc32(data)))

threads = [threading.Thread(target=g2h, daemon=True), threading.Thread(target=h2g, daemon=True)]
for t in threads:
    t.start()
for t in threads:
    t.join(left() + 5)
    if t.is_alive():
        errors.append("timed out")
for e in errors:
    print("HOST-ERROR", e)
print("HOST", " ".join("%s=%s" % kv for kv in sorted(res.items())))
sys.stdout.flush()
os._exit(1 if errors else 0)
'

# vsock_field TEXT KEY: the value of KEY=VALUE in TEXT.
vsock_field() {
	grep -o "$2=[^ ;)]*" <<<"$1" | head -1 | cut -d= -f2
}

# Guest to host and host to guest echo through kiln's hybrid socket, a few MiB each way (far
# more than the 256 KiB of credit either side gives), with CRC-32s compared on both sides.
kvm_vsock_echo() {
	local name=vsock-echo bytes=${KILN_VSOCK_BYTES:-$((4 << 20))} dir uds cfg hostout pypid pyrc=0 i
	local result host f want got bad=""
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-vsock.XXXXXX")
	uds=$dir/v.sock
	hostout=$E2E_OUT/$name.host
	timeout --kill-after=5 290 python3 -c "$vsock_host_py" "$uds" 5000 5001 "$bytes" 270 \
		"$dir/ready" >"$hostout" 2>&1 &
	pypid=$!
	for ((i = 0; i < 200; i++)); do [ -e "$dir/ready" ] && break; sleep 0.1; done
	if [ ! -e "$dir/ready" ]; then
		fail "$name" "the host's echo server did not start" "$hostout"
		kill "$pypid" 2>/dev/null
		wait "$pypid" 2>/dev/null
		rm -rf "$dir"
		return
	fi
	cfg=$(guest_config "$name" "$GUEST/vmlinux" 2 128 None \
		"kiln.test=vsock kiln.vsock_port=5000 kiln.vsock_host_port=5001 kiln.vsock_bytes=$bytes" \
		"\"vsock\": {\"guest_cid\": 3, \"uds_path\": \"$uds\"}")
	run_kiln "$name" 300 --no-api --config-file "$cfg"
	# The guest is done, and so should the host's side be, or soon.
	for ((i = 0; i < 150; i++)); do kill -0 "$pypid" 2>/dev/null || break; sleep 0.1; done
	kill "$pypid" 2>/dev/null
	wait "$pypid" || pyrc=$?
	result=$(grep -o 'KILN-RESULT vsock.*' "$log" | tr -d '\r' | head -1)
	host=$(grep '^HOST' "$hostout" | tr '\n' ' ')
	if [ -e "$uds" ]; then
		bad="kiln left $uds behind"
	fi
	rm -rf "$dir"
	if [ "$rc" -eq 124 ]; then
		fail "$name" "kiln timed out; host: $host" "$log"
	elif [ "$rc" -ne 0 ] || [[ $result != "KILN-RESULT vsock PASS"* ]]; then
		fail "$name" "no passing KILN-RESULT line (kiln exit $rc); host: $host" "$log"
	elif [ "$pyrc" -ne 0 ]; then
		fail "$name" "the host side failed (exit $pyrc): $host" "$hostout"
	elif [ -n "$bad" ]; then
		fail "$name" "$bad" "$log"
	else
		for f in g2h_bytes g2h_crc h2g_bytes h2g_crc; do
			want=$(vsock_field "$result" "$f")
			got=$(vsock_field "$host" "$f")
			if [ -z "$want" ] || [ "$want" != "$got" ]; then
				bad+="$f: guest ${want:-?} host ${got:-?}; "
			fi
		done
		if [ "$(vsock_field "$host" h2g_bytes)" != "$bytes" ]; then
			bad+="h2g moved $(vsock_field "$host" h2g_bytes) of $bytes bytes; "
		fi
		if [ -n "$bad" ]; then
			fail "$name" "checksums differ: $bad" "$log"
		else
			f="crc32 g2h $(vsock_field "$host" g2h_crc) h2g $(vsock_field "$host" h2g_crc)"
			f+=", MB/s g2h $(vsock_field "$host" g2h_MBps) h2g $(vsock_field "$host" h2g_MBps)"
			f+=", refused: host $(vsock_field "$host" refused) guest $(vsock_field "$result" refused)"
			f+=", malformed CONNECT $(vsock_field "$host" malformed)"
			pass "$name" "${secs}s, $((bytes >> 20)) MiB each way, $f"
		fi
	fi
}

# A uds_path that exists is refused, as Firecracker does: one clear error, no guest, and the
# file is left alone.
kvm_vsock_uds_exists() {
	local name=vsock-uds-exists dir cfg
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-vsock.XXXXXX")
	echo keep >"$dir/v.sock"
	cfg=$(guest_config "$name" "$GUEST/vmlinux" 1 128 None "kiln.test=boot" \
		"\"vsock\": {\"guest_cid\": 3, \"uds_path\": \"$dir/v.sock\"}")
	run_kiln "$name" 60 --no-api --config-file "$cfg"
	if [ "$rc" -ne 0 ] && grep -q "vsock.*$dir/v.sock.*in use" "$log" &&
		! grep -q 'kiln-agent' "$log" && [ "$(cat "$dir/v.sock")" = keep ]; then
		pass "$name" "exit $rc: $(grep -m1 'vsock' "$log" | tr -d '\r')"
	else
		fail "$name" "expected a clear error about the existing uds_path (exit $rc)" "$log"
	fi
	rm -rf "$dir"
}
