"""What ComfyUI imports is what the nodes run: every module of `nodes/` and `ip2p_core/` is reached by
imports from the pack's `__init__.py`, and none of them imports a library or package that only
training, tools or tests need (a user's server would load a trainer, or a C-library binding).

Read from the source (ast), not by importing: an import inside a function counts as one too.
"""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACK_PACKAGES = ("nodes", "ip2p_core")
NOT_IN_THE_PACK = {"diffusers": "the training and reference library", "transformers": "the training library",
                   "ctypes": "C-library bindings", "ray": "the batch tool's distributed engine",
                   "tqdm": "the tools' progress bars", "training": "the pack's trainer", "harness": "the test harness",
                   "tools": "the headless tools", "benchmarks": "the benchmarks", "tests": "the tests"}


def pack_modules(root: Path) -> set[Path]:
    """Every Python file ComfyUI could import from the pack at `root`."""
    return {root / "__init__.py"} | {path for package in PACK_PACKAGES for path in (root / package).rglob("*.py")}


def imports_of(path: Path, root: Path) -> tuple[set[Path], set[str]]:
    """The pack files `path` imports (with the packages on the way), and the top-level names of
    everything else it imports."""
    package = path.parent.relative_to(root).parts
    files, outside = set(), set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            outside |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            outside.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] + tuple((node.module or "").split(".") if node.module else ())
            candidates = [base + (alias.name,) for alias in node.names] + [base]
            for parts in candidates:
                files |= _files_on_the_way(root, parts)
    return files, outside


def _files_on_the_way(root: Path, parts: tuple[str, ...]) -> set[Path]:
    """The package `__init__.py` files along `parts` and the module itself, where they exist."""
    found = set()
    for end in range(1, len(parts) + 1):
        folder = root.joinpath(*parts[:end])
        for candidate in (folder / "__init__.py", folder.with_suffix(".py")):
            if candidate.is_file():
                found.add(candidate)
    return found


def reachable(root: Path) -> set[Path]:
    """The pack files imported, directly or not, from the pack's own `__init__.py`."""
    seen, todo = set(), [root / "__init__.py"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(imports_of(path, root)[0] - seen)
    return seen


def test_every_pack_module_is_reached_from_the_nodes():
    unreached = sorted(str(p.relative_to(REPO)) for p in pack_modules(REPO) - reachable(REPO))
    assert not unreached, f"ComfyUI would carry modules no node runs: {unreached}; move them out of the pack"


@pytest.mark.parametrize("path", sorted(pack_modules(REPO)), ids=lambda p: str(p.relative_to(REPO)))
def test_pack_modules_import_nothing_that_only_training_tools_or_tests_need(path):
    found = {name: why for name, why in NOT_IN_THE_PACK.items() if name in imports_of(path, REPO)[1]}
    assert not found, f"{path.relative_to(REPO)} imports {found}"


def test_the_checks_find_what_they_look_for(tmp_path):
    files = {"__init__.py": "from .nodes import NODE_CLASS_MAPPINGS\n",
             "nodes/__init__.py": "from .loader import Loader\nNODE_CLASS_MAPPINGS = {}\n",
             "nodes/loader.py": "from ..ip2p_core.formats import reader\nfrom . import host\n",
             "nodes/host.py": "def run():\n    import ctypes\n",
             "nodes/unused.py": "",
             "ip2p_core/__init__.py": "", "ip2p_core/formats/__init__.py": "",
             "ip2p_core/formats/reader.py": "from ..errors import Problem\nfrom training.train import train\n",
             "ip2p_core/errors.py": "", "ip2p_core/trainer_only.py": "import diffusers\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    unreached = {str(p.relative_to(tmp_path)) for p in pack_modules(tmp_path) - reachable(tmp_path)}
    assert unreached == {"nodes/unused.py", "ip2p_core/trainer_only.py"}
    assert "ctypes" in imports_of(tmp_path / "nodes/host.py", tmp_path)[1]
    assert "training" in imports_of(tmp_path / "ip2p_core/formats/reader.py", tmp_path)[1]
