#!/usr/bin/env python3
"""A flood of requests against a running kiln's API socket: it must keep serving, correctly.

Usage: api_flood.py SOCKET [--seconds S] [--conns N] [--idle-max N] [--bound S] [--seed N]

For --seconds, --conns connections at once (more than kiln's API_SERVER_MAX_CONNECTIONS, 64: the
rest wait in the listen queue) send a mix: GET /, /vm/config, /machine-config, /version, unknown
routes, bad JSON, bodies the schema refuses, PUTs of pre-boot settings, bodies over the size
limit, pipelined requests, requests sent in pieces, requests cut off and closed, random bytes,
and connections that send nothing (at most --idle-max of those at once, so that the slots
held by silent clients stay below kiln's limit). Each answer must be
the right one for its request. Meanwhile a well-behaved client asks GET /, GET /machine-config
and GET /vm/config in turn, each on a fresh connection: every answer must be right and come
within --bound seconds. Then more connections than kiln serves at once sit idle: the
well-behaved client must get through once kiln's idle timeout (10 s) frees their slots. Last,
the API must answer promptly again.

Prints "PASS api-flood-NAME (DETAIL)" or "FAIL api-flood-NAME: REASON" per check, like
api_abuse.py (whose HTTP helpers it uses), and exits 1 if any failed.
"""

import argparse
import errno
import json
import os
import random
import selectors
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ left in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_abuse import Malformed, http_request, parse_response  # noqa: E402

PREFIX = "api-flood-"
MAX_CONNECTIONS = 64  # vmm/api_server.h: API_SERVER_MAX_CONNECTIONS
IDLE_TIMEOUT_S = 10   # vmm/api_server.h: API_SERVER_IDLE_TIMEOUT_S
MAX_PAYLOAD = 51200   # --http-api-max-payload-size's default
NO_ANSWER_S = 20      # a complete request left unanswered this long is a failure


def is_json(r, key):
    try:
        return key in json.loads(r.body.decode())
    except (ValueError, UnicodeDecodeError, TypeError):
        return False


EXPECT_STATE = ["Running"]  # --state


def running(r):
    try:
        return json.loads(r.body.decode()).get("state") == EXPECT_STATE[0]
    except (ValueError, UnicodeDecodeError, AttributeError):
        return False


def fault(r):
    """A 4xx answer with a fault_message, as kiln gives every refusal it can put in words."""
    return 400 <= r.status < 500 and (not r.body or is_json(r, "fault_message"))


# (name, request bytes, judge of the answer)
GOOD = [
    ("get-root", http_request(b"GET", b"/"), lambda r: r.status == 200 and running(r)),
    ("get-vm-config", http_request(b"GET", b"/vm/config"),
     lambda r: r.status == 200 and is_json(r, "machine-config")),
    ("get-machine-config", http_request(b"GET", b"/machine-config"),
     lambda r: r.status == 200 and is_json(r, "vcpu_count")),
    ("get-version", http_request(b"GET", b"/version"),
     lambda r: r.status == 200 and is_json(r, "firecracker_version")),
]
BAD = [
    ("unknown-route", http_request(b"GET", b"/no/such/route"), fault),
    ("unknown-put", http_request(b"PUT", b"/bogus", b"{}"), fault),
    ("bad-json", http_request(b"PUT", b"/machine-config", b'{"vcpu_count": 1,'), fault),
    ("not-json", http_request(b"PUT", b"/logger", b"\xff\xfe not json"), fault),
    ("schema", http_request(b"PUT", b"/logger", b'{"level": 5, "extra": true}'), fault),
    ("bad-state", http_request(b"PATCH", b"/vm", b'{"state": "Bogus"}'), fault),
    ("bad-action", http_request(b"PUT", b"/actions", b'{"action_type": "Nope"}'), fault),
    ("pre-boot-put", http_request(b"PUT", b"/machine-config",
                                  b'{"vcpu_count": 1, "mem_size_mib": 128}'), fault),
    ("no-body", http_request(b"PUT", b"/actions"), fault),
]


class Stats:
    def __init__(self):
        self.opened = self.refused = self.requests = self.answered = 0
        self.idle = self.idle_closed_by_kiln = self.cut = self.garbage = self.oversized = 0
        self.by_kind = {}
        self.errors = []

    def error(self, what):
        if len(self.errors) < 1000:
            self.errors.append(what)


