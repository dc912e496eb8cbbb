#!/usr/bin/env python3
"""Independent verifier for an oms-upgrade ledger export (RECORD.md, export format v1).

Checks an export written by `oms-upgrade ledger export` without any Rust code: it re-parses
every record from its base64 `stored` bytes, recomputes the BLAKE3 hash chain and, given a
checkpoint file, checks the tail against it. It prints the same verdict as
`oms-upgrade ledger verify` (OK with count and head, or the first bad seq and the kind).
With --pubkey, the checkpoint must be a signed one (RECORD.md section 3.1) whose Ed25519
signature verifies with that key; otherwise it is REJECTED before the chain is looked at.

An export may hold several ledgers, one section each (header line, then its records), as
`oms-upgrade fleet export` writes; each is verified on its own, and --fleet adds a summary.

Usage: verify_export.py EXPORT.jsonl [--anchor CHECKPOINT [--pubkey KEY]] [--chain-only] [--fleet] [--json]
KEY is `ed25519:<64 hex>` or a file holding it (as written by `oms-upgrade ledger keygen`).
Exit codes: 0 intact (every ledger), 3 broken (any ledger) (or the checkpoint's signature rejected), 5 bad input
(unreadable export/checkpoint/key, not an export).

Needs the `blake3` package from PyPI, and `cryptography` for --pubkey; validates lines
against export-line.schema.json when the `jsonschema` package is installed.
"""

import argparse
import base64
import binascii
import json
import os
import re
import struct
import sys
import uuid
from datetime import datetime

import blake3

CONTEXT = "oms-upgrade 2026-11-25 ledger record v1"
MAGIC = b"OMSL"
FORMAT_VERSION = 1
HASH_LEN = 32
ZERO = bytes(32)
FIXED = 86  # offset of the first variable-length field

# Signed checkpoints (RECORD.md section 3.1).
SIGNATURE_CONTEXT = b"oms-upgrade 2026-11-25 checkpoint signature v2"
V2_FIELDS = ("ledger-id", "seq", "head", "time", "key-id", "signature")
PUBLIC_KEY_PREFIX = "ed25519:"
TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z", re.ASCII)
KEY_ID_RE = re.compile(r"[0-9a-fA-F]{16}", re.ASCII)
SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{128}", re.ASCII)


class Malformed(Exception):
    """The stored bytes do not follow the record layout (kind in .kind)."""

    def __init__(self, kind, detail):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class BadInput(Exception):
    """The export or checkpoint cannot be read at all."""


def parse_record(stored):
    """Parses stored bytes (RECORD.md 2.1); returns a dict or raises Malformed."""
    if len(stored) < 6:
        raise Malformed("malformed_record", f"only {len(stored)} bytes")
    if stored[:4] != MAGIC:
        raise Malformed("malformed_record", "bad magic")
    (version,) = struct.unpack(">H", stored[4:6])
    if version != FORMAT_VERSION:
        raise Malformed("unknown_format_version", f"record format version {version}")
    if len(stored) < FIXED + 2 * 3 + 2 + 4 + HASH_LEN:
        raise Malformed("malformed_record", f"only {len(stored)} bytes")
    body, stored_hash = stored[:-HASH_LEN], stored[-HASH_LEN:]
    pos = FIXED

    def take(n, field):
        nonlocal pos
        if pos + n > len(body):
            raise Malformed("malformed_record", f"the {field} field runs past the end")
        out = body[pos : pos + n]
        pos += n
        return out

    def text(field):
        (n,) = struct.unpack(">H", take(2, field))
        try:
            return take(n, field).decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("malformed_record", f"the {field} field is not UTF-8")

    operator = text("operator")
    host = text("host")
    event_type = text("event type")
    (schema_version,) = struct.unpack(">H", take(2, "schema version"))
    (plen,) = struct.unpack(">I", take(4, "payload length"))
    take(plen, "payload")
    if pos != len(body):
        raise Malformed("malformed_record", f"{len(body) - pos} bytes after the payload")
    (seq,) = struct.unpack(">Q", body[6:14])
    return {
        "seq": seq,
        "ledger_id": bytes(body[14:30]),
        "prev_hash": bytes(body[30:62]),
        "body": body,
        "hash": bytes(stored_hash),
        "event_type": event_type,
        "schema_version": schema_version,
        "operator": operator,
        "host": host,
    }


