"""A partition back in Keras: Keras 3 and tf_keras models through tf2onnx, partitioned and
exported by graphblocks, one block made trainable by graphblocks.keras_trainable.

Runs in the TensorFlow environment (``make test`` sets it up: ``.venv-tf``); graphblocks
itself runs from the main environment's command line, as a Keras user would call it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIDE = Path(__file__).with_name("keras_side.py")
GRAPHBLOCKS = os.environ.get("GRAPHBLOCKS_CLI", str(ROOT / ".venv" / "bin" / "graphblocks"))


def keras_side(*args: str) -> str:
    done = subprocess.run([sys.executable, str(SIDE), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def graphblocks(*args: str) -> None:
    done = subprocess.run([GRAPHBLOCKS, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("weights", ["none", "random"])
@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_one_block_of_the_export_trains_exactly_its_layers(
    tmp_path: Path, flavour: str, weights: str
) -> None:
    keras_side("convert", flavour, str(tmp_path), "--weights", weights)
    graphblocks("partition", str(tmp_path / "model.onnx"), "-o", str(tmp_path / "p.json"))
    graphblocks("export", str(tmp_path / "p.json"), "--to", "keras", "-o", str(tmp_path / "k.json"))
    export = json.loads((tmp_path / "k.json").read_text())
    listed = [n for b in export["blocks"] for n in b["layers"]] + export["head"]["layers"]
    weighted = [
        layer["name"] for layer in json.loads((tmp_path / "layers.json").read_text())["layers"]
    ]
    assert sorted(listed) == sorted(weighted), (
        "every Keras layer with weights, in exactly one place"
    )
    assert len(export["blocks"]) >= 3
    block = len(export["blocks"]) // 2
    applied = json.loads(
        keras_side("apply", flavour, str(tmp_path), str(tmp_path / "k.json"), str(block))
    )
    assert applied["trainable"] and sorted(applied["trainable"]) == sorted(applied["expected"])
    assert applied["frozen"], "the other blocks' weights are frozen"