class Conn:
    """One attacking connection: bytes to send (in pieces, maybe), answers to expect."""

    def __init__(self, sock, kind, data, judges, hold=0.0, pieces=1, cut=False):
        self.sock, self.kind, self.data, self.judges = sock, kind, data, judges
        self.off, self.buf, self.pos = 0, bytearray(), 0
        self.start = time.monotonic()
        self.hold_until = self.start + hold  # idle: close by then (or kiln does)
        self.piece = max(1, len(data) // pieces) if data else 0
        self.next_send = 0.0  # between pieces: the time to send the next one
        self.sent_at = None   # when the last byte went
        self.cut = cut  # close as soon as everything is sent
        self.answers = 0
        self.oversized_answered = False


class Flood:
    def __init__(self, path, rnd, conns, idle_max, stats):
        self.path, self.rnd, self.conns, self.idle_max, self.st = path, rnd, conns, idle_max, stats
        self.sel = selectors.DefaultSelector()
        self.live = {}
        self.idle = 0
        self.backoff_until = 0.0

    def pick(self):
        """A kind of attack, its bytes and what must come back."""
        r = self.rnd.random()
        if r < 0.30:
            reqs = [self.rnd.choice(GOOD) for _ in range(self.rnd.choice((1, 1, 1, 2, 3)))]
            return "good", b"".join(q[1] for q in reqs), [q[2] for q in reqs], {}
        if r < 0.55:
            q = self.rnd.choice(BAD)
            return "bad", q[1], [q[2]], {}
        if r < 0.62:
            q = self.rnd.choice(GOOD + BAD)
            return "pieces", q[1], [q[2]], {"pieces": self.rnd.randint(2, 4)}
        if r < 0.70:
            body = b"{" + b" " * (MAX_PAYLOAD + self.rnd.randint(1, 20000)) + b"}"
            return "oversized", http_request(b"PUT", b"/machine-config", body), [], {}
        if r < 0.80:
            q = self.rnd.choice(GOOD + BAD)[1]
            return "cut", q[:self.rnd.randint(1, len(q) - 1)], [], {"cut": True}
        if r < 0.88:
            data = bytes(self.rnd.getrandbits(8) for _ in range(self.rnd.choice((8, 64, 512))))
            return "garbage", data, [], {}
        if self.idle < self.idle_max:
            return "idle", b"", [], {"hold": self.rnd.uniform(1.0, IDLE_TIMEOUT_S + 3)}
        q = self.rnd.choice(GOOD)
        return "good", q[1], [q[2]], {}

    def open_one(self):
        kind, data, judges, opts = self.pick()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(self.path)
        if err:
            s.close()
            if err in (errno.EAGAIN, errno.EWOULDBLOCK):
                self.st.refused += 1  # the listen queue is full: try again shortly
                self.backoff_until = time.monotonic() + 0.02
                return
            raise OSError(err, os.strerror(err))
        c = Conn(s, kind, data, judges, **opts)
        self.st.opened += 1
        self.st.by_kind[kind] = self.st.by_kind.get(kind, 0) + 1
        self.st.requests += len(judges)
        if kind == "idle":
            self.idle += 1
        self.live[s.fileno()] = c
        self.sel.register(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if data else 0), c)

    def close(self, c, why=None):
        if why:
            self.st.error("%s: %s" % (c.kind, why))
        if c.kind == "idle":
            self.idle -= 1
        self.sel.unregister(c.sock)
        del self.live[c.sock.fileno()]
        c.sock.close()

    def on_write(self, c, now):
        end = min(len(c.data), c.off + c.piece) if c.piece else len(c.data)
        try:
            c.off += c.sock.send(c.data[c.off:end])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            # kiln closed on us: fine after an oversized body or garbage, judged on read
            c.off = len(c.data)
        if c.off >= len(c.data):
            if c.cut:
                self.st.cut += 1
                self.close(c)
                return
            c.sent_at = now
            self.sel.modify(c.sock, selectors.EVENT_READ, c)
        elif c.piece < len(c.data):
            c.next_send = now + 0.2  # the next piece later: not writable till then
            self.sel.modify(c.sock, selectors.EVENT_READ, c)

    def on_read(self, c):
        try:
            chunk = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if chunk:
            c.buf += chunk
        got = False
        while c.pos < len(c.buf):
            try:
                r = parse_response(c.buf[c.pos:], at_eof=not chunk)
            except Malformed as e:
                self.close(c, "malformed answer: %s" % e)
                return
            if not r:
                break
            c.pos += r[1]
            resp = r[0]
            got = True
            self.st.answered += 1
            if c.kind == "oversized":
                if resp.status != 400:
                    self.st.error("oversized body answered %d" % resp.status)
                c.oversized_answered = True
                self.st.oversized += 1
            elif c.kind == "garbage":
                if not 400 <= resp.status < 600:
                    self.st.error("random bytes answered %d" % resp.status)
            elif c.answers < len(c.judges):
                if not c.judges[c.answers](resp):
                    self.st.error("%s: wrong answer %d %r" % (c.kind, resp.status, resp.body[:120]))
                c.answers += 1
            else:
                self.st.error("%s: an answer nobody asked for: %d" % (c.kind, resp.status))
        if (c.judges and c.answers == len(c.judges)) or (got and not c.judges):
            self.close(c)
        elif not chunk:
            if c.kind == "idle":
                self.st.idle_closed_by_kiln += 1
            if c.kind == "garbage":
                self.st.garbage += 1
            if c.kind == "oversized":
                # kiln answers 400 before it closes: queued data is read before the close
                self.close(c, None if c.oversized_answered else "closed without a 400")
            else:
                gone = c.off < len(c.data) or c.kind in ("idle", "garbage")
                self.close(c, None if gone else "closed after %d of %d answers" %
                           (c.answers, len(c.judges)))

    def run(self, seconds):
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if now >= end:
                break
            while len(self.live) < self.conns and now >= self.backoff_until:
                self.open_one()
            for key, ev in self.sel.select(timeout=0.02):
                c = key.data
                if c.sock.fileno() not in self.live:
                    continue
                if ev & selectors.EVENT_READ:
                    self.on_read(c)
                if c.sock.fileno() in self.live and ev & selectors.EVENT_WRITE:
                    self.on_write(c, now)
            now = time.monotonic()
            for c in list(self.live.values()):
                if c.kind == "idle":
                    if now >= c.hold_until:
                        self.st.idle += 1
                        self.close(c)
                elif c.next_send and now >= c.next_send:
                    c.next_send = 0.0
                    self.sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
                elif c.kind == "garbage" and c.sent_at is not None and now - c.sent_at > 1.0:
                    # bytes with no line end keep kiln waiting for more: no idle slot-holder
                    # beyond --idle-max, so hang up
                    self.st.garbage += 1
                    self.close(c)
                elif c.sent_at is not None and now - c.sent_at > NO_ANSWER_S:
                    self.close(c, "neither answered nor closed in %ds" % NO_ANSWER_S)
        for c in list(self.live.values()):
            self.close(c)


