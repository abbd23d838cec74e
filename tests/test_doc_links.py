"""The docs point at what exists: in README.md, docs/*.md and benchmarks/RESULTS.md every relative
link and image leads to a file of the repository (and to a heading of it, for a `#anchor`), every
`python -m` names a module of the repository, and every repository path named in backticks is there.

Plain text reading, no ComfyUI. Anchors follow GitHub's heading slugs: lowercase, punctuation
other than hyphens and spaces dropped, spaces to hyphens, `-1`, `-2`, ... on repeats.
"""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "RESULTS.md"]

# `python -m` modules that are not the repository's.
OTHER_MODULES = {"pip", "pytest", "venv", "http", "ensurepip", "json"}
# docs/benchmark_history.md records rounds that ran code since removed: it may name that code
# (its links must still resolve). Only these, only there.
HISTORY = REPO / "docs" / "benchmark_history.md"
REMOVED_BUT_RECORDED = {
    "benchmarks/train_shapes.py",  # the training proof, replaced by training/demo_recipe.py
    "benchmarks.train_shapes",
    "ip2p_core/cpu_allocator.py",  # the pack's malloc tuning, removed: a pack must not change the server's process
    "nodes/cpu_memory.py",
    "tests/test_cpu_allocator.py",
}
# Folders named in backticks by their first component that are the repository's. `models/` is left
# out: the docs mostly mean ComfyUI's own models folder there (`models/checkpoints/...`).
REPO_FOLDERS = ("benchmarks", "docs", "examples", "harness", "ip2p_core", "nodes", "tests", "tools",
                "training", "workflows")
# ip2p_core's sub-packages, which docs/architecture.md names without the `ip2p_core/` in front.
SHORT_FOLDERS = {"inference": "ip2p_core/inference", "formats": "ip2p_core/formats"}

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_SOURCE = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.I)
MODULE = re.compile(r"\bpython[0-9.]* -m ([A-Za-z_][\w.]*)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
PATH_TOKEN = re.compile(r"[\w.\-*/]+")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a markdown text's headings (and of explicit HTML ids)."""
    found, seen = set(), {}
    for line in FENCE.sub("", text).splitlines():
        heading = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    found.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", text))
    return found


def _module_exists(module: str, repo: Path) -> bool:
    path = repo.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file() or (path / "__main__.py").is_file()


def _path_exists(name: str, repo: Path) -> bool:
    name = name.rstrip("/")
    first = name.split("/")[0]
    if first in SHORT_FOLDERS:
        name = SHORT_FOLDERS[first] + name[len(first):]
    return any(repo.glob(name)) if "*" in name else (repo / name).exists()


def named_paths(text: str) -> set[str]:
    """Repository paths named in backticks (code spans and fenced blocks): every word of them that
    starts with one of the repository's folders and a slash."""
    code = [m.group(0) for m in FENCE.finditer(text)]
    code += [m.group(2) for m in CODE_SPAN.finditer(FENCE.sub("", text))]
    folders = REPO_FOLDERS + tuple(SHORT_FOLDERS)
    names = set()
    for span in code:
        for token in PATH_TOKEN.findall(span):
            token = token.rstrip(".,;:")
            if "/" in token and token.split("/")[0] in folders and not token.endswith(("...", "…")):
                names.add(token)
    return names


def problems(doc: Path, text: str, repo: Path = REPO, exempt: frozenset = frozenset()) -> list[str]:
    """What in `text` (the contents of `doc`) points at nothing."""
    found = []
    prose = FENCE.sub("", text)
    targets = [m.group(1) for m in LINK.finditer(prose)] + HTML_SOURCE.findall(prose)
    for target in targets:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: ...
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if file and not path.exists():
            found.append(f"link {target}: no file {file}")
        elif anchor and path.suffix == ".md":
            if anchor not in anchors(path.read_text() if path != doc else text):
                found.append(f"link {target}: no heading #{anchor} in {path.relative_to(repo)}")
    for module in sorted(set(m.rstrip(".") for m in MODULE.findall(text))):
        if module.split(".")[0] not in OTHER_MODULES and module not in exempt and not _module_exists(module, repo):
            found.append(f"python -m {module}: no such module in the repository")
    for name in sorted(named_paths(text)):
        if name not in exempt and not _path_exists(name, repo):
            found.append(f"`{name}`: no such file or folder in the repository")
    return found


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_what_the_docs_name_exists(doc):
    exempt = frozenset(REMOVED_BUT_RECORDED) if doc == HISTORY else frozenset()
    found = problems(doc, doc.read_text(), exempt=exempt)
    assert not found, "\n".join(found)


def test_the_recorded_removals_are_removed_and_still_recorded():
    """The history's exemption stays narrow: each name it covers is gone and still named there."""
    text = HISTORY.read_text()
    for name in REMOVED_BUT_RECORDED:
        assert name in text
        assert not (_module_exists(name, REPO) if "/" not in name else _path_exists(name, REPO))


def test_the_slugs_are_githubs():
    assert slug("Fewer UNet passes on the demo model (2026-12-02)") == "fewer-unet-passes-on-the-demo-model-2026-12-02"
    assert slug("glibc's malloc settings from ComfyUI's environment (the pack no longer sets them)") == \
        "glibcs-malloc-settings-from-comfyuis-environment-the-pack-no-longer-sets-them"
    assert slug("IP2P Fewer Passes (`IP2PFewerPasses`)") == "ip2p-fewer-passes-ip2pfewerpasses"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_the_checker_finds_what_points_at_nothing():
    """A made-up page beside the real docs: each kind of dead reference is reported, the live ones are not."""
    text = "\n".join([
        "# Made up",
        "[fine](nodes.md#what-composes-with-the-pack) and [here](#made-up) and [web](https://example.com/x)",
        "[gone](no_such_page.md) and ![picture](no_such_picture.png)",
        "[no heading](nodes.md#no-such-heading) and [nor here](#nowhere)",
        "`python -m training.train` and `python -m pip install x` and `python -m training.no_such_module`",
        "```bash\n.venv/bin/python -m tools.no_such_tool --flag\nbash harness/test.sh\n```",
        "`tools/edit_image.py --output`, `harness/no_such_file.py`, `tests/test_host_compose*.py`, `tests/no_such_*.py`",
        "`formats/checkpoint_info.py`, `formats/gone.py`, `models/checkpoints/yours.safetensors`",
    ])
    found = problems(REPO / "docs" / "made_up.md", text)
    assert found == [
        "link no_such_page.md: no file no_such_page.md",
        "link no_such_picture.png: no file no_such_picture.png",
        "link nodes.md#no-such-heading: no heading #no-such-heading in docs/nodes.md",
        "link #nowhere: no heading #nowhere in docs/made_up.md",
        "python -m tools.no_such_tool: no such module in the repository",
        "python -m training.no_such_module: no such module in the repository",
        "`formats/gone.py`: no such file or folder in the repository",
        "`harness/no_such_file.py`: no such file or folder in the repository",
        "`tests/no_such_*.py`: no such file or folder in the repository",
    ]
