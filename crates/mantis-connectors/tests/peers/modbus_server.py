"""A Modbus TCP device for the connector tests: pymodbus (a third-party implementation) serving
the registers described by a JSON spec.

    python modbus_server.py --port PORT --spec '{"unit": 1, "size": 64, "holding": [...], ...}'

Spec: `unit` (device id), `size` (registers/bits per table; reading at or past it is refused
with exception 0x02, Illegal data address), and per table (`holding`, `input`) a list of
`{"address": a, "type": "uint16|int16|uint32|int32|float32", "value": v,
"word_order": "big|little", "byte_swap": false}` encoded with pymodbus' own
`convert_to_registers` (bytes swapped inside each register when `byte_swap`), and per bit table
(`coils`, `discrete`) a list of `{"address": a, "value": true}`.

Prints `READY <port>` once listening; runs until killed.
"""

import argparse
import asyncio
import json
import sys

from pymodbus.client import ModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

TYPES = {
    "uint16": ModbusTcpClient.DATATYPE.UINT16,
    "int16": ModbusTcpClient.DATATYPE.INT16,
    "uint32": ModbusTcpClient.DATATYPE.UINT32,
    "int32": ModbusTcpClient.DATATYPE.INT32,
    "float32": ModbusTcpClient.DATATYPE.FLOAT32,
}


def registers(entries, size):
    words = [0] * size
    for e in entries:
        regs = ModbusTcpClient.convert_to_registers(
            e["value"], TYPES[e["type"]], word_order=e.get("word_order", "big")
        )
        if e.get("byte_swap", False):
            regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
        for i, r in enumerate(regs):
            words[e["address"] + i] = r
    return words


def bits(entries, size):
    values = [False] * size
    for e in entries:
        values[e["address"]] = bool(e["value"])
    return values


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spec", required=True)
    args = parser.parse_args()
    spec = json.loads(args.spec)
    size = spec.get("size", 64)
    # Four distinct tables (coils, discrete inputs, holding, input registers); addresses at or
    # past `size` are not defined, so the device answers them with an exception.
    device = SimDevice(
        id=spec.get("unit", 1),
        simdata=(
            [SimData(0, values=bits(spec.get("coils", []), size), datatype=DataType.BITS)],
            [SimData(0, values=bits(spec.get("discrete", []), size), datatype=DataType.BITS)],
            [SimData(0, values=registers(spec.get("holding", []), size), datatype=DataType.REGISTERS)],
            [SimData(0, values=registers(spec.get("input", []), size), datatype=DataType.REGISTERS)],
        ),
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", args.port))
    task = asyncio.create_task(server.serve_forever())
    # Announce readiness only once the port accepts connections.
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", args.port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    print(f"READY {args.port}", flush=True)
    await task


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
