"""Provenance records the user's code (the git repository the run came from), apart from this
package's version."""
import hashlib
import subprocess

import pab_campaign
from pab_campaign.training.provenance import start_record, user_code, versions


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True).stdout


def make_repo(path):
    path.mkdir()
    git(path, "init", "-q")
    (path / "train.py").write_text("print(1)\n")
    git(path, "add", "train.py")
    git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return path


def test_the_users_repository_commit_dirty_flag_and_diff_hash(tmp_path):
    repo = make_repo(tmp_path / "user")
    head = git(repo, "rev-parse", "HEAD").decode().strip()
    clean = start_record("r", "c", {}, 0, [], None, code_dir=repo)
    assert clean.git_commit == head
    assert clean.code == {"repo": str(repo.resolve()), "commit": head, "dirty": False, "diff_sha256": None}
    (repo / "train.py").write_text("print(2)\n")
    (repo / "sub").mkdir()
    dirty = user_code.__wrapped__((repo / "sub").resolve())
    expected = hashlib.sha256(git(repo, "diff", "HEAD", "--binary")).hexdigest()
    assert dirty == {"repo": str(repo.resolve()), "commit": head, "dirty": True, "diff_sha256": expected}


def test_outside_git_nothing_is_claimed_and_our_version_is_apart(tmp_path):
    record = start_record("r", "c", {}, 0, [], None, code_dir=tmp_path)
    assert record.git_commit is None and record.code is None
    assert versions()["pab_campaign"] == pab_campaign.__version__
