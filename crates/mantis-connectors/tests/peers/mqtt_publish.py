"""An MQTT device for the connector tests: paho-mqtt (a third-party client) publishing messages
to a broker and waiting until the broker acknowledged each one (QoS 1) or it was sent (QoS 0).

    python mqtt_publish.py --port PORT [--version 3.1.1|5] [--qos 0|1]
                           [--ca CA.pem --cert CLIENT.pem --key CLIENT.key] < messages

`messages` holds one JSON object per line: `{"topic": "...", "payload": "<text>"}`, with
`"retain": true` for a message the broker is to keep as the topic's last known value.
Prints `PUBLISHED <n>` and exits 0 when all were published; exits 1 with the reason otherwise
(connection refused, TLS handshake failed, no acknowledgement within the timeout).
"""

import argparse
import json
import sys
import threading
import uuid

import paho.mqtt.client as mqtt


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", default="3.1.1", choices=["3.1.1", "5"])
    parser.add_argument("--qos", type=int, default=1, choices=[0, 1])
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    messages = [json.loads(line) for line in sys.stdin if line.strip()]

    protocol = mqtt.MQTTv5 if args.version == "5" else mqtt.MQTTv311
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"paho-test-{uuid.uuid4().hex[:12]}",
        protocol=protocol,
    )
    if args.ca:
        client.tls_set(ca_certs=args.ca, certfile=args.cert, keyfile=args.key)
    connected = threading.Event()
    failure = []

    def on_connect(_client, _userdata, _flags, reason_code, _properties):
        if reason_code.is_failure:
            failure.append(f"connection refused: {reason_code}")
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(args.host, args.port, keepalive=30)
    except Exception as e:  # noqa: BLE001 - any failure is reported to the test
        print(f"cannot connect: {e}", file=sys.stderr)
        sys.exit(1)
    client.loop_start()
    if not connected.wait(args.timeout) or failure:
        print(failure[0] if failure else "no CONNACK", file=sys.stderr)
        sys.exit(1)
    infos = [
        client.publish(m["topic"], m["payload"], qos=args.qos, retain=bool(m.get("retain")))
        for m in messages
    ]
    for info in infos:
        info.wait_for_publish(timeout=args.timeout)
        if not info.is_published():
            print(f"message {info.mid} not acknowledged", file=sys.stderr)
            sys.exit(1)
    client.disconnect()
    client.loop_stop()
    print(f"PUBLISHED {len(infos)}", flush=True)


if __name__ == "__main__":
    main()
