"""Report the functions longer than a limit (80 lines by default), outside tests and migrations.

A function is measured from its ``def`` (decorators excluded) to its last line, as ``ast`` sees it.
It only reports (exit 0); ``--strict`` exits 1 when any function is over the limit. Standard library only:

    python scripts/function_lengths.py [--limit N] [--strict]
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"tests", "migrations", ".venv", "node_modules", ".git"}


def long_functions(limit: int) -> list[tuple[int, str]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if SKIP.intersection(path.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append((length, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=80)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args(argv)
    found = long_functions(args.limit)
    for length, where in found:
        print(f"{length:4d} {where}")
    print(f"{len(found)} function(s) over {args.limit} lines")
    return 1 if args.strict and found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
