#!/usr/bin/env python3
"""Walks every path and method of Firecracker's API spec against a running kiln.

usage: api_conformance.py SOCKET WORKDIR

The spec's facts come from vmm/api_spec_data.c (generated from Firecracker's swagger file by
scripts/gen-api-spec). For each route: a valid body built from the spec gets the spec's status,
or the explicit 400 kiln gives for a feature it lacks or a request at the wrong time (before or
after boot); then, for each route with a body, a missing required field, a wrong type, an
unknown enum value, an unknown field and a non-JSON body each get 400 with a fault_message
(naming the field where there is one). Then kiln's own rules for device bodies, beyond the
spec's (one root drive, unique TAP names and MACs, unicast MACs, the device count...), each a
400 naming the field. kiln has no VM here and must keep answering throughout.
Prints one PASS/FAIL line per check group and exits 1 on any failure.
"""
import ast
import json
import os
import re
import socket
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Routes kiln carries out before boot: the spec's success status is required.
PRE_BOOT_OK = {
    ("GET", "/"), ("GET", "/version"), ("GET", "/vm/config"), ("GET", "/machine-config"),
    ("PUT", "/machine-config"), ("PATCH", "/machine-config"), ("PUT", "/boot-source"),
    ("PUT", "/drives/{drive_id}"), ("PUT", "/network-interfaces/{iface_id}"), ("PUT", "/vsock"),
    ("PUT", "/entropy"), ("PUT", "/logger"), ("PUT", "/metrics"), ("PUT", "/serial"), ("PUT", "/actions"),
}
# Routes Firecracker only serves once the microVM runs: refused before boot.
POST_BOOT_ONLY = {("PATCH", "/vm"), ("PATCH", "/drives/{drive_id}"),
                  ("PATCH", "/network-interfaces/{iface_id}"), ("PUT", "/snapshot/create")}
# Served before boot, but the spec's minimal body names no memory source: a 400 that says so.
REFUSED_BODY = {("PUT", "/snapshot/load"): "missing mem_backend"}
# Partial bodies by design: a missing "required" field is no error there.
PARTIAL = {("PATCH", "/machine-config")}
# Fields the spec leaves optional that kiln requires (no vhost-user: a drive needs a file).
KILN_REQUIRED = {"Drive": ["path_on_host"]}


def load_spec():
    text = open(os.path.join(TOP, "vmm", "api_spec_data.c")).read()
    body = text[text.index("api_spec_data[] =") + len("api_spec_data[] ="):text.rindex(";")]
    parts = re.findall(r'"(?:[^"\\]|\\.)*"', body)
    return json.loads("".join(ast.literal_eval(p) for p in parts))


