"""The package's rooms and their import rules hold (import-linter), a violation is caught, no module
imports itself through others, and the code passes the linter and the type checker (mypy) configured
in pyproject.toml, which catches a wrong annotation."""
import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

BIN = Path(sys.executable).parent


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(root), "PATH": str(BIN), "HOME": str(root)}
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_import_contracts_are_kept():
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_an_analysis_module_importing_torch_breaks_a_contract(tmp_path):
    for name in ("pab_campaign", "hydra_plugins"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    stats = tmp_path / "pab_campaign" / "analysis" / "stats" / "descriptive.py"
    stats.write_text(stats.read_text().replace("import numpy as np\n", "import numpy as np\nimport torch\n", 1))
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "analysis never imports torch (the analysis command line starts fast) BROKEN" in result.stdout
    assert "pab_campaign.analysis.stats.descriptive -> torch" in result.stdout


def test_ruff_is_clean():
    result = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]


def _mypy(root: Path) -> subprocess.CompletedProcess:
    """mypy as configured in pyproject.toml ([tool.mypy]: the package and the launcher plugins), run
    in `root` with its cache in `root`/.mypy_cache."""
    return subprocess.run([sys.executable, "-m", "mypy"], cwd=root, capture_output=True, text=True, timeout=900)


def test_mypy_is_clean():
    result = _mypy(REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout


def test_a_wrong_annotation_is_caught(tmp_path):
    for name in ("pab_campaign", "hydra_plugins"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    if (REPO / ".mypy_cache").is_dir():  # the libraries' entries: only the changed module is checked afresh
        shutil.copytree(REPO / ".mypy_cache", tmp_path / ".mypy_cache")
    stats = tmp_path / "pab_campaign" / "analysis" / "stats" / "descriptive.py"
    stats.write_text(stats.read_text() + '\nWRONG: int = "not a number"\n')
    result = _mypy(tmp_path)
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    wrong = [line for line in result.stdout.splitlines() if "error:" in line]
    assert len(wrong) == 1, result.stdout[-4000:]
    assert wrong[0].startswith("pab_campaign/analysis/stats/descriptive.py:")
    assert "Incompatible types in assignment" in wrong[0] and wrong[0].endswith("[assignment]")


def test_each_type_ignore_names_its_code_and_reason():
    bare = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
            for path in [*REPO.glob("pab_campaign/**/*.py"), *REPO.glob("hydra_plugins/**/*.py")]
            for number, line in enumerate(path.read_text().splitlines(), start=1)
            if "type: ignore" in line and not re.search(r"# type: ignore\[[a-z-]+(, [a-z-]+)*\]  # \S", line)]
    assert not bare, "a `# type: ignore[code]  # reason` each:\n" + "\n".join(bare)


def _module_names(root: Path) -> dict[str, Path]:
    names = {}
    for path in [*root.glob("pab_campaign/**/*.py"), *root.glob("hydra_plugins/**/*.py")]:
        parts = list(path.relative_to(root).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its source (lazy imports inside
    functions and TYPE_CHECKING blocks included), from the `ast` of each file."""
    names = _module_names(root)

    def known(name: str) -> str | None:
        while name and name not in names:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base for alias in node.names]
            else:
                continue
            graph[name] |= {target for target in map(known, targets) if target and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_anywhere_in_the_package():
    graph = import_graph(REPO)
    assert "pab_campaign.analysis.page.sections" in graph["pab_campaign.analysis.page.render"]
    assert cycles(graph) == []


def test_an_import_circle_is_found(tmp_path):
    (tmp_path / "pab_campaign" / "a").mkdir(parents=True)
    (tmp_path / "pab_campaign" / "__init__.py").write_text("")
    (tmp_path / "pab_campaign" / "a" / "__init__.py").write_text("")
    (tmp_path / "pab_campaign" / "a" / "x.py").write_text("from pab_campaign.a import y\n")
    (tmp_path / "pab_campaign" / "a" / "y.py").write_text("def f():\n    from .x import g\n")
    assert cycles(import_graph(tmp_path)) == [["pab_campaign.a.x", "pab_campaign.a.y"]]
