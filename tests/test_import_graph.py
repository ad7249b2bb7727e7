"""``scripts/import_graph.py`` keeps identification/ layered: no import cycle (module- or function-level)
and no import of another module's private name. It runs on the real tree, as anyone would run it."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "import_graph.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=REPO)


def test_identification_has_no_cycles_and_no_private_imports():
    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("no cycles, no private imports")
    assert "identification.tasks -> " in result.stdout  # the graph itself is printed


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throwaway package under the repository root (the script names modules from there)."""
    root = REPO / f"_import_graph_probe_{tmp_path.name}"
    root.mkdir()
    (root / "__init__.py").write_text("")
    yield root
    for path in sorted(root.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    root.rmdir()


def test_a_function_level_cycle_and_a_private_import_fail(package):
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def f():\n    from .a import _helper\n    return _helper\n")
    result = run(package)
    assert result.returncode == 1
    assert "cycle: " in result.stdout and f"{package.name}.a" in result.stdout
    assert f"imports _helper from {package.name}.a" in result.stdout
