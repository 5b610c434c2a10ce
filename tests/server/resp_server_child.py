"""A RESP server in a process of its own, for tests that kill it (SIGKILL) or load it.

``python resp_server_child.py DATA_DIR [--durability full] [--password P]`` opens
(or creates) the database, serves it on a free port of 127.0.0.1, prints ``PORT n``
once listening, and stops gracefully on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import hmac
import signal

import colibri_mm as cm
from colibri_mm.server.resp_server import RespServer
from colibri_mm.server.resp_settings import RespSettings


async def serve(db: cm.Database, settings: RespSettings) -> None:
    server = RespServer(db, settings)
    await server.start()
    print(f"PORT {server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(drain_timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("--durability", default="full")
    parser.add_argument("--password")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    password = args.password

    def password_check(candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), password.encode())

    settings = RespSettings(port=args.port, flushdb_enabled=True,
                            password_check=password_check if password else None)
    with cm.connect(args.data_dir, create=True, durability=args.durability) as db:
        asyncio.run(serve(db, settings))


if __name__ == "__main__":
    main()
