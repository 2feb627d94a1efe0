#!/usr/bin/env python3
"""An auditor and state replay of a Bulwark ledger, written from SPEC.md alone.

It shares no code with Bulwark (pure Python 3, standard library only: its Ed25519
verification is RFC 8032's reference algorithm), so it checks that the specification is
enough to audit a ledger. Usage:

    python3 spec/reference/audit.py spec/vectors/ledger

reads DIR/cluster.json and DIR/blocks/segment-*.log, checks every height as SPEC.md §11
says, replays the state machine (§8, §9), and, when DIR/expected.json exists, compares every
block hash, ledger digest, state root and result with it. Exit status 0 only if all holds.
"""
import copy
import hashlib
import json
import os
import struct
import sys

# --- §1 primitives ---------------------------------------------------------------------

def H(data):
    return hashlib.sha256(data).digest()

def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF

# RFC 8032 §5.1 and §6, verification only.
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

def _add(a, b):
    A = (a[1] - a[0]) * (b[1] - b[0]) % P
    B = (a[1] + a[0]) * (b[1] + b[0]) % P
    C = 2 * a[3] * b[3] * D % P
    Dd = 2 * a[2] * b[2] % P
    E, F, G, Hh = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * Hh % P, F * G % P, E * Hh % P)

def _mul(s, point):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, point)
        point = _add(point, point)
        s >>= 1
    return q

def _recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x

def _decompress(data):
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)

_GY = 4 * pow(5, P - 2, P) % P
_G = (_recover_x(_GY, 0), _GY, 1, _recover_x(_GY, 0) * _GY % P)

def ed25519_verify(public, message, signature):
    A = _decompress(public)
    R = _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if A is None or R is None or s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    left = _mul(s, _G)
    right = _add(R, _mul(h, A))
    return (left[0] * right[2] - right[0] * left[2]) % P == 0 and (left[1] * right[2] - right[1] * left[2]) % P == 0

# --- §4 canonical encoding -------------------------------------------------------------

class Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def raw(self, n):
        if self.at + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def u8(self): return self.raw(1)[0]
    def u16(self): return struct.unpack("<H", self.raw(2))[0]
    def u32(self): return struct.unpack("<I", self.raw(4))[0]
    def u64(self): return struct.unpack("<Q", self.raw(8))[0]
    def i64(self): return struct.unpack("<q", self.raw(8))[0]
    def bytes_(self): return self.raw(self.u32())
    def digest(self): return self.raw(32)

    def boolean(self):
        value = self.u8()
        if value > 1:
            raise ValueError("boolean is neither 0 nor 1")
        return value == 1

    def start(self):
        return self.at

    def since(self, start):
        return self.data[start:self.at]

def u64(v): return struct.pack("<Q", v)
def i64(v): return struct.pack("<q", v)
def u32(v): return struct.pack("<I", v)
def u16(v): return struct.pack("<H", v)
def lenbytes(b): return u32(len(b)) + b

# --- §5 domains ------------------------------------------------------------------------

def domain(tag, cluster, body):
    tag = tag.encode()
    return bytes([len(tag)]) + tag + cluster + body

def tagged(tag, cluster, body):
    return H(domain(tag, cluster, body))

# --- §6 requests and operations (decoded into tuples) ------------------------------------

def read_operation(r):
    tag = r.u8()
    if tag == 1: return ("put", r.bytes_(), r.bytes_())
    if tag == 2: return ("delete", r.bytes_())
    if tag == 3: return ("cas", r.bytes_(), r.u64(), r.bytes_())
    if tag == 4: return ("add", r.bytes_(), r.i64(), r.i64(), r.i64())
    if tag == 5:
        guards = [read_guard(r) for _ in range(r.u32())]
        writes = [read_write(r) for _ in range(r.u32())]
        return ("txn", guards, writes)
    if tag == 6: return ("get", r.bytes_())
    if tag == 7: return ("range", r.bytes_(), r.bytes_(), r.u32())
    if tag == 8: return ("history", r.bytes_(), r.u32())
    if tag == 9:
        epoch = r.u64()
        start = r.start()
        config = read_config(r)
        encoding = r.since(start)
        return ("approveConfig", epoch, config, encoding, r.raw(32), r.raw(64))
    if tag == 10: return ("governance",)
    if tag == 11:
        epoch, sequence = r.u64(), r.u64()
        start = r.start()
        edits = [read_edit(r) for _ in range(r.u32())]
        return ("approvePolicy", epoch, sequence, edits, r.since(start), r.raw(32), r.raw(64))
    if tag == 12: return ("policy",)
    raise ValueError("unknown operation tag %d" % tag)

# --- §19 client permissions -----------------------------------------------------------------

