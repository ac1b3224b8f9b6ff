"""``python -m orgo_async.emulator``: serve the emulator until SIGINT or SIGTERM.

The first (and only) line on stdout is ``ORGO_BASE_URL=http://HOST:PORT/api``
(``https://`` with ``--tls``), printed once the socket accepts connections;
logs go to stderr. The exit status is 0 after a signal, 2 for bad arguments
(and for ``--tls`` without ``cryptography``), 1 when it cannot serve.

The API key is ``--api-key``, else the environment's ``ORGO_EMULATOR_API_KEY``,
else ``sk_emulator``. Whoever holds the key has a shell on the emulated
computers, and every local user can read a command line (``ps``), so a program
that starts the emulator passes the key in the environment.

``--tls`` serves HTTPS and WSS with a self-signed certificate made at start;
``--tls-cert-out PATH`` writes its PEM to ``PATH`` (whole, before the
``ORGO_BASE_URL=`` line), so that a client can trust exactly it.
``--monitor-loop-ms MS`` samples the emulator's own event-loop lag every
``MS`` ms (``loop_lag_ms`` in ``GET /_emulator/counters``).

``add_arguments`` / ``config_from_args`` / ``faults_from_args`` / ``serve``
let another command line (``orgo-async emulator``) reuse the same options.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Final, TextIO

from .app import Emulator
from .config import BootTime, EmulatorConfig
from .faults import FaultRule
from .tls import require_cryptography

__all__ = ["API_KEY_ENV", "add_arguments", "config_from_args", "faults_from_args", "main", "serve"]

log = logging.getLogger("orgo_async.emulator")

API_KEY_ENV: Final = "ORGO_EMULATOR_API_KEY"
"""The environment variable the key is read from when ``--api-key`` is not given."""
_DEFAULT_KEY: Final = "sk_emulator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser``."""
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    server.add_argument("--port", type=int, default=0, help="TCP port, 0 = any free port")
    server.add_argument(
        "--api-key",
        default=None,
        help=f"the key clients must send (default: from the environment, else {_DEFAULT_KEY});"
        " every local user can read a command line with ps: prefer the environment",
    )
    server.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS and WSS with a self-signed certificate for localhost/127.0.0.1"
        " (needs cryptography: pip install 'orgo_async[tls]')",
    )
    server.add_argument(
        "--tls-cert-out",
        metavar="PATH",
        default=None,
        help="with --tls: write the certificate (PEM) to PATH before announcing the address,"
        " for clients to trust",
    )
    server.add_argument(
        "--monitor-loop-ms",
        type=float,
        metavar="MS",
        default=None,
        help="sample the emulator's event-loop lag every MS ms (loop_lag_ms in"
        " /_emulator/counters; default off)",
    )
    server.add_argument("--access-log", action="store_true", help="log every request to stderr")
    server.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="stderr log level (default %(default)s)",
    )

    boot = parser.add_argument_group("computers")
    boot.add_argument("--boot-ms", type=float, default=300.0, help="boot time (fixed/median/low)")
    boot.add_argument(
        "--boot-jitter-ms", type=float, default=20.0, help="fixed: +/- uniform jitter"
    )
    boot.add_argument(
        "--boot-dist",
        choices=["fixed", "uniform", "long-tail"],
        default="fixed",
        help="fixed = boot-ms +/- jitter; uniform = [boot-ms, boot-max-ms];"
        " long-tail = lognormal with median boot-ms, capped at boot-max-ms",
    )
    boot.add_argument(
        "--boot-max-ms", type=float, default=None, help="uniform high / long-tail cap"
    )
    boot.add_argument("--boot-sigma", type=float, default=0.5, help="long-tail log-space sigma")
    boot.add_argument("--stop-ms", type=float, default=50.0, help="time spent in 'stopping'")
    boot.add_argument(
        "--boot-failure-rate", type=float, default=0.0, help="probability a boot ends in 'error'"
    )
    boot.add_argument(
        "--create-rate", type=float, default=None, help="max creates per second per workspace"
    )
    boot.add_argument("--max-computers", type=int, default=None, help="plan limit (403 beyond)")
    boot.add_argument("--seed", type=int, default=None, help="seed for boot times and faults")

    drift = parser.add_argument_group("production drift")
    drift.add_argument("--legacy-restart", action="store_true", help="restart answers 405")
    drift.add_argument(
        "--workspaces-path-missing", action="store_true", help="/api/workspaces... answers 404"
    )
    drift.add_argument("--list-key", choices=["workspaces", "projects"], default="workspaces")
    drift.add_argument(
        "--omit-instance-id", action="store_true", help="computers carry only fly_instance_id"
    )

    desktop = parser.add_argument_group("desktop sockets")
    desktop.add_argument(
        "--ws-auth",
        choices=["close", "reject", "query_only", "header_only"],
        default="close",
        help="how a bad socket token is refused: close = upgrade then close 4401 (Orgo's way),"
        " reject = HTTP 401, query_only / header_only = only ?token= / only Bearer is"
        " accepted, anything else is HTTP 401 (default %(default)s)",
    )
    desktop.add_argument(
        "--audio-tone-hz", type=float, default=440.0, help="tone streamed by /ws/audio"
    )
    desktop.add_argument(
        "--workdir-root",
        default=None,
        help="directory for the computers' working directories (default: a temporary"
        " directory removed at exit)",
    )
    desktop.add_argument(
        "--screenshot-ms",
        type=float,
        default=20.0,
        help="time each REST screenshot takes to capture (default %(default)s)",
    )
    desktop.add_argument(
        "--desktop-backend",
        choices=["synthetic", "xvnc", "auto"],
        default="synthetic",
        help="what serves /ws/websockify, the desktop actions and screenshots: synthetic ="
        " a framebuffer drawn by the emulator, xvnc = a real TigerVNC Xvnc per computer,"
        " driven with xdotool, in its sandbox with a window manager and a terminal (needs"
        " tigervnc-standalone-server, tigervnc-tools, xdotool, bubblewrap, openbox, xterm),"
        " auto = xvnc where that works, else synthetic (default %(default)s)",
    )
    desktop.add_argument(
        "--desktop-pool",
        type=int,
        default=None,
        help="real desktops booted ahead, so that a create reaches healthy in the boot time"
        " (default: 2 with --desktop-backend xvnc or auto, else 0)",
    )
    desktop.add_argument(
        "--sandbox",
        choices=["auto", "on", "off"],
        default="auto",
        help="run each computer's processes in a bubblewrap sandbox of its own: auto = where"
        " sandboxes work, on = always (fail to start otherwise), off = never (default"
        " %(default)s)",
    )
    desktop.add_argument(
        "--sandbox-network",
        action="store_true",
        help="give sandboxes the host's network (default: only a loopback of their own)",
    )
    desktop.add_argument(
        "--idle-seconds",
        type=float,
        default=30.0,
        help="seconds without terminal input before an 'idle' event (default %(default)s)",
    )

    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--fault-429-rate", type=float, default=0.0, help="probability of 429 rate_limited"
    )
    faults.add_argument(
        "--fault-503-rate", type=float, default=0.0, help="probability of 503 resuming"
    )
    faults.add_argument(
        "--retry-after", type=float, default=1.0, help="Retry-After of injected faults (s)"
    )


