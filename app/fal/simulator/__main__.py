"""`python -m app.fal.simulator [--host] [--port] [--state-dir]`: the simulator on its own."""

import argparse
import logging
import sys
from pathlib import Path

from app.fal.simulator.process import (
    DEFAULT_PORT,
    DEFAULT_STATE_DIR,
    LOOPBACK_HOSTS,
    SimulatorInfo,
    run_simulator,
)


def print_banner(info: SimulatorInfo) -> None:
    """Tell the operator how to point a fal-client process at this simulator."""
    print(f"Fal simulator listening on {info.base_url}", file=sys.stderr)
    print(f"JWKS: {info.jwks_url}", file=sys.stderr)
    print("fal-client environment (set before importing fal_client):", file=sys.stderr)
    for name, value in info.client_env().items():
        print(f"  export {name}={value}", file=sys.stderr)
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m app.fal.simulator",
        description="Fal.ai queue/webhook simulator on loopback HTTPS (knobs: FAL_SIMULATOR_*).",
    )
    parser.add_argument("--host", default="127.0.0.1", choices=LOOPBACK_HOSTS)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument(
        "--ready-file", type=Path, help="write {port, base_url, ca_file} here once listening"
    )
    parser.add_argument("--parent-pid", type=int, help="exit when this process goes away")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    run_simulator(
        args.host,
        args.port,
        args.state_dir,
        ready_file=args.ready_file,
        on_ready=print_banner,
        parent_pid=args.parent_pid,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()