def record_hash(body):
    return blake3.blake3(body, derive_key_context=CONTEXT).digest()


def parse_anchor(text, origin):
    """Parses checkpoint text v1 or v2 (RECORD.md section 3)."""
    lines = [l.strip() for l in text.splitlines()]
    lines = [l for l in lines if l and not l.startswith("#")]
    if lines and lines[0] == "oms-upgrade-checkpoint v2":
        return parse_signed_anchor(lines, origin)
    if not lines or lines[0] != "oms-upgrade-checkpoint v1":
        if lines and lines[0].startswith("oms-upgrade-checkpoint "):
            raise BadInput(f"{origin}: checkpoint format {lines[0].split(' ', 1)[1]}, only v1 and v2 are known")
        raise BadInput(f"{origin}: the first line must be `oms-upgrade-checkpoint v1` or `v2`")
    fields = {}
    for line in lines[1:]:
        if ":" not in line:
            raise BadInput(f"{origin}: line `{line}` is not `field: value`")
        k, v = (s.strip() for s in line.split(":", 1))
        if k not in ("ledger-id", "seq", "head"):
            raise BadInput(f"{origin}: unknown field `{k}`")
        if k in fields:
            raise BadInput(f"{origin}: field `{k}` appears twice")
        fields[k] = v
    for k in ("ledger-id", "seq", "head"):
        if k not in fields:
            raise BadInput(f"{origin}: field `{k}` is missing")
    try:
        ledger_id = uuid.UUID(fields["ledger-id"]).bytes
        seq = int(fields["seq"])
        head = bytes.fromhex(fields["head"])
    except ValueError as e:
        raise BadInput(f"{origin}: {e}")
    if seq < 1 or len(head) != 32 or not fields["seq"].isdigit():
        raise BadInput(f"{origin}: seq must be a positive integer and head 64 hex characters")
    return {"ledger_id": ledger_id, "seq": seq, "head": head, "signed": None}