def _boot_from_args(args: argparse.Namespace) -> BootTime:
    seconds = args.boot_ms / 1000
    high = None if args.boot_max_ms is None else args.boot_max_ms / 1000
    if args.boot_dist == "fixed":
        return BootTime.fixed(seconds, jitter=args.boot_jitter_ms / 1000)
    if args.boot_dist == "uniform":
        if high is None:
            raise ValueError("--boot-dist uniform needs --boot-max-ms")
        return BootTime.uniform(seconds, high)
    return BootTime.long_tail(seconds, sigma=args.boot_sigma, cap=high)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """Build the config from parsed options; ``ValueError`` names a bad value.

    Without ``--api-key`` the key is ``ORGO_EMULATOR_API_KEY``, else
    ``sk_emulator``. ``--tls`` without ``cryptography`` is a ``ValueError``
    that says what to install.
    """
    if args.tls_cert_out is not None and not args.tls:
        raise ValueError("--tls-cert-out needs --tls")
    if args.tls:
        try:
            require_cryptography()
        except ImportError as exc:
            raise ValueError(str(exc)) from None
    interval = args.monitor_loop_ms
    if interval is not None and not interval > 0:
        raise ValueError(f"--monitor-loop-ms must be > 0, got {interval:g}")
    return EmulatorConfig(
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or _DEFAULT_KEY,
        host=args.host,
        port=args.port,
        boot=_boot_from_args(args),
        stop_seconds=args.stop_ms / 1000,
        boot_failure_rate=args.boot_failure_rate,
        create_rate_limit=args.create_rate,
        max_computers=args.max_computers,
        legacy_restart=args.legacy_restart,
        workspaces_path_missing=args.workspaces_path_missing,
        list_key=args.list_key,
        omit_instance_id=args.omit_instance_id,
        seed=args.seed,
        access_log=args.access_log,
        ws_auth=args.ws_auth,
        audio_tone_hz=args.audio_tone_hz,
        workdir_root=args.workdir_root,
        idle_seconds=args.idle_seconds,
        screenshot_seconds=args.screenshot_ms / 1000,
        desktop_backend=args.desktop_backend,
        desktop_pool=_desktop_pool(args),
        sandbox=args.sandbox,
        sandbox_network=args.sandbox_network,
        loop_lag_interval=None if interval is None else interval / 1000,
        tls=args.tls,
        tls_cert_out=args.tls_cert_out,
    )


