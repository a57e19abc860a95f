"""Run every benchmark, print one table, write ``bench/results.json``.

    .venv/bin/python bench/run.py              # make bench: everything (≤ 10 min)
    .venv/bin/python bench/run.py --quick      # make bench-quick: a reduced set (≤ 60 s)
    .venv/bin/python bench/run.py --only server,resume

Each ``bench/bench_<name>.py`` that defines ``run(quick: bool) -> list[Result]`` is a
benchmark (see bench/README.md). A module without ``run`` is listed as not plugged in; a
module that raises is reported as a failed row and the others still run.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the modules import the harness as a top-level module
    sys.path.insert(0, str(HERE))

from _harness import INFO, Result, machine, print_table, skipped, write_json  # noqa: E402


def discover() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced set (≤ 60 s)")
    parser.add_argument("--only", default="", help="comma-separated names (bench_<name>.py)")
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    started = time.monotonic()
    rows: list[Result] = []
    timings: dict[str, float] = {}
    meta = machine()
    for path in discover():
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        began = time.monotonic()
        print(f"-- {path.name} {'(quick)' if args.quick else ''}", file=sys.stderr, flush=True)
        try:
            module = load(path)
            run = getattr(module, "run", None)
            if run is None:
                rows.append(skipped(name, "", INFO, "no run(quick) yet: not plugged in"))
                continue
            produced = run(args.quick)
            rows.extend(produced)
        except Exception as exc:
            traceback.print_exc()
            rows.append(skipped(name, "", INFO, f"failed: {type(exc).__name__}: {exc}"[:200]))
        finally:
            timings[name] = round(time.monotonic() - began, 1)
            print(f"   {timings[name]} s", file=sys.stderr, flush=True)
    meta["loadavg_end"] = list(machine()["loadavg"])
    total = round(time.monotonic() - started, 1)
    mode = "quick" if args.quick else "full"
    title = f"make bench{'-quick' if args.quick else ''}: {len(rows)} rows in {total} s"
    print_table(rows, title)
    write_json(
        rows,
        args.output,
        meta=meta,
        extra={"mode": mode, "seconds": total, "seconds_per_module": timings},
    )
    print(f"wrote {args.output} ({total} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
