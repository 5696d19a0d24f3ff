#!/usr/bin/env python3
"""Runs the conformance script (ops.json) against a real etcd through its gRPC gateway
(the JSON/HTTP API every etcd v3 serves on its client URL) and writes the responses as
vectors (one per operation, in the shape store/tests/conformance.rs compares).

Usage: record.py ENDPOINT OPS.json OUT.json ETCD_VERSION

Normalisation: keys and values are decoded from base64 to text; numbers (int64 travel as
strings in the gateway's JSON) become integers; fields the gateway omits because they are
zero/empty/false are filled with that zero value; cluster_id, member_id and raft_term are
dropped (they name the cluster, not the store's semantics). Errors become kinds (see
ERROR_KINDS). A watch's vector is its events across every response after the `created`
one, the header revision of the first such response, and its cancellation.
"""

import base64
import http.client
import json
import socket
import sys
import urllib.parse

ERROR_KINDS = {
    "etcdserver: mvcc: required revision has been compacted": "compacted",
    "etcdserver: mvcc: required revision is a future revision": "future_revision",
    "etcdserver: key is not provided": "empty_key",
    "etcdserver: duplicate key given in txn request": "duplicate_key",
    "etcdserver: too many operations in txn request": "too_many_ops",
    "etcdserver: requested lease not found": "lease_not_found",
    "etcdserver: lease already exists": "lease_exists",
    "etcdserver: too large lease TTL": "lease_ttl_too_large",
}

TARGETS = {"mod": ("MOD", "mod_revision"), "create": ("CREATE", "create_revision"),
           "version": ("VERSION", "version"), "value": ("VALUE", "value")}
RESULTS = {"equal": "EQUAL", "not_equal": "NOT_EQUAL", "greater": "GREATER", "less": "LESS"}


def b64(text):
    return base64.b64encode(text.encode()).decode()


def unb64(data):
    return base64.b64decode(data).decode() if data else ""


def prefix_end(prefix):
    """clientv3 GetPrefixRangeEnd: the prefix with its last byte below 0xff incremented."""
    data = bytearray(prefix.encode())
    for i in reversed(range(len(data))):
        if data[i] < 0xFF:
            data[i] += 1
            return bytes(data[: i + 1])
    return b"\x00"


def key_range(op):
    """The gateway's key/range_end for one of the script's four range shapes."""
    request = {"key": b64(op["key"])}
    if op.get("prefix"):
        request["range_end"] = base64.b64encode(prefix_end(op["key"])).decode()
    elif op.get("from_key"):
        request["range_end"] = b64("\0")
    elif "range_end" in op:
        request["range_end"] = b64(op["range_end"])
    return request


def range_request(op):
    request = key_range(op)
    for field in ("limit", "revision", "keys_only", "count_only"):
        if field in op:
            request[field] = op[field]
    return request


def put_request(op):
    request = {"key": b64(op["key"]), "value": b64(op["value"])}
    if op.get("prev_kv"):
        request["prev_kv"] = True
    if op.get("lease"):
        request["lease"] = op["lease"]
    return request


def delete_request(op):
    request = key_range(op)
    if op.get("prev_kv"):
        request["prev_kv"] = True
    return request


def request_op(op):
    return {
        "range": lambda: {"request_range": range_request(op)},
        "put": lambda: {"request_put": put_request(op)},
        "delete": lambda: {"request_delete_range": delete_request(op)},
    }[op["op"]]()


def compare(c):
    target, field = TARGETS[c["target"]]
    value = b64(c["value"]) if c["target"] == "value" else c["value"]
    return {"key": b64(c["key"]), "target": target, "result": RESULTS[c["result"]], field: value}


def kv(raw):
    if raw is None:
        return None
    return {
        "key": unb64(raw.get("key")),
        "value": unb64(raw.get("value")),
        "create_revision": int(raw.get("create_revision", 0)),
        "mod_revision": int(raw.get("mod_revision", 0)),
        "version": int(raw.get("version", 0)),
        "lease": int(raw.get("lease", 0)),
    }


def revision(raw):
    return int((raw.get("header") or {}).get("revision", 0))


def range_response(raw):
    return {"revision": revision(raw), "kvs": [kv(k) for k in raw.get("kvs", [])],
            "count": int(raw.get("count", 0)), "more": bool(raw.get("more", False))}


def put_response(raw):
    return {"revision": revision(raw), "prev_kv": kv(raw.get("prev_kv"))}


def delete_response(raw):
    return {"revision": revision(raw), "deleted": int(raw.get("deleted", 0)),
            "prev_kvs": [kv(k) for k in raw.get("prev_kvs", [])]}


def txn_response(raw):
    responses = []
    for r in raw.get("responses", []):
        if "response_range" in r:
            responses.append({"range": range_response(r["response_range"])})
        elif "response_put" in r:
            responses.append({"put": put_response(r["response_put"])})
        elif "response_delete_range" in r:
            responses.append({"delete": delete_response(r["response_delete_range"])})
        else:
            raise ValueError(f"unknown txn response {r}")
    return {"revision": revision(raw), "succeeded": bool(raw.get("succeeded", False)), "responses": responses}