def _desktop_pool(args: argparse.Namespace) -> int:
    pool: int | None = args.desktop_pool
    if pool is None:
        return 2 if args.desktop_backend != "synthetic" else 0
    if pool < 0:
        raise ValueError(f"--desktop-pool must be >= 0, got {pool}")
    return pool


def faults_from_args(args: argparse.Namespace) -> list[FaultRule]:
    """The probabilistic fault rules asked for on the command line (all ``/api/`` routes)."""
    rules: list[FaultRule] = []
    for rate, status, code in (
        (args.fault_429_rate, 429, "rate_limited"),
        (args.fault_503_rate, 503, "resuming"),
    ):
        if rate > 0:
            rules.append(
                FaultRule(
                    kind="status",
                    path=r"^/api/",
                    probability=rate,
                    status=status,
                    code=code,
                    retry_after=args.retry_after,
                )
            )
    return rules


async def serve(
    config: EmulatorConfig,
    rules: Sequence[FaultRule] = (),
    *,
    announce: TextIO | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, announcing ``ORGO_BASE_URL=...`` once listening.

    ``announce`` defaults to ``sys.stdout``; the line is flushed at once.
    Returns after a clean shutdown.
    """
    out = announce if announce is not None else sys.stdout
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        async with Emulator(config) as emu:
            for rule in rules:
                emu.faults.add(rule)
            # The process is the emulator's alone, and what its start made (modules,
            # the app, the routes) lives as long as it does. Frozen, it is no longer
            # walked by a full collection: unfrozen, that was a ~20 ms pause under a
            # fleet's load, every probe in flight answered that much later.
            gc.collect()
            gc.freeze()
            out.write(f"ORGO_BASE_URL={emu.base_url}\n")
            out.flush()
            await stop.wait()
            log.info("signal received, shutting down")
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m orgo_async.emulator``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m orgo_async.emulator",
        description="Serve a local emulator of Orgo's cloud-computer API. The API key is"
        f" --api-key, else {API_KEY_ENV} from the environment, else {_DEFAULT_KEY}.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = config_from_args(args)
        rules = faults_from_args(args)
    except ValueError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(config, rules))
    except KeyboardInterrupt:
        # SIGINT before the handler was installed: still a clean, requested exit.
        pass
    except OSError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
