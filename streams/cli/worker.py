"""`umh worker`: one streaming worker against the Kafka named by `UMH_BROKER`.

Reads the settings (a bad `UMH_*` stops it with a message naming the variable), creates the
topics it needs, then runs the Faust worker until SIGINT/SIGTERM. Workers with the same
`UMH_APP_ID` share the partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from streams.settings import ConfigError, load_settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--loglevel",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log level (default info)",
    )
    parser.add_argument(
        "--no-create-topics",
        action="store_true",
        help="do not create missing topics (they must exist)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"umh worker: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    log.info("starting worker %r", settings)  # Settings.__repr__ masks the secrets
    if settings.processing_guarantee == "exactly_once":
        log.warning(
            "processing_guarantee=exactly_once: Faust commits a partition's transaction only "
            "with consumed offsets of that partition, so table writes and orders that price "
            "ticks trigger (outside the consumer group) can be aborted; at_least_once with "
            "idempotent state is the supported guarantee"
        )
    from streams.kafka.topics import KafkaConnectError, ensure_topics

    try:
        resolved = asyncio.run(ensure_topics(settings, create=not args.no_create_topics))
    except KafkaConnectError as exc:
        print(f"umh worker: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(
            f"umh worker: cannot create topics on {settings.bootstrap}: "
            f"{exc.__class__.__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    settings = resolved
    from streams.kafka.offsets_workaround import install_if_embedded

    embedded = asyncio.run(install_if_embedded(settings.bootstrap))
    if embedded:
        log.info("embedded broker: end offsets are taken from fetch responses (ListOffsets bug)")
    log.info(
        "replication_factor=%s standby_replicas=%d",
        settings.replication_factor,
        settings.standby_replicas,
    )
    if settings.web_enabled:
        # peers forward console requests to the advertised URL, never to a wildcard bind
        log.info(
            "web listening on %s:%d, advertised to other workers as %s",
            settings.web_host,
            settings.web_port,
            settings.canonical_url,
        )

    import faust

    from streams.console.routes import register
    from streams.worker.app import create_app

    umh = create_app(settings)
    if embedded:
        umh.metrics.workarounds.labels(name="embedded_end_offsets").set(1)
    register(umh)  # /metrics, /healthz and the operations console on the worker's web server
    worker = faust.Worker(umh.app, loglevel=args.loglevel, quiet=True, override_logging=False)
    # mode's Worker installs the SIGINT/SIGTERM handlers and stops the app cleanly on them;
    # execute_from_commandline exits the process with the worker's status.
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0
