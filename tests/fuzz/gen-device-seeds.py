#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_virtio_net and fuzz_virtio_vsock (tests/fuzz/corpus/virtio_net,
tests/fuzz/corpus/virtio_vsock): short, meaningful programs in each target's operation encoding
(see run_op in fuzz_virtio_net.c and fuzz_virtio_vsock.c). Run from anywhere; the files are
committed, so rerun it only after changing an encoding."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def op(nr, mod, set_bits=0, clear_bits=0):
    """The smallest opcode byte selecting operation nr (op % mod) with the flag bits asked."""
    for b in range(256):
        if b % mod == nr and b & set_bits == set_bits and not b & clear_bits:
            return bytes([b])
    raise ValueError((nr, mod, set_bits, clear_bits))


def sizes(lo_log, hi_log):
    """A byte s with s % 9 == lo_log and (s >> 4) % 9 == hi_log (two queues' sizes)."""
    for s in range(256):
        if s % 9 == lo_log and (s >> 4) % 9 == hi_log:
            return bytes([s])
    raise ValueError((lo_log, hi_log))


def u16(v):
    return struct.pack('<H', v)


def u24(v):
    return struct.pack('<I', v)[:3]


def u32(v):
    return struct.pack('<I', v)


# ---- virtio-net: op % 14 ----

def n(nr, set_bits=0, clear_bits=0):
    return op(nr, 14, set_bits, clear_bits)


def net_start(features, rx_log=8, tx_log=8):
    return n(0) + bytes([features]) + sizes(rx_log, tx_log)