def good_request(path, data, timeout):
    """(response or None, seconds, why) for data on a fresh connection within timeout; a
    full listen queue (EAGAIN) is waited out, as a patient client would."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            s.connect(path)
            break
        except (BlockingIOError, socket.timeout) as e:
            s.close()
            if time.monotonic() >= deadline:
                return None, time.monotonic() - t0, "connect: %s" % e
            time.sleep(0.02)
        except OSError as e:
            s.close()
            return None, time.monotonic() - t0, "connect: %s" % e
    buf = bytearray()
    try:
        s.sendall(data)
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                r = parse_response(buf)
            except Malformed as e:
                return None, time.monotonic() - t0, "malformed: %s" % e
            if r:
                return r[0], time.monotonic() - t0, ""
            chunk = s.recv(65536)
            if not chunk:
                return None, time.monotonic() - t0, "closed without an answer"
            buf += chunk
    except (socket.timeout, OSError) as e:
        return None, time.monotonic() - t0, "%s after %d bytes" % (e or "timeout", len(buf))
    finally:
        s.close()


class GoodClient(threading.Thread):
    """Asks the good requests in turn until stopped; records every latency and failure."""

    def __init__(self, path, bound):
        super().__init__(daemon=True)
        self.path, self.bound = path, bound
        self.stop = threading.Event()
        self.lat, self.fails = [], []

    def run(self):
        i = 0
        while not self.stop.is_set():
            name, data, judge = GOOD[i % 3]
            i += 1
            r, secs, why = good_request(self.path, data, self.bound)
            self.lat.append(secs)
            if r is None:
                self.fails.append("%s: %s (%.2fs)" % (name, why, secs))
            elif not judge(r):
                self.fails.append("%s: wrong answer %d %r" % (name, r.status, r.body[:100]))
            self.stop.wait(0.2)


def emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("socket")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--conns", type=int, default=MAX_CONNECTIONS + 32)
    ap.add_argument("--idle-max", type=int, default=24)
    ap.add_argument("--bound", type=float, default=5.0,
                    help="seconds within which each well-behaved request must be answered")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--state", default="Running", help="the state GET / must report")
    a = ap.parse_args()
    EXPECT_STATE[0] = a.state
    failed = 0

    r, secs, why = good_request(a.socket, GOOD[0][1], a.bound)
    if r is None or not GOOD[0][2](r):
        emit("FAIL %sprecondition: GET / %s" % (PREFIX, why or "%d %r" % (r.status, r.body)))
        return 1

    st = Stats()
    good = GoodClient(a.socket, a.bound)
    good.start()
    t0 = time.monotonic()
    try:
        Flood(a.socket, random.Random(a.seed), a.conns, a.idle_max, st).run(a.seconds)
    except OSError as e:
        st.error("the flood itself: %s" % e)
    flood_secs = time.monotonic() - t0
    good.stop.set()
    good.join(a.bound + 5)
    kinds = ", ".join("%s %d" % kv for kv in sorted(st.by_kind.items()))
    detail = ("seed %d, %.0fs: %d connections (%s), %d requests, %d answers, %d refused "
              "(listen queue full), %d idle closed by kiln, %d cut off, %d oversized refused"
              % (a.seed, flood_secs, st.opened, kinds, st.requests, st.answered, st.refused,
                 st.idle_closed_by_kiln, st.cut, st.oversized))
    if st.errors:
        failed += 1
        emit("FAIL %sanswers: %d wrong: %s; %s" % (PREFIX, len(st.errors),
                                                  "; ".join(st.errors[:4]), detail))
    elif st.answered < 100:
        failed += 1
        emit("FAIL %sanswers: only %d answers; %s" % (PREFIX, st.answered, detail))
    else:
        emit("PASS %sanswers (%s)" % (PREFIX, detail))
    gdetail = "%d requests, p50 %.3fs, p95 %.3fs, max %.3fs (bound %.1fs)" % (
        len(good.lat), pct(good.lat, 0.5), pct(good.lat, 0.95), max(good.lat or [0]), a.bound)
    if good.fails or len(good.lat) < 5:
        failed += 1
        emit("FAIL %swell-behaved-client: %d failed: %s; %s" % (
            PREFIX, len(good.fails), "; ".join(good.fails[:3]), gdetail))
    else:
        emit("PASS %swell-behaved-client (%s)" % (PREFIX, gdetail))

    # Every slot held by a connection that says nothing: kiln's idle timeout must free them.
    idle = []
    for _ in range(MAX_CONNECTIONS + 16):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        if s.connect_ex(a.socket):
            s.close()
            break
        idle.append(s)
    time.sleep(0.5)
    limit = IDLE_TIMEOUT_S + 10
    r, secs, why = good_request(a.socket, GOOD[0][1], limit)
    dropped = 0
    for s in idle:
        try:
            dropped += s.recv(1) == b""
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            dropped += 1
        s.close()
    if r is None or not GOOD[0][2](r):
        failed += 1
        emit("FAIL %sidle-slots: with %d idle connections, GET / %s" % (
            PREFIX, len(idle), why or "answered %d" % r.status))
    else:
        emit("PASS %sidle-slots (%d idle connections took every slot; GET / answered after "
             "%.1fs, once kiln's %ds idle timeout dropped %d of them)" % (
                 PREFIX, len(idle), secs, IDLE_TIMEOUT_S, dropped))

    lat = []
    for i in range(10):
        name, data, judge = GOOD[i % 3]
        r, secs, why = good_request(a.socket, data, 2.0)
        if r is None or not judge(r):
            failed += 1
            emit("FAIL %safter: %s: %s" % (PREFIX, name, why or "answered %d" % r.status))
            break
        lat.append(secs)
    else:
        emit("PASS %safter (10 requests, worst %.3fs)" % (PREFIX, max(lat)))
    return 1 if failed else 0


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    os._exit(rc)
