#!/usr/bin/env python3
"""An independent MQTT peer (paho-mqtt, PyJWT) for Lanyard's end-to-end tests.

Subcommands print one JSON object on stdout:
  connect   try an mTLS connection with a certificate; exit 0 only if CONNACK succeeded
  intrude   as one device, try to publish to and read another device's topics
  hold      connect with a (stolen) device certificate and stay connected, as a
            device ignoring commands would, until the broker drops it or --wait
            seconds pass; prints {"event": "connected", "time": …} when connected,
            then how and when the session ended (Unix times)
  forge     as the controller's identity, send a device a command (default: revoke,
            args {"reason": "keyCompromise"}) signed by the given key and chain, and
            report the device's ack. --cmd picks the command; --arg key=value (repeatable)
            and --args-file FILE (a JSON object of strings; --arg wins) replace the args.
"""
import argparse
import base64
import json
import ssl
import sys
import threading
import time
import uuid

import jwt
import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import serialization


def make_client(args, client_id):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=args.ca, certfile=args.cert, keyfile=args.key, cert_reqs=ssl.CERT_REQUIRED)
    return client


def connect(client, args, timeout=5.0):
    """Returns (connected, reason)."""
    done = threading.Event()
    result = {"connected": False, "reason": "timeout"}

    def on_connect(c, userdata, flags, reason_code, properties):
        result["connected"] = not reason_code.is_failure
        result["reason"] = str(reason_code)
        done.set()

    def on_disconnect(c, userdata, flags, reason_code, properties):
        if not done.is_set():
            result["reason"] = f"disconnected: {reason_code}"
            done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(args.host, args.port, keepalive=30)
    except Exception as e:  # TLS refusal surfaces here or in the loop
        return False, f"{type(e).__name__}: {e}"
    client.loop_start()
    done.wait(timeout)
    return result["connected"], result["reason"]


def cmd_connect(args):
    client = make_client(args, args.client_id)
    ok, reason = connect(client, args)
    client.loop_stop()
    print(json.dumps({"connected": ok, "reason": reason}))
    return 0 if ok else 1


def cmd_hold(args):
    client = make_client(args, args.client_id)
    lost = threading.Event()
    ended = {}

    ok, reason = connect(client, args)
    if not ok:
        client.loop_stop()
        print(json.dumps({"connected": False, "reason": reason}))
        return 1

    def on_disconnect(c, userdata, flags, reason_code, properties):
        ended.setdefault("time", time.time())
        ended.setdefault("reason", str(reason_code))
        lost.set()

    client.on_disconnect = on_disconnect
    client.reconnect_delay_set(min_delay=60, max_delay=60)  # one session only: no reconnect within the test
    print(json.dumps({"event": "connected", "time": time.time()}), flush=True)
    lost.wait(args.wait)
    client.loop_stop()
    print(json.dumps({"connected": True, "dropped": lost.is_set(), "droppedAt": ended.get("time"), "reason": ended.get("reason")}))
    return 0


def cmd_intrude(args):
    client = make_client(args, args.client_id)
    received = []
    granted = []
    client.on_message = lambda c, u, m: received.append({"topic": m.topic, "payload": m.payload.decode("utf-8", "replace")})
    client.on_subscribe = lambda c, u, mid, codes, props: granted.extend(str(x) for x in codes)
    ok, reason = connect(client, args)
    if not ok:
        print(json.dumps({"connected": False, "reason": reason}))
        return 1
    v = args.victim
    for t in (f"lanyard/v1/dev/{v}/cmd", f"lanyard/v1/dev/{v}/renew/res", f"lanyard/v1/enroll/{v}/res"):
        client.subscribe(t, qos=1)
    publishes = {
        f"lanyard/v1/dev/{v}/cmd": "not-a-jws.forged.command",
        f"lanyard/v1/dev/{v}/state": json.dumps({"v": 1, "state": "hacked"}),
        f"lanyard/v1/dev/{v}/ack": json.dumps({"v": 1, "jti": "x", "outcome": "done"}),
        f"lanyard/v1/dev/{v}/renew/req": json.dumps({"v": 1, "requestId": "intruder-0001", "csr": "x", "reason": "forced", "currentSerial": "00"}),
    }
    for topic, payload in publishes.items():
        client.publish(topic, payload, qos=1, retain=topic.endswith("/state"))
    time.sleep(args.wait)
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"connected": True, "received": received, "granted": granted, "published": list(publishes)}))
    return 0


def command_args(args):
    """The command's args: the historical revoke reason unless --arg/--args-file say otherwise."""
    if not args.arg and not args.args_file:
        return {"reason": "keyCompromise"}
    result = {}
    if args.args_file:
        with open(args.args_file, encoding="utf-8") as f:
            loaded = json.load(f)
        if not isinstance(loaded, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()):
            raise SystemExit("--args-file must hold a JSON object of strings")
        result.update(loaded)
    for item in args.arg:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--arg needs key=value, got {item!r}")
        result[key] = value
    return result


def cmd_forge(args):
    with open(args.signer_key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(args.signer_chain, "rb") as f:
        chain = x509.load_pem_x509_certificates(f.read())
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    now = int(time.time())
    jti = uuid.uuid4().hex
    claims = {"iss": "spiffe://forger", "sub": args.victim, "jti": jti, "seq": args.seq, "iat": now, "exp": now + 600,
              "cmd": args.cmd_name, "args": command_args(args)}
    token = jwt.encode(claims, key, algorithm="ES256", headers={"typ": "lanyard-cmd+jwt", "x5c": x5c})
    client = make_client(args, "lanyard-controller")
    acks = []
    client.on_message = lambda c, u, m: acks.append(json.loads(m.payload))
    ok, reason = connect(client, args)
    if not ok:
        print(json.dumps({"connected": False, "reason": reason}))
        return 1
    client.subscribe(f"lanyard/v1/dev/{args.victim}/ack", qos=1)
    time.sleep(0.5)
    client.publish(f"lanyard/v1/dev/{args.victim}/cmd", token, qos=1)
    deadline = time.time() + args.wait
    while time.time() < deadline and not any(a.get("jti") == jti for a in acks):
        time.sleep(0.1)
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"connected": True, "jti": jti, "acks": acks}))
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["connect", "hold", "intrude", "forge"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-id", default="peer")
    p.add_argument("--victim")
    p.add_argument("--signer-key")
    p.add_argument("--signer-chain")
    p.add_argument("--seq", type=int, default=1_000_000)
    p.add_argument("--cmd", dest="cmd_name", default="revoke")
    p.add_argument("--wait", type=float, default=2.0)
    p.add_argument("--arg", action="append", default=[], help="command argument key=value (repeatable)")
    p.add_argument("--args-file", help="JSON object of string command arguments")
    args = p.parse_args()
    handlers = {"connect": cmd_connect, "hold": cmd_hold, "intrude": cmd_intrude, "forge": cmd_forge}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
