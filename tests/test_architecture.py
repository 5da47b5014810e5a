"""The package's rooms and their import rules hold (import-linter), a violation is caught, and the
code passes the linter configured in pyproject.toml."""
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
    stats = tmp_path / "pab_campaign" / "analysis" / "stats.py"
    stats.write_text(stats.read_text().replace("import numpy as np\n", "import numpy as np\nimport torch\n", 1))
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "analysis never imports torch (the analysis command line starts fast) BROKEN" in result.stdout
    assert "pab_campaign.analysis.stats -> torch" in result.stdout


def test_ruff_is_clean():
    result = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]