class Api:
    def __init__(self, path):
        self.path = path

    def call(self, method, url, body=None):
        """One request on a fresh connection: (status, parsed JSON body or None, raw)."""
        data = b"" if body is None else (body if isinstance(body, bytes) else
                                         json.dumps(body).encode())
        req = (f"{method} {url} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.path)
        s.sendall(req.encode() + data)
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
        s.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = None
        return status, parsed, payload


class Builder:
    """Valid bodies from the spec's definitions, with values kiln can take."""

    def __init__(self, spec, work):
        self.defs = spec["definitions"]
        self.values = {
            "vcpu_count": 2, "mem_size_mib": 128, "kernel_image_path": "/nonexistent/vmlinux",
            "path_on_host": work + "/disk.img", "log_path": work + "/kiln.log",
            "metrics_path": work + "/metrics.json", "serial_out_path": work + "/serial.out",
            "uds_path": work + "/v.sock", "guest_cid": 3, "host_dev_name": "tap0",
            "drive_id": "conf1", "iface_id": "conf1", "level": "Info", "id": "conf1",
        }

    def resolve(self, schema):
        while "$ref" in schema:
            schema = self.defs[schema["$ref"]]
        return schema

    def value(self, name, schema, full=False):
        schema = self.resolve(schema)
        if name in self.values:
            return self.values[name]
        if "enum" in schema:
            return schema["enum"][0]
        t = schema.get("type", "object")
        if t == "object":
            return self.obj(schema, full)
        if t == "array":
            return [self.value(name, schema.get("items", {}), full)]
        if t == "integer":
            return max(1, schema.get("minimum", 1))
        if t == "number":
            return 1.0
        if t == "boolean":
            return False
        return "x"

    def obj(self, schema, full=False):
        schema = self.resolve(schema)
        props = schema.get("properties", {})
        keys = props if full else schema.get("required", [])
        return {k: self.value(k, props[k], full) for k in keys if k in props}


def wrong_value(schema):
    t = schema.get("type", "object")
    return {"string": 12345, "integer": "seven", "number": "seven", "boolean": "yes",
            "array": {"a": 1}, "object": [1]}.get(t, 12345)


def device_rules(api, work, check, counts):
    """kiln's checks on device bodies, after the walk left drive, interface conf1 (tap0), a
    vsock and an entropy device configured: (method, url, body, status, field named)."""
    def drive(i, root=False, **kw):
        return dict({"drive_id": i, "path_on_host": work + "/disk.img", "is_root_device": root},
                    **kw)

    def net(i, tap, **kw):
        return dict({"iface_id": i, "host_dev_name": tap}, **kw)

    bucket = {"size": 1, "refill_time": 1}
    cases = [
        ("PUT", "/drives/root1", drive("root1", True), 204, None),
        ("PUT", "/drives/root2", drive("root2", True), 400, "is_root_device"),
        ("PUT", "/drives/root1", drive("root1", True, is_read_only=True), 204, None),
        ("PUT", "/drives/nopath", {"drive_id": "nopath", "is_root_device": False}, 400,
         "path_on_host"),
        ("PUT", "/drives/rl", drive("rl", rate_limiter={"ops": bucket}), 400, "rate_limiter"),
        ("PUT", "/drives/vu", {"drive_id": "vu", "is_root_device": False, "socket": "/s"}, 400,
         "socket"),
        ("PUT", "/network-interfaces/n2", net("n2", "tap0"), 400, "host_dev_name"),
        ("PUT", "/network-interfaces/n3", net("n3", "tap3", guest_mac="01:00:5e:00:00:01"), 400,
         "guest_mac"),
        ("PUT", "/network-interfaces/n3", net("n3", "tap3", guest_mac="06:00:ac:10:00:2"), 400,
         "guest_mac"),
        ("PUT", "/network-interfaces/n4", net("n4", "tap4", guest_mac="06:00:ac:10:00:02"), 204,
         None),
        ("PUT", "/network-interfaces/n5", net("n5", "tap5", guest_mac="06:00:AC:10:00:02"), 400,
         "guest_mac"),
        ("PUT", "/network-interfaces/n6", net("n6", "tap456789abcdef0"), 400, "host_dev_name"),
        ("PUT", "/network-interfaces/n7", net("n7", "tap7", rx_rate_limiter={"ops": bucket}),
         400, "rx_rate_limiter"),
        ("PUT", "/vsock", {"guest_cid": 3, "uds_path": ""}, 400, "uds_path"),
        ("PUT", "/vsock", {"guest_cid": 4294967295, "uds_path": work + "/v.sock"}, 400,
         "guest_cid"),
        ("PUT", "/entropy", {"rate_limiter": {"ops": bucket}}, 400, "rate_limiter"),
        ("PUT", "/entropy", {}, 204, None),
    ]
    # 2 drives, 2 interfaces, vsock and entropy: 13 more drives make the 19 there are IRQs for.
    cases += [("PUT", f"/drives/extra{i}", drive(f"extra{i}"), 204, None) for i in range(13)]
    cases.append(("PUT", "/drives/extra13", drive("extra13"), 400, "too many virtio devices"))
    for method, url, body, want, field in cases:
        st, parsed, raw = api.call(method, url, body)
        counts["mutation"] += 1
        fault = parsed.get("fault_message", "") if isinstance(parsed, dict) else ""
        check(st == want and (field is None or field in fault),
              f"{method} {url} {body}: expected {want} naming {field}, got {st} {raw!r}")

    st, parsed, raw = api.call("GET", "/vm/config")
    ok = st == 200 and isinstance(parsed, dict)
    drives = [d.get("drive_id") for d in parsed.get("drives", [])] if ok else []
    nets = [n.get("iface_id") for n in parsed.get("network-interfaces", [])] if ok else []
    check(ok and drives[:2] == ["conf1", "root1"] and len(drives) == 15 and
          nets == ["conf1", "n4"] and parsed.get("entropy") == {} and
          parsed.get("vsock", {}).get("guest_cid") == 3,
          f"GET /vm/config after the device checks: {st} {raw!r}")


def main():
    sock, work = sys.argv[1], sys.argv[2]
    spec = load_spec()
    api = Api(sock)
    build = Builder(spec, work)
    failures = []
    counts = {"status": 0, "mutation": 0}

    def check(cond, what):
        if not cond:
            failures.append(what)
        return cond

    # PUT /metrics first, so that the FlushMetrics action has somewhere to write.
    routes = sorted(spec["routes"], key=lambda r: (r["method"], r["path"]) != ("PUT", "/metrics"))
    for r in routes:
        key = (r["method"], r["path"])
        url = re.sub(r"\{[^}]+\}", "conf1", r["path"])
        body = None
        if r["body"]:
            body = build.obj(spec["definitions"][r["body"]], full=False)
            props = build.resolve(spec["definitions"][r["body"]]).get("properties", {})
            for f in KILN_REQUIRED.get(r["body"], []):
                body[f] = build.value(f, props[f])
            if key == ("PUT", "/actions"):
                body = {"action_type": "FlushMetrics"}
        st, parsed, raw = api.call(r["method"], url, body)
        counts["status"] += 1
        fault = parsed.get("fault_message", "") if isinstance(parsed, dict) else ""
        if key in PRE_BOOT_OK:
            check(st == r["status"], f"{key} valid body: expected {r['status']}, got {st} {raw!r}")
        elif key in REFUSED_BODY:
            check(st == 400 and REFUSED_BODY[key] in fault,
                  f"{key} minimal body: expected a 400 saying {REFUSED_BODY[key]!r}, got {st} {raw!r}")
        elif key in POST_BOOT_ONLY:
            check(st == 400 and "before starting the microVM" in fault,
                  f"{key} before boot: expected the pre-boot 400, got {st} {raw!r}")
        else:
            check(st == 400 and "not supported by kiln yet" in fault,
                  f"{key}: expected the not-supported 400, got {st} {raw!r}")
        if st != 200 and st != 204:
            check(isinstance(fault, str) and fault, f"{key}: {st} without a fault_message")
        if st == 200:
            check(parsed is not None, f"{key}: 200 without a JSON body: {raw!r}")

        if not r["body"]:
            continue
        schema = build.resolve(spec["definitions"][r["body"]])
        props = schema.get("properties", {})
        base = build.obj(schema, full=True)
        mutations = []
        for f in schema.get("required", []):
            if key not in PARTIAL and f in base:
                m = dict(base)
                del m[f]
                mutations.append((f"missing {f}", m, f))
        for f, p in props.items():
            if build.resolve(p).get("type") or "$ref" in p:
                m = dict(base)
                m[f] = wrong_value(build.resolve(p))
                mutations.append((f"wrong type {f}", m, f))
                break
        for f, p in props.items():
            if "enum" in build.resolve(p):
                m = dict(base)
                m[f] = "NotAValueKilnKnows"
                mutations.append((f"unknown enum {f}", m, f))
                break
        if schema.get("additionalProperties") is not True:
            m = dict(base)
            m["kiln_bogus_field"] = 1
            mutations.append(("unknown field", m, "kiln_bogus_field"))
        mutations.append(("non-JSON body", b"{this is not json", None))
        for what, m, field in mutations:
            st, parsed, raw = api.call(r["method"], url, m)
            counts["mutation"] += 1
            fault = parsed.get("fault_message", "") if isinstance(parsed, dict) else ""
            ok = st == 400 and isinstance(fault, str) and fault and (field is None or field in fault)
            check(ok, f"{key} {what}: expected 400 naming {field}, got {st} {raw!r}")

    device_rules(api, work, check, counts)

    st, parsed, raw = api.call("GET", "/")
    check(st == 200 and parsed and parsed.get("state") == "Not started",
          f"GET / at the end: {st} {raw!r}")
    st, _, raw = api.call("GET", "/no-such-path")
    check(st == 400, f"unknown path: {st} {raw!r}")
    st, _, raw = api.call("DELETE", "/machine-config")
    check(st == 400, f"unknown method: {st} {raw!r}")

    n = len(spec["routes"])
    if failures:
        for f in failures[:30]:
            print(f"  {f}")
        print(f"FAIL api-conformance: {len(failures)} of {counts['status'] + counts['mutation']}"
              f" checks failed")
        return 1
    print(f"PASS api-conformance ({n} routes of spec {spec['version']}: {counts['status']} "
          f"valid-body checks, {counts['mutation']} bad-body checks, all answered as expected)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