READ, WRITE, CREDIT, ADMIN = 1, 2, 3, 4
PLACEHOLDER = b"{client}"
NAME_BYTES = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")

def valid_name(name):
    return 1 <= len(name) <= 64 and all(b in NAME_BYTES for b in name)

def read_grant(r):
    permission = r.u8()
    if permission not in (READ, WRITE, CREDIT, ADMIN):
        raise ValueError("unknown permission %d" % permission)
    return (permission, r.bytes_())

def read_edit(r):
    tag = r.u8()
    if tag in (1, 2): return ("grant" if tag == 1 else "revoke", r.bytes_(), read_grant(r))
    if tag == 3:
        name, client = r.bytes_(), r.raw(32)
        return ("bind", name, client, [r.bytes_() for _ in range(r.u32())])
    if tag == 4: return ("unbind", r.bytes_())
    raise ValueError("unknown policy edit %d" % tag)

def delimited(prefix):
    """Every {client} is followed by a byte that is not a name byte (§19.1)."""
    return all(segment[:1] and segment[0] not in NAME_BYTES for segment in prefix.split(PLACEHOLDER)[1:])

def expand(prefix, name):
    return prefix.replace(PLACEHOLDER, name)

def covering(prefix, key):
    """The expansion of prefix, each {client} standing for some name (shortest first), that key starts with."""
    segments = prefix.split(PLACEHOLDER)
    def match(index, at, built):
        segment = segments[index]
        if key[at:at + len(segment)] != segment: return None
        after = at + len(segment)
        if index == len(segments) - 1: return built + segment
        end = after
        while end < len(key) and end - after < 64 and key[end] in NAME_BYTES:
            end += 1
            found = match(index + 1, end, built + segment + key[after:end])
            if found is not None: return found
        return None
    return match(0, 0, b"")

def successor(prefix):
    stripped = prefix.rstrip(b"\xff")
    return None if not stripped else stripped[:-1] + bytes([stripped[-1] + 1])

# --- §18 configurations ------------------------------------------------------------------

PARAMETERS = [  # name, default, minimum, maximum (§16, §18.1 order)
    ("batchRequestsMax", 512, 1, 65536), ("batchBytesMax", 1 << 20, 1, 1 << 26), ("batchDelayMs", 2, 0, 60000),
    ("blocksInFlightMax", 1, 1, 4096), ("watermarkWindow", 64, 2, 4096), ("checkpointInterval", 16, 1, 2048),
    ("viewChangeTimeoutMs", 2000, 10, 3600000), ("turnaroundSlackMs", 50, 0, 3600000),
    ("timestampSkewMsMax", 30000, 1, 86400000), ("keyBytesMax", 256, 1, 4096), ("valueBytesMax", 65536, 1, 4194304),
    ("requestBytesMax", 131072, 1, 1 << 26), ("txnOperationsMax", 64, 1, 4096), ("rangeResultsMax", 1000, 1, 100000),
    ("frameBytesMax", 16 << 20, 65536, 1 << 27), ("stateTransferTimeoutMs", 1000, 10, 3600000)]

def read_address(r):
    host = r.bytes_()
    if len(host) > 253:
        raise ValueError("host too long")
    return host.decode(), r.u16()

def read_config(r):
    """A configuration (§18.1), as the dictionary the audit uses; refuses what §16 refuses."""
    version = r.u8()
    if version not in (1, 2):
        raise ValueError("configuration version")
    cluster = r.raw(32)
    validators = []
    for _ in range(r.u32()):
        vid, key = r.u16(), r.raw(32)
        addresses = [read_address(r) for _ in range(3)]
        validators.append((vid, key, addresses))
    params = {}
    for name, _, lo, hi in PARAMETERS:
        value = r.u64()
        if not lo <= value <= hi:
            raise ValueError("parameter %s out of range" % name)
        params[name] = value
    admins = [r.raw(32) for _ in range(r.u32())]
    threshold = r.u16()
    if version == 2 and r.u8() != 1:
        raise ValueError("a version-2 configuration is a closed one")
    ids = [v[0] for v in validators]
    if len(validators) < 4 or any(a >= b for a, b in zip(ids, ids[1:])):
        raise ValueError("validators: fewer than 4, or ids not strictly increasing")
    if len({v[1] for v in validators}) != len(validators) or len(set(admins)) != len(admins) or len(admins) > 64:
        raise ValueError("repeated validator or admin key")
    if not (threshold == 0 if not admins else 1 <= threshold <= len(admins)):
        raise ValueError("admin threshold out of range")
    return {"cluster": cluster, "validators": {v[0]: v[1] for v in validators}, "order": ids, "params": params,
            "admins": admins, "threshold": threshold, "closed": version == 2}

