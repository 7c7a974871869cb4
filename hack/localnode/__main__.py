"""``python -m localnode --kubeconfig PATH [options]``: run a local node in the foreground.

Needs ``src`` and ``hack`` on ``PYTHONPATH``. SIGTERM or SIGINT stops it: every kernel
process is stopped and the exit status is 0. Exit status 1: it could not start (e.g. the
loopback range is not usable); 2: bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from informers import RestClient, close_api_client, new_api_client
from localnode.kubelet import LocalNode, StartupError
from localnode.settings import DEFAULT_LAUNCH_SCRIPT, DEFAULT_STATE_DIR, Settings

log = logging.getLogger("localnode")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="localnode", description=__doc__)
    add = parser.add_argument
    add("--kubeconfig", help="kubeconfig of the cluster (default: in-cluster or $KUBECONFIG)")
    add("--context", help="kubeconfig context")
    add("--node-name", default="local-node", help="name of the Node (default: %(default)s)")
    add("--no-processes", action="store_true", help="status only: Running+Ready, no process")
    add("--launch-script", type=Path, default=DEFAULT_LAUNCH_SCRIPT, help="run with bash")
    add("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="per-Pod dirs and logs")
    add("--namespace", help="only Pods of this namespace (default: all namespaces)")
    add("--workers", type=int, default=8, help="worker threads (default: %(default)s)")
    add("--max-grace", type=float, default=30.0, help="cap of a Pod's grace period, seconds")
    add("--shutdown-grace", type=float, default=10.0, help="SIGTERM → SIGKILL at node exit")
    add("--heartbeat", type=float, default=10.0, help="Node heartbeat period, seconds")
    add("--log-file", type=Path, help="append the log here instead of stderr")
    add("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add("--ready-file", type=Path, help="written once the node is ready, removed at exit")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        node_name=args.node_name,
        state_dir=args.state_dir.resolve(),
        launch_script=args.launch_script.resolve(),
        python=sys.executable,
        no_processes=args.no_processes,
        namespace=args.namespace,
        workers=args.workers,
        max_grace_seconds=args.max_grace,
        shutdown_grace_seconds=args.shutdown_grace,
        heartbeat_seconds=args.heartbeat,
    )


def setup_logging(log_file: Path | None, level: str) -> None:
    handler: logging.Handler
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_file, args.log_level)
    settings = settings_from(args)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ready_file: Path | None = args.ready_file

    def on_ready() -> None:
        if ready_file is not None:
            ready_file.write_text(f"{settings.node_name}\n")

    api = new_api_client(args.kubeconfig, context=args.context)
    try:
        LocalNode(RestClient(api, user_agent="localnode/0.1"), settings).run(stop, on_ready)
    except StartupError as err:
        log.error("cannot start: %s", err)
        return 1
    finally:
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
        close_api_client(api)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
