"""The `umh` command line: one sub-command per job, each in its own module, imported lazily.

A sub-command module exposes `add_arguments(parser)` and `run(args) -> int` (the exit status), so
that `umh solve` stays fast (no faust import) and each job owns its options.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, help). `bench` has its own sub-commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "solve": ("streams.cli.solve", "solve one household snapshot (or a JSONL batch)"),
    "demo": ("streams.tools.demo", "the main job on one machine, on the embedded broker"),
    "broker": ("streams.cli.broker", "run the embedded broker in the foreground"),
    "worker": ("streams.cli.worker", "a streaming worker against the Kafka named by UMH_BROKER"),
    "backtest": ("streams.tools.backtest", "the tax value of household management, measured"),
}
BENCHES: dict[str, tuple[str, str]] = {
    "solve": (
        "streams.tools.bench_solve",
        "solver latency, throughput and tax against per-account",
    ),
    "stream": ("streams.tools.bench_stream", "streaming throughput and tick-to-order latency"),
    "recovery": (
        "streams.tools.bench_recovery",
        "kill -9 of a worker to the first correct order: memory, RocksDB, standby",
    ),
    "soak": ("streams.tools.bench_soak", "the demo's world for N minutes: memory, lag, slopes"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser; only the chosen sub-command's module is imported (for its options)."""
    words = [w for w in argv if not w.startswith("-")]
    parser = argparse.ArgumentParser(prog="umh", description="the streaming household rebalancer")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        _add(sub, name, module, help_text, load=words[:1] == [name])
    bench = sub.add_parser("bench", help="benchmarks; figures go to BENCHMARKS.md")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    for name, (module, help_text) in BENCHES.items():
        _add(bench_sub, name, module, help_text, load=words[:2] == ["bench", name])
    return parser


def _add(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    module: str,
    help_text: str,
    *,
    load: bool,
) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.set_defaults(_module=module)
    if not load:
        return
    try:
        importlib.import_module(module).add_arguments(p)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        p.set_defaults(_missing=module)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    if getattr(args, "_missing", None):
        print(f"umh: {args._missing} is not available in this build", file=sys.stderr)
        return 2
    code: int = importlib.import_module(args._module).run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