def ttl_left(ttl, granted):
    """A lease's remaining TTL depends on when it is asked: "full" when within 5 s of the
    granted TTL (the script asks within seconds of granting or renewing; recording waits
    a second after each watch), else the number (-1: no such lease, 0: expired)."""
    return "full" if ttl >= 0 and granted - 5 <= ttl <= granted else ttl


def lease_ttl_response(raw):
    granted = int(raw.get("grantedTTL", 0))
    return {"revision": revision(raw), "id": int(raw.get("ID", 0)), "ttl": ttl_left(int(raw.get("TTL", 0)), granted),
            "granted_ttl": granted, "keys": sorted(unb64(k) for k in raw.get("keys", []))}


def error_kind(raw):
    message = raw.get("error") or raw.get("message")
    if message not in ERROR_KINDS:
        raise ValueError(f"unmapped etcd error {raw}")
    return ERROR_KINDS[message]


class Gateway:
    def __init__(self, endpoint):
        url = urllib.parse.urlparse(endpoint)
        self.host, self.port = url.hostname, url.port

    def post(self, path, body):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = json.loads(response.read())
        conn.close()
        return data

    def stream_once(self, path, body, quiet_seconds=1.0):
        """Sends one message on a streaming endpoint and returns the first result."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        conn.sock.settimeout(quiet_seconds)
        line = response.readline()
        conn.close()
        data = json.loads(line)
        return data.get("result", data)

    def watch(self, body, quiet_seconds=1.0):
        """Opens a watch, reads responses until none arrives for quiet_seconds (or the
        watch is cancelled), and returns them (the `result` of each line)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.request("POST", "/v3/watch", json.dumps({"create_request": body}), {"Content-Type": "application/json"})
        response = conn.getresponse()
        conn.sock.settimeout(quiet_seconds)
        results = []
        try:
            while True:
                line = response.readline()
                if not line:
                    break
                result = json.loads(line).get("result", {})
                results.append(result)
                if result.get("canceled"):
                    break
        except socket.timeout:
            pass
        conn.close()
        return results


def run(gateway, op):
    kind = op["op"]
    if kind == "watch":
        body = key_range(op)
        body["start_revision"] = op["start_revision"]
        if op.get("prev_kv"):
            body["prev_kv"] = True
        results = [r for r in gateway.watch(body) if not r.get("created")]
        events = []
        for r in results:
            for e in r.get("events", []):
                events.append({"type": e.get("type", "PUT").lower(), "kv": kv(e.get("kv")), "prev_kv": kv(e.get("prev_kv"))})
        return {"watch": {
            "revision": revision(results[0]) if results else None,
            "canceled": any(r.get("canceled", False) for r in results),
            "compact_revision": max([int(r.get("compact_revision", 0)) for r in results] or [0]),
            "events": events,
        }}
    if kind == "lease_keepalive":
        raw = gateway.stream_once("/v3/lease/keepalive", {"ID": op["lease"]})
        if "error" in raw or "code" in raw:
            return {"error": error_kind(raw)}
        return {kind: {"revision": revision(raw), "id": int(raw.get("ID", 0)), "ttl": int(raw.get("TTL", 0))}}
    path, body, shape = {
        "range": ("/v3/kv/range", lambda: range_request(op), range_response),
        "put": ("/v3/kv/put", lambda: put_request(op), put_response),
        "delete": ("/v3/kv/deleterange", lambda: delete_request(op), delete_response),
        "txn": ("/v3/kv/txn", lambda: {
            "compare": [compare(c) for c in op["compare"]],
            "success": [request_op(o) for o in op["success"]],
            "failure": [request_op(o) for o in op["failure"]],
        }, txn_response),
        "compact": ("/v3/kv/compaction", lambda: {"revision": op["revision"]}, lambda raw: {"revision": revision(raw)}),
        "lease_grant": ("/v3/lease/grant", lambda: {"ID": op["lease"], "TTL": op["ttl"]},
                        lambda raw: {"revision": revision(raw), "id": int(raw.get("ID", 0)), "ttl": int(raw.get("TTL", 0))}),
        "lease_revoke": ("/v3/lease/revoke", lambda: {"ID": op["lease"]}, lambda raw: {"revision": revision(raw)}),
        "lease_ttl": ("/v3/lease/timetolive", lambda: {"ID": op["lease"], "keys": op["keys"]}, lease_ttl_response),
        "lease_leases": ("/v3/lease/leases", lambda: {},
                         lambda raw: {"revision": revision(raw), "leases": sorted(int(l["ID"]) for l in raw.get("leases", []))}),
    }[kind]
    raw = gateway.post(path, body())
    if "error" in raw or "code" in raw:
        return {"error": error_kind(raw)}
    return {kind: shape(raw)}


def main():
    endpoint, ops_path, out_path, version = sys.argv[1:5]
    ops = json.load(open(ops_path))["ops"]
    gateway = Gateway(endpoint)
    vectors = []
    for op in ops:
        vectors.append({"id": op["id"], "result": run(gateway, op)})
    out = {"recorded_from": f"etcd {version}", "script": "ops.json", "vectors": vectors}
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=True)
        f.write("\n")


if __name__ == "__main__":
    main()
