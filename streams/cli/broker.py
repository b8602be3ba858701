"""`umh broker`: the embedded Kafka-compatible broker in the foreground, at UMH_BROKER."""

from __future__ import annotations

import argparse
import sys

from streams.kafka.broker import run_broker_foreground
from streams.settings import ConfigError, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=None,
        help="kafka://host:port to listen on (default: UMH_BROKER, else kafka://127.0.0.1:9092)",
    )


def run(args: argparse.Namespace) -> int:
    if args.url:
        return run_broker_foreground(args.url)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"umh broker: {exc}", file=sys.stderr)
        return 2
    return run_broker_foreground(f"kafka://{settings.brokers[0]}")