def net_rx(chains, notify=True):
    """chains: lists of buffer lengths (multiples of 32 up to 4064); all writable."""
    b = n(1, 0x40 if notify else 0, 0 if notify else 0x40) + bytes([len(chains) - 1])
    for bufs in chains:
        b += bytes([len(bufs) - 1])
        for length in bufs:
            b += bytes([length // 32]) + u16(0)
    return b


def net_tx(frame_len, hdr=bytes(12), at=0, pieces=1, writable=False):
    k = (pieces - 1) | (0x40 if writable else 0)
    if frame_len > 12 + 14 + 255 * 8:
        return n(2) + bytes([k | 0x80]) + u24(frame_len) + u16(at) + hdr
    return n(2) + bytes([k]) + bytes([(frame_len - 26) // 8]) + u16(at) + hdr


def net_host(length, hdr=bytes(12), pump=True):
    k = 0x40 if pump else 0
    if length > 255 * 4:
        return n(6) + bytes([k | 0x80]) + u24(length) + hdr
    return n(6) + bytes([k]) + bytes([length // 4]) + hdr


def net_fault(tx, what, count, short_len=0):
    """what: 1 EAGAIN, 2 EINTR, 3 EIO, 4 EFAULT, 5 short."""
    k = (0x80 if tx else 0) | ((count - 1) << 3)
    for b in range(256):
        if b & 0x80 == k & 0x80 and (b >> 3) % 4 == count - 1 and 1 + b % 5 == what:
            return n(9) + bytes([b]) + u16(short_len)
    raise ValueError((tx, what, count))


PUMP = n(7)
DRAIN = n(8)
RESET = n(13)
MRG, GUEST_CSUM, CSUM, EVENT_IDX = 1, 2, 4, 8
CSUM_HDR = bytes([1, 0, 0, 0, 0, 0, 14, 0, 16, 0, 0, 0])  # NEEDS_CSUM, csum_start 14 offset 16

NET = {
    'rx-one-frame': b'\x00' + net_start(0) + net_rx([[2048]]) + net_host(200),
    'rx-mac-csum-flags': b'\x01' + net_start(GUEST_CSUM | 16) + net_rx([[2048], [2048]]) +
    net_host(300, bytes([2]) + bytes(11)) + n(12),
    'rx-flags-cleared': b'\x00' + net_start(0) + net_rx([[1024]]) + net_host(100, bytes([3]) + bytes(11)),
    'rx-mergeable': b'\x00' + net_start(MRG) + net_rx([[1024]] * 8) + net_host(5000),
    'rx-mergeable-direct': b'\x00' + net_start(MRG | GUEST_CSUM) +
    net_rx([[4064, 4064, 4064]] * 7) + net_host(60000) + net_host(100),
    'rx-frame-waits-for-buffers': b'\x00' + net_start(MRG) + net_host(3000) + net_rx([[1024]]) +
    net_rx([[1024], [1024]]) + PUMP,
    'rx-too-big': b'\x00' + net_start(0) + net_rx([[512]]) + net_host(70000) + net_host(64),
    'rx-runt': b'\x00' + net_start(0) + net_rx([[512]]) + net_host(8) + net_host(0),
    'rx-fault-efault': b'\x00' + net_start(MRG) + net_rx([[2048]] * 4) + net_fault(False, 4, 1) +
    net_host(400),
    'rx-fault-eintr-short': b'\x00' + net_start(0) + net_rx([[2048]] * 2) +
    net_fault(False, 2, 3) + net_host(400) + net_fault(False, 5, 1, 6) + net_host(400),
    'tx-one-frame': b'\x00' + net_start(CSUM) + net_tx(60, CSUM_HDR) + DRAIN,
    'tx-split-frames': b'\x00' + net_start(CSUM | EVENT_IDX, 4, 4) + net_tx(1514, pieces=3) +
    net_tx(300, pieces=2, at=0x4000) + DRAIN,
    'tx-runt-and-writable': b'\x00' + net_start(0) + net_tx(26) + net_tx(100, writable=True) +
    DRAIN,
    'tx-gso-large': b'\x00' + net_start(CSUM) + net_tx(65562, bytes([1, 1, 54, 0, 0x5c, 5]) + bytes(6)) + DRAIN,
    'tx-faults': b'\x00' + net_start(0) + net_fault(True, 1, 1) + net_tx(100) +
    net_fault(True, 5, 1, 20) + net_tx(100) + net_fault(True, 2, 2) + net_tx(100) + DRAIN,
    'tx-queue-full': b'\x00' + net_start(0, 8, 5) + net_tx(1000) * 24 + DRAIN,
    'bad-descriptors': b'\x00' + net_start(0, 2, 2) + n(3, 0x80) + b'\x00' + u32(0xffffff00) +
    u24(64) + b'\x01' + b'\x00' + n(4, 0x80) + u16(0) + n(5) + b'\x01',
    'reset-with-held-chains': b'\x00' + net_start(MRG) + net_rx([[256]] * 4) + net_host(2000) +
    RESET + net_start(0) + net_rx([[2048]]) + net_host(100),
    'features-refused': b'\x00' + net_start(0xe0) + net_rx([[2048]]) + net_host(64),
}

# ---- virtio-vsock: op % 20 ----


def v(nr, set_bits=0, clear_bits=0):
    return op(nr, 20, set_bits, clear_bits)


def vs_start(event_idx=False, rx_log=6, tx_log=6):
    return v(0) + bytes([1 if event_idx else 0]) + sizes(rx_log, tx_log) + b'\x02'


def vs_rx(count, size=1000):
    """count buffers of 44 + size bytes (size < 1024)."""
    b = v(1, 0x20) + bytes([count - 1])
    for _ in range(count):
        b += b'\x00' + u16(size)
    return b


OPS = {'REQUEST': 0, 'RESPONSE': 1, 'RW': 2, 'SHUTDOWN': 4, 'RST': 5, 'CREDIT_UPDATE': 6,
       'CREDIT_REQUEST': 7}


def guest_port(p):
    assert 5000 <= p < 5004
    return bytes([p - 5000])


def host_port(p):
    if 1000 <= p < 1003:
        return bytes([p - 1000])
    if (1 << 30) <= p < (1 << 30) + 4:
        return bytes([0x40 | (p - (1 << 30))])
    return b'\xc0' + u32(p)


def vs_pkt(opname, src, dst, alloc_idx=3, flags=0, payload=0, at=0, pieces=1, lie=None,
           writable=False):
    """alloc_idx: buf_alloc 0, 100, 4096 or 1 MiB. lie: (kind, bytes) for a malformed header."""
    k = OPS[opname] | (alloc_idx << 3)
    w = ((pieces - 1) << 6) | ((flags & 3) << 1) | (0x04 if writable else 0)
    if lie:
        w |= 0x08 | (lie[0] << 4)
    b = v(3) + bytes([k, w]) + u16(at) + guest_port(src) + host_port(dst)
    if opname == 'RW':
        b += u16(payload)
    if lie:
        b += lie[1]
    return b


def vs_say_connect(sock, port):
    return v(7) + bytes([sock, (port - 5000) << 4])


def vs_say_raw(sock, data):
    return v(7) + bytes([sock, 2, len(data)]) + data


def vs_say_block(sock, kib):
    return v(7) + bytes([sock, 3, kib * 4 - 1])


CONNECT = v(6)
VPUMP = v(12)
HP0 = 1 << 30


def hear(sock, kib=4):
    return v(9) + bytes([sock, kib * 4 - 1])


def close(sock, how=2):
    return v(10) + bytes([sock, how])


def accept(listener):
    return v(11) + bytes([listener])


VSOCK = {
    'host-connect-relay': vs_start() + vs_rx(8) + CONNECT + vs_say_connect(0, 5000) + VPUMP +
    vs_pkt('RESPONSE', 5000, HP0) + hear(0) + vs_say_raw(0, b'hello') + VPUMP +
    vs_pkt('RW', 5000, HP0, payload=5) + hear(0) + vs_rx(4),
    'host-connect-pipelined': vs_start() + vs_rx(4) + CONNECT +
    v(7) + bytes([0, 0x0c | (1 << 4)]) + VPUMP + vs_pkt('RESPONSE', 5001, HP0) + VPUMP,
    'host-connect-shutdown': vs_start(True) + vs_rx(8) + CONNECT + vs_say_connect(0, 5002) +
    VPUMP + vs_pkt('RESPONSE', 5002, HP0) + vs_say_raw(0, b'data') + close(0, 0) + VPUMP +
    vs_pkt('SHUTDOWN', 5002, HP0, flags=3) + VPUMP + vs_rx(4),
    'host-connect-guest-rst': vs_start() + vs_rx(4) + CONNECT + vs_say_connect(0, 5003) + VPUMP +
    vs_pkt('RST', 5003, HP0) + VPUMP,
    'host-bad-line': vs_start() + vs_rx(4) + CONNECT + vs_say_raw(0, b'CONNEKT 5\n') + VPUMP +
    CONNECT + vs_say_raw(1, b'CONNECT 4294967296\n') + VPUMP,
    'host-silent-times-out': vs_start() + vs_rx(4) + CONNECT + vs_say_raw(0, b'CONN') + VPUMP +
    v(14) + CONNECT + vs_say_connect(1, 5000) + VPUMP + v(14),
    'host-credit-small': vs_start() + vs_rx(16) + CONNECT + vs_say_connect(0, 5000) + VPUMP +
    vs_pkt('RESPONSE', 5000, HP0, alloc_idx=1) + vs_say_block(0, 8) + VPUMP + vs_rx(8) +
    vs_pkt('CREDIT_UPDATE', 5000, HP0, alloc_idx=2) + VPUMP + vs_rx(8),
    'guest-connect-listener': vs_start() + vs_rx(8) + vs_pkt('REQUEST', 5000, 1000) + accept(0) +
    vs_pkt('RW', 5000, 1000, payload=100, pieces=2) + hear(0) + vs_say_raw(0, b'pong') + VPUMP +
    vs_pkt('SHUTDOWN', 5000, 1000, flags=3) + VPUMP,
    'guest-connect-no-listener': vs_start() + vs_rx(4) + vs_pkt('REQUEST', 5001, 1002) +
    vs_pkt('RW', 5001, 1002, payload=10),
    'guest-flood-unheard': vs_start() + vs_rx(4) + vs_pkt('REQUEST', 5000, 1001) + accept(1) +
    vs_pkt('RW', 5000, 1001, payload=4000, pieces=3) * 40 + vs_pkt('CREDIT_REQUEST', 5000, 1001) +
    hear(0, 64) + VPUMP,
    'guest-bad-packets': vs_start() + vs_rx(8) +
    vs_pkt('RW', 5000, 1000, payload=10, lie=(0, u32(5000))) +
    vs_pkt('REQUEST', 5000, 1000, lie=(1, struct.pack('<Q', 7))) +
    vs_pkt('REQUEST', 5000, 1000, lie=(3, u16(2))) + vs_pkt('REQUEST', 5000, 1000, writable=True),
    'guest-rx-bad-buffers': vs_start() + v(1, 0x20) + b'\x01' + b'\x1f' + u16(100) + b'\x20' +
    u16(10) + vs_pkt('REQUEST', 5001, 1002),
    'transport-reset': vs_start() + vs_rx(2) + CONNECT + vs_say_connect(0, 5000) + VPUMP +
    v(18, 0x20) + b'\x00\x00' + u16(4) + VPUMP,
    'reset-with-connections': vs_start() + vs_rx(8) + CONNECT + vs_say_connect(0, 5000) + VPUMP +
    vs_pkt('RESPONSE', 5000, HP0) + vs_pkt('REQUEST', 5001, 1000) + v(19) + vs_start() +
    vs_rx(4) + VPUMP,
}


def write(name, seeds):
    d = os.path.join(HERE, 'corpus', name)
    os.makedirs(d, exist_ok=True)
    for k, data in seeds.items():
        with open(os.path.join(d, k), 'wb') as f:
            f.write(data)


write('virtio_net', NET)
write('virtio_vsock', VSOCK)