def config_from_json(j):
    """cluster.json (§16) as its canonical encoding (§18.1)."""
    def address(text):
        host, port = (text[1:].split("]:") if text.startswith("[") else text.rsplit(":", 1))
        host = host.encode()
        return lenbytes(host) + u16(int(port))
    validators = sorted(j["validators"], key=lambda v: v["id"])
    closed = j.get("policy", "open") == "closed"
    out = (b"\x02" if closed else b"\x01") + bytes.fromhex(j["clusterID"]) + u32(len(validators))
    for v in validators:
        out += u16(v["id"]) + bytes.fromhex(v["publicKey"]) + address(v["replicaAddress"]) + \
            address(v["clientAddress"]) + address(v["httpAddress"])
    given = j.get("parameters", {})
    out += b"".join(u64(given.get(name, default)) for name, default, _, _ in PARAMETERS)
    admins = j.get("admins", [])
    out += u32(len(admins)) + b"".join(bytes.fromhex(a) for a in admins)
    out += u16(j.get("adminThreshold", 1 if admins else 0))
    return out + (b"\x01" if closed else b"")

def read_guard(r):
    tag = r.u8()
    if tag == 1: return ("versionEquals", r.bytes_(), r.u64())
    if tag == 2: return ("valueEquals", r.bytes_(), r.bytes_())
    if tag == 3: return ("exists", r.bytes_())
    if tag == 4: return ("absent", r.bytes_())
    raise ValueError("unknown guard tag %d" % tag)

def read_write(r):
    tag = r.u8()
    if tag == 1: return ("put", r.bytes_(), r.bytes_())
    if tag == 2: return ("delete", r.bytes_())
    if tag == 3: return ("add", r.bytes_(), r.i64(), r.i64(), r.i64())
    raise ValueError("unknown write tag %d" % tag)

def read_request(r):
    start = r.start()
    if r.u8() != 1:
        raise ValueError("request version")
    client, request_id = r.raw(32), r.u64()
    operation = read_operation(r)
    signed_body = r.since(start)[1:]
    signature = r.raw(64)
    return {"client": client, "id": request_id, "op": operation, "signed": signed_body,
            "signature": signature, "encoding": r.since(start)}

# --- §7 blocks, §10 certificates ---------------------------------------------------------

def merkle_root(leaves):
    """RFC 6962 root over leaf hashes already computed."""
    if not leaves:
        return H(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return H(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:]))

def leaf(d): return H(b"\x00" + d)

def read_votes(r):
    votes = [(r.u16(), r.raw(64)) for _ in range(r.u32())]
    if any(a[0] >= b[0] for a, b in zip(votes, votes[1:])):
        raise ValueError("votes not in strictly increasing replica order")
    return votes

def read_entry(payload):
    r = Reader(payload)
    if r.u8() != 1:
        raise ValueError("block version")
    start = r.start()
    if r.u8() != 3:
        raise ValueError("header version: not ledger format 3")
    header = {"cluster": r.raw(32), "epoch": r.u64(), "height": r.u64(), "view": r.u64(), "timestamp": r.u64(),
              "proposer": r.u16(), "prev": r.digest(), "txRoot": r.digest(), "historyRoot": r.digest()}
    header["encoding"] = r.since(start)
    requests = [read_request(r) for _ in range(r.u32())]
    if r.u8() != 1:
        raise ValueError("commit certificate version")
    cert = {"height": r.u64(), "view": r.u64(), "blockHash": r.digest(), "votes": read_votes(r)}
    if r.at != len(payload):
        raise ValueError("trailing bytes")
    return header, requests, cert

def read_execution_certificate(payload):
    r = Reader(payload)
    if r.u8() != 1:
        raise ValueError("execution certificate version")
    cert = {"height": r.u64(), "blockHash": r.digest(), "stateRoot": r.digest(), "votes": read_votes(r)}
    if r.at != len(payload):
        raise ValueError("trailing bytes")
    return cert

def check_votes(votes, validators, quorum, message):
    seen = set()
    for replica, signature in votes:
        if replica not in validators or replica in seen:
            return False
        seen.add(replica)
        if not ed25519_verify(validators[replica], message(replica), signature):
            return False
    return len(seen) >= quorum

# --- §8 state machine, §9 authenticated map ---------------------------------------------

RESULT_BYTES_CEILING = 4194304


