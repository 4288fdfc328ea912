"""The run folder: one owner of its paths, and one writer at a time (issue 23)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainers.cli import cli
from trainers.jobs.run_folder import LOCK, RunFolder, RunFolderBusy

#: holds the lock of the folder given as argv[1] until killed, after saying so
HOLDER = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from trainers.jobs.run_folder import RunFolder\n"
    "with RunFolder(Path(sys.argv[1])).locked():\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(120)\n"
)


def hold_lock(folder: Path) -> subprocess.Popen[str]:
    """A process that holds ``folder``'s lock (once this returns)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_a_jobs_files_are_named_from_its_name(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.job_result("block:3") == tmp_path / "results" / "block-3.json"
    assert folder.metrics("block:3") == tmp_path / "metrics" / "block-3.jsonl"
    assert folder.paused("rltune") == tmp_path / "paused" / "rltune.pt"
    assert folder.checkpoint("rltune", "-agent.pt") == tmp_path / "checkpoints" / "rltune-agent.pt"


def test_files_written_elsewhere_come_back_without_the_cache_or_the_lock(tmp_path):
    scratch, home = RunFolder(tmp_path / "scratch"), RunFolder(tmp_path / "home")
    scratch.write_back({"results/block-0.json": b"{}", "cache/level1-train.bin": b"x"})
    with scratch.locked():
        sent = scratch.written_files()
    assert sent == {"results/block-0.json": b"{}"}
    home.write_back({"paused/block-0.pt": b"p"})
    home.write_back(sent, removed=["paused/block-0.pt"])
    assert home.job_result("block:0").read_bytes() == b"{}"
    assert not home.paused("block:0").exists()


def test_a_second_writer_gets_one_line_naming_the_first(tmp_path):
    holder = hold_lock(tmp_path / "run")
    try:
        with pytest.raises(RunFolderBusy, match=f"process {holder.pid} on"):
            with RunFolder(tmp_path / "run").locked():
                pass
        args = ["run", "--strategy", "head", "--model", "resnet18", "--data", str(tmp_path)]
        result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "run")])
        assert result.exit_code == 2
        assert f"is being written by process {holder.pid}" in result.stderr
        assert "choose another --out" in result.stderr and "Traceback" not in result.stderr
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_run_is_stale_and_taken(tmp_path):
    holder = hold_lock(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert f"process {holder.pid}" in (tmp_path / LOCK).read_text(), "the dead owner's name stays"
    with RunFolder(tmp_path).locked():
        assert f"process {os.getpid()} on" in (tmp_path / LOCK).read_text()


def test_what_a_killed_atomic_write_left_is_removed_at_every_level(tmp_path):
    folder = RunFolder(tmp_path)
    (tmp_path / "results").mkdir()
    stale = [tmp_path / ".results.json.4k2.tmp", tmp_path / "results" / ".block-0.json.x.tmp"]
    for path in stale:
        path.write_text("partial")
    (tmp_path / "results" / "block-0.json").write_text("{}")
    folder.remove_stale_temporaries()
    assert not any(p.exists() for p in stale) and folder.job_result("block:0").exists()