def parse_signed_anchor(lines, origin):
    """Parses checkpoint text v2: the v1 fields, time, key-id and signature, in this order."""
    if len(lines) != 1 + len(V2_FIELDS):
        raise BadInput(f"{origin}: a v2 checkpoint has exactly these lines after its first, in this order: {', '.join(V2_FIELDS)}")
    values = []
    for line, name in zip(lines[1:], V2_FIELDS):
        k, sep, v = line.partition(":")
        if not sep or k.strip() != name:
            raise BadInput(f"{origin}: line `{line}` should be `{name}: ...`")
        values.append(v.strip())
    anchor = parse_anchor("\n".join(["oms-upgrade-checkpoint v1"] + lines[1:4]), origin)
    time, key_id, signature = values[3], values[4], values[5]
    if not TIME_RE.fullmatch(time):
        raise BadInput(f"{origin}: time `{time}` is not a UTC time like 2026-11-25T10:00:00.123456Z")
    try:
        datetime.strptime(time[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise BadInput(f"{origin}: time `{time}` is not a valid date and time")
    if not KEY_ID_RE.fullmatch(key_id):
        raise BadInput(f"{origin}: key-id `{key_id}` is not 16 hex characters")
    if not SIGNATURE_RE.fullmatch(signature):
        raise BadInput(f"{origin}: signature is not 128 hex characters")
    # The signed bytes: the context, a NUL, then the first five lines as they stand, each
    # ending in one LF.
    signed_lines = "".join(l + "\n" for l in lines[:5])
    anchor["signed"] = {
        "time": time,
        "key_id": key_id.lower(),
        "signature": bytes.fromhex(signature),
        "message": SIGNATURE_CONTEXT + b"\x00" + signed_lines.encode("utf-8"),
    }
    return anchor


def parse_public_key(arg):
    """`ed25519:<64 hex>`, or a file holding it (blank and `#` lines ignored)."""
    if arg.strip().startswith(PUBLIC_KEY_PREFIX):
        text, origin = arg, "the --pubkey value"
    else:
        try:
            with open(arg, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise BadInput(f"cannot read public key file {arg}: {e.strerror}")
        origin = f"public key file {arg}"
    lines = [l.strip() for l in text.splitlines()]
    lines = [l for l in lines if l and not l.startswith("#")]
    if len(lines) != 1 or not lines[0].startswith(PUBLIC_KEY_PREFIX):
        raise BadInput(f"{origin} is not an oms-upgrade public key (`ed25519:` and 64 hex characters)")
    hex_part = lines[0][len(PUBLIC_KEY_PREFIX):]
    if not re.fullmatch(r"[0-9a-fA-F]{64}", hex_part, re.ASCII):
        raise BadInput(f"{origin}: the key is not 64 hex characters")
    return bytes.fromhex(hex_part)


def key_id(public_key):
    """The first 8 bytes of the public key's BLAKE3 hash, in hex."""
    return blake3.blake3(public_key).digest()[:8].hex()


def check_signature(anchor, public_key):
    """None when the checkpoint is signed by `public_key`, else (kind, detail)."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        raise BadInput("--pubkey needs the `cryptography` package (pip install cryptography)")
    signed = anchor["signed"]
    if signed is None:
        return ("unsigned_checkpoint", "the checkpoint is not signed (format v1) but a public key was given")
    given = key_id(public_key)
    if signed["key_id"] != given:
        return ("key_mismatch", f"the checkpoint was signed by key {signed['key_id']}, not by the given key {given}")
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        raise BadInput("the public key is not an Ed25519 public key")
    try:
        key.verify(signed["signature"], signed["message"])
    except InvalidSignature:
        return ("bad_signature", f"the signature does not verify with key {given}: the checkpoint was changed after signing, or the signature is forged")
    return None


def load_validator():
    try:
        import jsonschema
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "export-line.schema.json")
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    return jsonschema.Draft202012Validator(schema)


class Verifier:
    """Mirrors src/ledger/verify.rs check by check (RECORD.md 2.3)."""

    def __init__(self, ledger_id, anchor, chain_only):
        self.ledger_id = ledger_id
        self.anchor = anchor
        self.chain_only = chain_only
        self.count = 0
        self.prev = ZERO
        self.problem = None
        if anchor and anchor["ledger_id"] != ledger_id:
            self.problem = (1, "anchor_ledger_mismatch", "the checkpoint is for another ledger")

    def fail(self, seq, kind, detail):
        self.problem = (seq, kind, detail)
        return False

    def push(self, line):
        if self.problem:
            return False
        expected = self.count + 1
        key = bytes.fromhex(line["key"])
        stored = base64.b64decode(line["stored"], validate=True)
        if len(key) != 8:
            return self.fail(expected, "malformed_key", f"a {len(key)}-byte key")
        (seq,) = struct.unpack(">Q", key)
        # The convenience fields must tell a reader the truth about `key` and `stored`.
        inconsistent = line["seq"] != seq or (
            line["hash"] is not None and line["hash"] != stored[-HASH_LEN:].hex()
        )
        try:
            rec = parse_record(stored)
        except Malformed as m:
            rec, malformed = None, m
        if rec is not None and line["prev_hash"] != rec["prev_hash"].hex():
            inconsistent = True
        if inconsistent:
            return self.fail(seq, "export_inconsistent", "seq/hash/prev_hash disagree with key/stored")
        if seq > expected:
            return self.fail(expected, "gap", f"no record under seq {expected}; the next one is seq {seq}")
        if seq < expected:
            return self.fail(seq, "reordered", f"keys out of order: seq {seq} after seq {self.count}")
        if rec is None:
            return self.fail(seq, malformed.kind, malformed.detail)
        computed = record_hash(rec["body"])
        if computed != rec["hash"]:
            return self.fail(seq, "hash_mismatch", f"stored hash {rec['hash'].hex()}, the stored bytes hash to {computed.hex()}")
        if rec["seq"] != seq:
            return self.fail(seq, "reordered", f"the record stored under seq {seq} says it is seq {rec['seq']}")
        if rec["ledger_id"] != self.ledger_id:
            return self.fail(seq, "wrong_ledger_id", f"the record belongs to ledger {uuid.UUID(bytes=rec['ledger_id'])}")
        if rec["prev_hash"] != self.prev:
            return self.fail(seq, "broken_link", f"its previous hash is {rec['prev_hash'].hex()}, expected {self.prev.hex()}")
        if not self.chain_only:
            decoded = line.get("decoded") or {}
            if decoded.get("payload_error") is not None:
                return self.fail(seq, "undecodable_payload", f"the exporter could not decode it: {decoded['payload_error']}")
        if self.anchor and self.anchor["seq"] == seq and self.anchor["head"] != rec["hash"]:
            return self.fail(seq, "head_mismatch_anchor", "the record at the checkpoint's seq has another hash")
        self.count = seq
        self.prev = rec["hash"]
        return True

    def finish(self):
        if self.problem is None and self.anchor and self.count < self.anchor["seq"]:
            self.problem = (
                self.count + 1,
                "tail_shorter_than_anchor",
                f"the export ends at seq {self.count} but the checkpoint is at seq {self.anchor['seq']}",
            )
        return self.problem


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export", help="JSON Lines file written by `oms-upgrade ledger export`")
    ap.add_argument("--anchor", help="checkpoint file written by `oms-upgrade ledger checkpoint`")
    ap.add_argument("--pubkey", help="require the checkpoint to be signed by this key (`ed25519:<hex>` or a file)")
    ap.add_argument("--chain-only", action="store_true", help="do not check payload decoding")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--fleet", action="store_true", help="a fleet export: one verdict per ledger and a summary line")
    args = ap.parse_args(argv)

    try:
        anchor = None
        if args.anchor:
            try:
                with open(args.anchor, encoding="utf-8") as f:
                    anchor = parse_anchor(f.read(), f"checkpoint file {args.anchor}")
            except OSError as e:
                raise BadInput(f"cannot read checkpoint file {args.anchor}: {e.strerror}")
        if args.pubkey:
            if anchor is None:
                raise BadInput("--pubkey checks a signed checkpoint: give it with --anchor")
            rejected = check_signature(anchor, parse_public_key(args.pubkey))
            if rejected is not None:
                # A forged checkpoint vouches for nothing: the chain is not compared with it.
                if args.json:
                    print(json.dumps({
                        "ok": False,
                        "problem": {"seq": None, "kind": rejected[0], "detail": rejected[1]},
                        "exit_code": 3,
                    }))
                else:
                    print(f"REJECTED checkpoint: {rejected[0]}: {rejected[1]}")
                return 3
        try:
            f = open(args.export, encoding="utf-8")
        except OSError as e:
            raise BadInput(f"cannot read export {args.export}: {e.strerror}")
        validator = load_validator()
        with f:
            # One section per ledger: a header line, then its record lines. A fleet export
            # (`oms-upgrade fleet export`) has one section per ledger on the witness.
            sections = []
            verifier = None
            for n, raw in enumerate(f, start=1):
                try:
                    line = json.loads(raw)
                except ValueError as e:
                    raise BadInput(f"{args.export} line {n} is not JSON: {e}")
                if validator is not None:
                    errors = sorted(validator.iter_errors(line), key=str)
                    if errors:
                        raise BadInput(f"{args.export} line {n} does not match the schema: {errors[0].message}")
                if verifier is None or "format" in line:
                    if line.get("format") != "oms-upgrade-ledger-export" or line.get("version") != 1:
                        raise BadInput(f"{args.export} line {n} is not an export v1 header line")
                    ledger_id = uuid.UUID(line["ledger_id"])
                    if any(lid == ledger_id for lid, _ in sections):
                        raise BadInput(f"{args.export} line {n}: ledger {ledger_id} appears twice")
                    # The checkpoint is about one ledger: it is checked during that
                    # ledger's walk (its seq may lie in the middle).
                    mine = anchor if anchor is not None and anchor["ledger_id"] == ledger_id.bytes else None
                    verifier = Verifier(ledger_id.bytes, mine, args.chain_only)
                    sections.append((ledger_id, verifier))
                    continue
                try:
                    verifier.push(line)
                except (KeyError, TypeError, ValueError, binascii.Error) as e:
                    raise BadInput(f"{args.export} line {n} is not an export record line: {e}")
            if verifier is None:
                raise BadInput(f"{args.export} is empty")
            if anchor is not None and not any(v.anchor is not None for _, v in sections):
                if len(sections) > 1:
                    raise BadInput(f"the checkpoint is for ledger {uuid.UUID(bytes=anchor['ledger_id'])}, which is not in {args.export}")
                # One ledger, another ledger's checkpoint: reported as `ledger verify` does.
                only = sections[0][1]
                sections[0] = (sections[0][0], Verifier(only.ledger_id, anchor, args.chain_only))
            results = [(lid, v, v.finish()) for lid, v in sections]
    except BadInput as e:
        if args.json:
            print(json.dumps({"ok": False, "error": str(e), "exit_code": 5}))
        print(f"error: {e}", file=sys.stderr)
        return 5

    broken = sum(1 for _, _, p in results if p is not None)
    code = 0 if broken == 0 else 3

    def verdict(v, problem):
        return {
            "ok": problem is None,
            "records": v.count,
            "head_seq": v.count or None,
            "head_hash": v.prev.hex() if v.count else None,
            "problem": None if problem is None else {"seq": problem[0], "kind": problem[1], "detail": problem[2]},
        }

    if len(results) == 1 and not args.fleet:
        _, verifier, problem = results[0]
        head = (verifier.count, verifier.prev.hex()) if verifier.count else (None, None)
        if args.json:
            out = dict(verdict(verifier, problem), exit_code=code)
            if args.pubkey:
                out["signature"] = {"verified": True, "key_id": anchor["signed"]["key_id"], "time": anchor["signed"]["time"]}
            print(json.dumps(out))
        elif problem is None:
            print(f"OK: {verifier.count} records, head seq {head[0]} {head[1]}")
            if args.pubkey:
                print(f"signature valid: key-id {anchor['signed']['key_id']}, time {anchor['signed']['time']}")
        else:
            print(f"BROKEN at seq {problem[0]}: {problem[1]}: {problem[2]}")
        return code

    # Several ledgers (a fleet export), or --fleet: one verdict per ledger, then the count.
    if args.json:
        out = {
            "ok": broken == 0,
            "ledger_count": len(results),
            "broken": broken,
            "ledgers": [dict(verdict(v, p), ledger_id=str(lid)) for lid, v, p in results],
            "exit_code": code,
        }
        print(json.dumps(out))
        return code
    for lid, v, problem in results:
        if problem is None:
            print(f"ledger {lid}: OK: {v.count} records, head seq {v.count or None} {v.prev.hex() if v.count else None}")
        else:
            print(f"ledger {lid}: BROKEN at seq {problem[0]}: {problem[1]}: {problem[2]}")
    if args.fleet:
        verdict_word = "OK" if broken == 0 else "BROKEN"
        print(f"FLEET {verdict_word}: {len(results)} ledger(s), {len(results) - broken} intact, {broken} broken")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
