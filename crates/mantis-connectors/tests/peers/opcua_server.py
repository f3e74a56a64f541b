"""A third-party OPC UA server for the connector tests (Python `asyncua`, not written by MANTIS).

Usage: opcua_server.py --port P --certdir DIR [--user NAME:PASSWORD] [--epoch N]

Endpoints: security policy None, and Basic256Sha256 with Sign and with SignAndEncrypt (the
server's certificate and key are made in DIR on the first start and kept, so a restarted server
presents the same certificate). Identity: anonymous, and user name/password when `--user` is
given (then a wrong password is refused with BadUserAccessDenied).

Address space, namespace `urn:mantis:test-plant` (index 2), under Objects/Line1:
- `Line1.Temperature` (Double): 20 + (tick mod 50) * 0.2, changes every tick (100 ms);
- `Line1.Ramp` (Double): +0.1 every tick (for deadband tests);
- `Line1.Counter` (Int32): the tick number;
- `Line1.Running` (Boolean): true;
- `Line1.Epoch` (Int32): the value of `--epoch` (tells a restarted server from the first one);
- `Line1.Broken` (Double): 0 with status BadSensorFailure;
- `Line1.Doubtful` (Double): 42 with status UncertainLastUsableValue.

Prints `READY <port>` once it accepts connections; runs until killed.
"""

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

URI = "urn:mantis:test-plant"


class OneUser(UserManager):
    """Anonymous sessions, and one user name with its password."""

    def __init__(self, name, password):
        self.name = name
        self.password = password

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username is None:
            return User(role=UserRole.User)
        if username == self.name and password == self.password:
            return User(role=UserRole.User, name=username)
        return None


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certdir", required=True)
    parser.add_argument("--user", default=None)
    parser.add_argument("--epoch", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    user_manager = None
    if args.user:
        name, _, password = args.user.partition(":")
        user_manager = OneUser(name, password)
    server = Server(user_manager=user_manager)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}/mantis-test/")
    server.set_server_name("MANTIS test plant (asyncua)")
    await server.set_application_uri("urn:mantis:test-plant:server")
    server.set_security_policy(
        [
            ua.SecurityPolicyType.NoSecurity,
            ua.SecurityPolicyType.Basic256Sha256_Sign,
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ]
    )
    tokens = [ua.AnonymousIdentityToken]
    if args.user:
        tokens.append(ua.UserNameIdentityToken)
    server.set_identity_tokens(tokens)

    certdir = Path(args.certdir)
    certdir.mkdir(parents=True, exist_ok=True)
    cert, key = certdir / "server-cert.der", certdir / "server-key.pem"
    await setup_self_signed_certificate(
        key,
        cert,
        "urn:mantis:test-plant:server",
        "127.0.0.1",
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        {"commonName": "MANTIS test plant"},
    )
    await server.load_certificate(str(cert))
    await server.load_private_key(str(key))

    ns = await server.register_namespace(URI)
    line = await server.nodes.objects.add_object(ua.NodeId("Line1", ns), ua.QualifiedName("Line1", ns))

    async def var(name, value, vtype):
        return await line.add_variable(
            ua.NodeId(f"Line1.{name}", ns), ua.QualifiedName(name, ns), ua.Variant(value, vtype)
        )

    temperature = await var("Temperature", 20.0, ua.VariantType.Double)
    ramp = await var("Ramp", 0.0, ua.VariantType.Double)
    counter = await var("Counter", 0, ua.VariantType.Int32)
    await var("Running", True, ua.VariantType.Boolean)
    await var("Epoch", args.epoch, ua.VariantType.Int32)
    broken = await var("Broken", 0.0, ua.VariantType.Double)
    doubtful = await var("Doubtful", 42.0, ua.VariantType.Double)
    await broken.write_value(
        ua.DataValue(ua.Variant(0.0, ua.VariantType.Double), StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure))
    )
    await doubtful.write_value(
        ua.DataValue(
            ua.Variant(42.0, ua.VariantType.Double),
            StatusCode=ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue),
        )
    )

    async with server:
        # Announce readiness only once the port accepts connections.
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", args.port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        print(f"READY {args.port}", flush=True)
        tick = 0
        while True:
            await asyncio.sleep(0.1)
            tick += 1
            await temperature.write_value(ua.Variant(20.0 + (tick % 50) * 0.2, ua.VariantType.Double))
            await ramp.write_value(ua.Variant(tick * 0.1, ua.VariantType.Double))
            await counter.write_value(ua.Variant(tick, ua.VariantType.Int32))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