def result_bytes_max(params):
    """A range or history result's byte budget (SPEC §8.3): min(4 MiB, frameBytesMax / 4)."""
    return min(RESULT_BYTES_CEILING, params["frameBytesMax"] // 4)

class State:
    def __init__(self, genesis_encoding):
        self.config_encoding = genesis_encoding
        self.config = read_config(Reader(genesis_encoding))
        self.cluster, self.params = self.config["cluster"], self.config["params"]
        self.records = {}     # key -> (value, version)
        self.clients = {}     # client -> (request id, result encoding, height)
        self.histories = {}   # key -> [(height, value or None)]
        self.height = 0
        # §18.2 governance: epoch, first height, proposals {id: (config encoding, {admin index: signature})},
        # the scheduled change (id, last height, config encoding, approvals) and the epochs' ends.
        self.epoch, self.first_height, self.proposals, self.scheduled, self.epoch_ends = 0, 1, {}, None, []
        # §19.1 policy: roles {name: sorted [(permission, prefix)]}, bindings {name: (client, [roles])},
        # proposals {id: (edits encoding, edits, {admin index: signature})}.
        self.sequence, self.roles, self.bindings, self.policy_proposals = 0, {}, {}, {}

    def policy_empty(self):
        return self.sequence == 0 and not self.roles and not self.bindings and not self.policy_proposals

    def policy(self):
        def approvals(a): return u32(len(a)) + b"".join(u16(i) + a[i] for i in sorted(a))
        out = b"\x01" + u64(self.sequence) + u32(len(self.roles))
        for name in sorted(self.roles):
            grants = self.roles[name]
            out += lenbytes(name) + u32(len(grants)) + b"".join(bytes([p]) + lenbytes(x) for p, x in grants)
        out += u32(len(self.bindings))
        for name in sorted(self.bindings):
            client, roles = self.bindings[name]
            out += lenbytes(name) + client + u32(len(roles)) + b"".join(lenbytes(role) for role in roles)
        out += u32(len(self.policy_proposals))
        for pid in sorted(self.policy_proposals):
            encoding, _, approved = self.policy_proposals[pid]
            out += pid + encoding + approvals(approved)
        return out

    def caller(self, client):
        """(grants, admin, known), grants None for every right (§19.2)."""
        admin = client in self.config["admins"]
        for name, (bound, roles) in self.bindings.items():
            if bound == client:
                grants = [(p, expand(x, name)) for role in roles for p, x in self.roles.get(role, [])]
                return grants, admin, True
        if not self.config["closed"]: return None, admin, True
        return [], admin, admin

    def suggested(self, permission, key):
        for name in sorted(self.roles):
            for p, prefix in self.roles[name]:
                if p == permission or (permission == CREDIT and p == WRITE):
                    found = covering(prefix, key)
                    if found is not None: return found
        return key

    def authorize(self, client, op):
        grants, admin, known = self.caller(client)
        if grants is None: return None
        def may(permission, key):
            return any((p == permission or (permission == CREDIT and p == WRITE)) and key.startswith(x) for p, x in grants)
        def need(permission, key, code):
            if may(permission, key): return None
            return b"\x0d" + bytes([code]) + lenbytes(key) + bytes([permission]) + lenbytes(self.suggested(permission, key))
        def adding(key, delta, lo, hi):
            bounded = lo != -2**63 or hi != 2**63 - 1
            return need(CREDIT if delta > 0 else WRITE, key, 4) or (need(READ, key, 4) if bounded else None)
        kind = op[0]
        if kind in ("put", "delete"): return need(WRITE, op[1], {"put": 1, "delete": 2}[kind])
        if kind == "cas": return need(WRITE, op[1], 3) or need(READ, op[1], 3)
        if kind == "add": return adding(op[1], op[2], op[3], op[4])
        if kind == "get": return need(READ, op[1], 6)
        if kind == "history": return need(READ, op[1], 8)
        if kind == "range":
            start, end = op[1], op[2]
            empty = bool(end) and end <= start
            for p, x in grants:
                if p != READ: continue
                after = successor(x)
                if empty or (start >= x and (after is None or (bool(end) and end <= after))): return None
            return b"\x0d\x07" + lenbytes(start) + bytes([READ]) + lenbytes(self.suggested(READ, start))
        if kind == "txn":
            for g in op[1]:
                denied = need(READ, g[1], 13)
                if denied: return denied
            for w in op[2]:
                denied = need(WRITE, w[1], {"put": 1, "delete": 2}[w[0]]) if w[0] != "add" else adding(*w[1:5])
                if denied: return denied
            return None
        if kind in ("approveConfig", "approvePolicy"):
            if admin or any(p == ADMIN for p, _ in grants): return None
            return b"\x0d" + bytes([9 if kind == "approveConfig" else 11]) + lenbytes(b"") + bytes([ADMIN]) + lenbytes(b"")
        if kind in ("governance", "policy"):
            if known: return None
            return b"\x0d" + bytes([10 if kind == "governance" else 12]) + lenbytes(b"") + bytes([READ]) + lenbytes(b"")
        raise ValueError(kind)

    def edit(self, e):
        """Applies one edit (§19.3) or returns its problem code."""
        kind = e[0]
        if kind == "grant":
            _, role, (permission, prefix) = e
            if not valid_name(role): return 1
            if permission == ADMIN and prefix: return 8
            if permission != ADMIN and (len(prefix) > self.params["keyBytesMax"] or prefix.count(PLACEHOLDER) > 4
                                        or not delimited(prefix)): return 8
            if role not in self.roles and len(self.roles) >= 64: return 7
            grants = self.roles.setdefault(role, [])
            if (permission, prefix) in grants: return 2
            if len(grants) >= 32: return 7
            grants.append((permission, prefix))
            grants.sort()
        elif kind == "revoke":
            _, role, grant = e
            if grant not in self.roles.get(role, []): return 3
            self.roles[role].remove(grant)
            if not self.roles[role]: del self.roles[role]
        elif kind == "bind":
            _, name, client, roles = e
            if not valid_name(name): return 1
            if not 1 <= len(roles) <= 16 or not all(valid_name(x) for x in roles) or \
               any(a >= b for a, b in zip(roles, roles[1:])): return 9
            if name in self.bindings: return 4
            if any(c == client for c, _ in self.bindings.values()): return 5
            if len(self.bindings) >= 1024: return 7
            self.bindings[name] = (client, roles)
        else:
            if e[1] not in self.bindings: return 6
            del self.bindings[e[1]]
        return None

    def approve_policy(self, op):
        _, epoch, sequence, edits, encoding, admin, signature = op
        if epoch != self.epoch: return b"\x0f\x01" + u64(self.epoch)
        if sequence != self.sequence or self.sequence == 2**64 - 1: return b"\x0f\x02" + u64(self.sequence)
        if admin not in self.config["admins"]: return b"\x0f\x03"
        message = domain("bulwark/v1/policy-approval", self.cluster, u64(epoch) + u64(sequence) + encoding)
        if not ed25519_verify(admin, message, signature): return b"\x0f\x04"
        if not 1 <= len(edits) <= 16: return b"\x0f\x06" + u64(len(edits))
        saved = (copy.deepcopy(self.roles), dict(self.bindings))
        for index, e in enumerate(edits):
            problem = self.edit(e)
            if problem is not None:
                self.roles, self.bindings = saved
                return b"\x0f\x07" + u32(index) + bytes([problem])
        applied = (self.roles, self.bindings)
        self.roles, self.bindings = saved
        pid = H(message)
        if pid not in self.policy_proposals:
            if len(self.policy_proposals) >= 16: return b"\x0f\x05" + u64(16)
            self.policy_proposals[pid] = (encoding, edits, {})
        approved = self.policy_proposals[pid][2]
        approved.setdefault(self.config["admins"].index(admin), signature)
        count, threshold = len(approved), self.config["threshold"]
        if count < threshold:
            return b"\x0e" + pid + u16(count) + u16(threshold) + b"\x00"
        self.roles, self.bindings = applied
        self.sequence += 1
        self.policy_proposals = {}
        return b"\x0e" + pid + u16(count) + u16(threshold) + b"\x01" + u64(self.sequence)

    def governance(self):
        def approvals(a): return u32(len(a)) + b"".join(u16(i) + a[i] for i in sorted(a))
        out = b"\x01" + u64(self.epoch) + u64(self.first_height) + self.config_encoding + u32(len(self.proposals))
        for pid in sorted(self.proposals):
            encoding, approved = self.proposals[pid]
            out += pid + encoding + approvals(approved)
        if self.scheduled is None:
            out += b"\x00"
        else:
            pid, last, encoding, approved = self.scheduled
            out += b"\x01" + pid + u64(last) + encoding + approvals(approved)
        return out + u32(len(self.epoch_ends)) + b"".join(u64(e) for e in self.epoch_ends)

    def approve(self, op):
        _, epoch, config, encoding, admin, signature = op
        if config["cluster"] != self.cluster: return b"\x0b\x02"
        if epoch != self.epoch: return b"\x0b\x01" + u64(self.epoch)
        if self.scheduled is not None: return b"\x0b\x05" + u64(self.scheduled[1])
        if admin not in self.config["admins"]: return b"\x0b\x03"
        config_hash = tagged("bulwark/v1/config", self.cluster, encoding)
        message = domain("bulwark/v1/config-approval", self.cluster, u64(self.epoch) + config_hash)
        if not ed25519_verify(admin, message, signature): return b"\x0b\x04"
        pid = H(message)
        if pid not in self.proposals:
            if len(self.proposals) >= 16: return b"\x0b\x06" + u64(16)
            self.proposals[pid] = (encoding, {})
        approved = self.proposals[pid][1]
        approved.setdefault(self.config["admins"].index(admin), signature)
        count, threshold = len(approved), self.config["threshold"]
        if count < threshold:
            return b"\x0a" + pid + u16(count) + u16(threshold) + b"\x00"
        window, interval = self.params["watermarkWindow"], self.params["checkpointInterval"]
        last = -(-(self.height + window) // interval) * interval
        self.scheduled = (pid, last, encoding, dict(approved))
        self.proposals = {}
        return b"\x0a" + pid + u16(count) + u16(threshold) + b"\x01" + u64(last)

    def end_of_block(self):
        if self.scheduled is not None and self.scheduled[1] == self.height:
            self.epoch_ends.append(self.height)
            self.epoch, self.first_height = self.epoch + 1, self.height + 1
            self.config_encoding = self.scheduled[2]
            self.config = read_config(Reader(self.config_encoding))
            self.params = self.config["params"]
            self.proposals, self.scheduled = {}, None
            self.policy_proposals = {}

    def write(self, key, value):
        if value is None:
            self.records.pop(key, None)
        else:
            self.records[key] = (value, self.height)
        self.histories.setdefault(key, []).append((self.height, value))

    def limit_violation(self, op):
        kmax, vmax, tmax = self.params["keyBytesMax"], self.params["valueBytesMax"], self.params["txnOperationsMax"]
        def key(k): return b"\x07\x01" + u64(len(k)) + u64(kmax) if len(k) > kmax else None
        def value(v): return b"\x07\x02" + u64(len(v)) + u64(vmax) if len(v) > vmax else None
        kind = op[0]
        if kind in ("approveConfig", "governance", "approvePolicy", "policy"): return None
        if kind in ("put", "cas"): return key(op[1]) or value(op[-1])
        if kind in ("delete", "add", "get", "history"): return key(op[1])
        if kind == "range": return key(op[1]) or key(op[2])
        guards, writes = op[1], op[2]
        if len(guards) + len(writes) > tmax:
            return b"\x07\x03" + u64(len(guards) + len(writes)) + u64(tmax)
        for g in guards:
            problem = key(g[1]) or (value(g[2]) if g[0] == "valueEquals" else None)
            if problem: return problem
        for w in writes:
            problem = key(w[1]) or (value(w[2]) if w[0] == "put" else None)
            if problem: return problem
        return None

    @staticmethod
    def add_failure(record, delta, lo, hi):
        if lo > hi: return b"\x01" + i64(lo) + i64(hi)
        if record is None:
            balance = 0
        elif len(record[0]) != 8:
            return b"\x02" + u64(len(record[0]))
        else:
            balance = struct.unpack("<q", record[0])[0]
        total = balance + delta
        if not -2**63 <= total < 2**63: return b"\x03" + i64(balance) + i64(delta)
        if total < lo: return b"\x04" + i64(total) + i64(lo)
        if total > hi: return b"\x05" + i64(total) + i64(hi)
        return total

    def reads(self, client, key):
        """Whether the caller may read key: what its results may tell of it (§19.2)."""
        grants = self.caller(client)[0]
        return grants is None or any(p == READ and key.startswith(x) for p, x in grants)

    def apply(self, op, client):
        rejected = self.limit_violation(op)
        if rejected: return rejected
        denied = self.authorize(client, op)
        if denied: return denied
        h, kind = self.height, op[0]
        if kind == "approveConfig": return self.approve(op)
        if kind == "governance": return b"\x0c" + self.governance()
        if kind == "approvePolicy": return self.approve_policy(op)
        if kind == "policy": return b"\x10" + self.policy()
        if kind == "put":
            self.write(op[1], op[2])
            return b"\x01" + u64(h)
        if kind == "delete":
            existed = op[1] in self.records
            if existed: self.write(op[1], None)
            return b"\x02" + bytes([existed]) if self.reads(client, op[1]) else b"\x11"
        if kind == "cas":
            actual = self.records.get(op[1], (None, 0))[1]
            if actual != op[2]: return b"\x06\x01" + u64(actual) + u64(op[2])
            self.write(op[1], op[3])
            return b"\x01" + u64(h)
        if kind == "add":
            reads = self.reads(client, op[1])
            outcome = self.add_failure(self.records.get(op[1]), op[2], op[3], op[4])
            if isinstance(outcome, bytes): return b"\x06\x03" + (outcome if reads else b"\x06")
            self.write(op[1], i64(outcome))
            return b"\x03" + i64(outcome) + u64(h) if reads else b"\x11"
        if kind == "txn":
            for index, g in enumerate(op[1]):
                record = self.records.get(g[1])
                holds = {"versionEquals": lambda: (record[1] if record else 0) == g[2],
                         "valueEquals": lambda: record is not None and record[0] == g[2],
                         "exists": lambda: record is not None, "absent": lambda: record is None}[g[0]]()
                if not holds: return b"\x06\x02" + u32(index)
            staged, order = {}, []
            for index, w in enumerate(op[2]):
                key = w[1]
                current = staged[key] if key in staged else self.records.get(key)
                if w[0] == "put": nxt = (w[2], h)
                elif w[0] == "delete": nxt = None
                else:
                    outcome = self.add_failure(current, w[2], w[3], w[4])
                    if isinstance(outcome, bytes):
                        return b"\x06\x04" + u32(index) + (outcome if self.reads(client, key) else b"\x06")
                    nxt = (i64(outcome), h)
                if key not in staged: order.append(key)
                staged[key] = nxt
            for key in order:
                if staged[key] is not None or key in self.records:
                    self.write(key, None if staged[key] is None else staged[key][0])
            return b"\x01" + u64(h)
        if kind == "get":
            record = self.records.get(op[1])
            return b"\x04\x00" + u64(0) if record is None else b"\x04\x01" + lenbytes(record[0]) + u64(record[1])
        if kind == "range":
            start, end, cap = op[1], op[2], min(op[3], self.params["rangeResultsMax"])
            entries, total = [], 0
            for key in sorted(k for k in self.records if k >= start and (not end or k < end)):
                if len(entries) >= cap: break
                value, version = self.records[key]
                total += len(key) + len(value)
                if total > result_bytes_max(self.params) and entries: break
                entries.append(lenbytes(key) + lenbytes(value) + u64(version))
            return b"\x05" + u32(len(entries)) + b"".join(entries)
        if kind == "history":
            cap = min(op[2], self.params["rangeResultsMax"])
            newest, total = [], 0
            for height, value in reversed(self.histories.get(op[1], [])):
                if len(newest) >= cap: break
                total += len(value or b"")
                if total > result_bytes_max(self.params) and newest: break
                newest.append(u64(height) + (b"\x00" if value is None else b"\x01" + lenbytes(value)))
            return b"\x08" + u32(len(newest)) + b"".join(reversed(newest))
        raise ValueError(kind)

    def execute(self, height, requests):
        self.height = height
        outcomes = []
        for request in requests:
            last = self.clients.get(request["client"])
            if last and request["id"] == last[0]:
                outcomes.append(("duplicate", last[1]))
                continue
            if last and request["id"] < last[0]:
                outcomes.append(("stale", None))
                continue
            known = self.caller(request["client"])[2]  # as the policy stood before the request
            result = self.apply(request["op"], request["client"])
            outcomes.append(("executed", result))
            if not known: continue  # a stranger leaves no record (§8.2)
            kept = b"\x09" if request["op"][0] in ("get", "range", "history", "governance", "policy") else result
            self.clients[request["client"]] = (request["id"], kept, height)
        self.end_of_block()
        return outcomes

    def state_root(self):
        entries = {}
        for key, (value, version) in self.records.items():
            entries[H(b"\x01" + key)] = H(lenbytes(value) + u64(version))
        for client, (request_id, result, height) in self.clients.items():
            entries[H(b"\x02" + client)] = H(u64(request_id) + result + u64(height))
        entries[H(b"\x03")] = tagged("bulwark/v1/governance", self.cluster, self.governance())
        if not self.policy_empty():
            entries[H(b"\x04")] = tagged("bulwark/v1/policy", self.cluster, self.policy())
        map_root = subtree(sorted(entries.items()), 0)
        return tagged("bulwark/v1/state", self.cluster, u64(self.height) + map_root)

def bit(key_hash, depth):
    return (key_hash[depth // 8] >> (7 - depth % 8)) & 1

def subtree(entries, depth):
    if not entries:
        return bytes(32)
    if len(entries) == 1:
        return H(b"\x00" + entries[0][0] + entries[0][1])
    left = [e for e in entries if bit(e[0], depth) == 0]
    right = [e for e in entries if bit(e[0], depth) == 1]
    return H(b"\x01" + subtree(left, depth + 1) + subtree(right, depth + 1))

# --- §2, §3 files and records; §11 the audit -------------------------------------------

def records(directory):
    names = sorted(n for n in os.listdir(directory) if n.startswith("segment-") and n.endswith(".log"))
    for name in names:
        data = open(os.path.join(directory, name), "rb").read()
        at = 0
        while at < len(data):
            length, crc = struct.unpack("<II", data[at:at + 8])
            body = data[at + 8:at + 8 + length]
            if length < 1 or len(body) != length or crc32c(body) != crc:
                raise ValueError("damaged or torn record in %s at byte %d" % (name, at))
            yield body[0], body[1:]
            at += 8 + length

def audit(directory):
    state = State(config_from_json(json.load(open(os.path.join(directory, "cluster.json")))))
    cluster = state.cluster
    block_hashes, roots, results, timestamp, certified = [], [], [], 0, 0
    block_configs = []  # the configuration (and epoch) in force at each height
    for kind, payload in records(os.path.join(directory, "blocks")):
        if kind == 1:
            header, requests, cert = read_entry(payload)
            h = len(block_hashes) + 1
            # The epoch in force at this height and its validators (§18.4).
            config, epoch = state.config, state.epoch
            validators, order = config["validators"], config["order"]
            n = len(order)
            quorum = (n + (n - 1) // 3 + 2) // 2
            assert header["epoch"] == epoch, "height %d: names epoch %d, not %d" % (h, header["epoch"], epoch)
            block_hash = tagged("bulwark/v1/block", cluster, header["encoding"])
            assert header["height"] == h, "height %d: wrong height" % h
            assert header["cluster"] == cluster, "height %d: another cluster" % h
            assert header["prev"] == (block_hashes[-1] if block_hashes else bytes(32)), "height %d: prevBlockHash" % h
            assert header["historyRoot"] == merkle_root([leaf(b) for b in block_hashes]), "height %d: historyRoot" % h
            assert header["timestamp"] >= timestamp, "height %d: timestamp" % h
            digests = [tagged("bulwark/v1/request-digest", cluster, q["encoding"]) for q in requests]
            assert header["txRoot"] == merkle_root([leaf(d) for d in digests]), "height %d: txRoot" % h
            assert header["proposer"] == order[header["view"] % n], "height %d: proposer is not the primary" % h
            for i, q in enumerate(requests):
                message = domain("bulwark/v1/request", cluster, q["signed"])
                assert ed25519_verify(q["client"], message, q["signature"]), "height %d: request %d signature" % (h, i)
            assert cert["height"] == h and cert["blockHash"] == block_hash, "height %d: certificate names another block" % h
            assert cert["view"] >= header["view"], "height %d: certificate view below the block's" % h
            assert check_votes(cert["votes"], validators, quorum, lambda r: domain(
                "bulwark/v1/commit", cluster, u64(cert["view"]) + u64(h) + block_hash + u16(r))), "height %d: commit certificate" % h
            block_hashes.append(block_hash)
            timestamp = header["timestamp"]
            results.append(state.execute(h, requests))
            roots.append(state.state_root())
            block_configs.append(config)
        elif kind == 2:
            cert = read_execution_certificate(payload)
            h = cert["height"]
            assert 1 <= h <= len(block_hashes) and cert["blockHash"] == block_hashes[h - 1], "execution certificate %d: block" % h
            config = block_configs[h - 1]
            validators = config["validators"]
            n = len(validators)
            quorum = (n + (n - 1) // 3 + 2) // 2
            assert h % config["params"]["checkpointInterval"] == 0, "execution certificate %d: not a checkpoint height" % h
            assert check_votes(cert["votes"], validators, quorum, lambda r: domain(
                "bulwark/v1/checkpoint", cluster, u64(h) + cert["blockHash"] + cert["stateRoot"] + u16(r))), \
                "execution certificate %d: votes" % h
            assert cert["stateRoot"] == roots[h - 1], "execution certificate %d: state root differs from the replay" % h
            certified = max(certified, h)
        else:
            raise ValueError("unknown record type %d" % kind)
    return block_hashes, roots, results, certified

def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "spec/vectors/ledger"
    try:
        block_hashes, roots, results, certified = audit(directory)
    except (AssertionError, ValueError) as problem:
        print("FAILED: %s" % problem)
        return 1
    expected_path = os.path.join(directory, "expected.json")
    if os.path.exists(expected_path):
        expected = json.load(open(expected_path))["heights"]
        if len(expected) != len(block_hashes):
            print("FAILED: %d blocks, expected %d" % (len(block_hashes), len(expected)))
            return 1
        for i, want in enumerate(expected):
            h = i + 1
            digest = merkle_root([leaf(b) for b in block_hashes[:h]])
            got = {"blockHash": block_hashes[i].hex(), "ledgerDigest": "%d:%s" % (h, digest.hex()),
                   "stateRoot": roots[i].hex(),
                   "requests": [{"outcome": o} if r is None else {"outcome": o, "result": r.hex()} for o, r in results[i]]}
            for field, value in got.items():
                if want[field] != value:
                    print("FAILED: height %d: %s is %s, expected %s" % (h, field, value, want[field]))
                    return 1
    print("ok: %d blocks, state certified through height %d, ledger digest %d:%s" % (
        len(block_hashes), certified, len(block_hashes), merkle_root([leaf(b) for b in block_hashes]).hex()))
    return 0

if __name__ == "__main__":
    sys.exit(main())
