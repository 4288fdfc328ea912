"""The Paddle side of bench/onnx_exporters.py, run in ``.venv-paddle`` (``make setup-paddle``).

    python bench/paddle_side.py MODEL OUT_DIR     # MODEL: a paddle.vision.models name

Builds the model (random weights), exports it with ``paddle.onnx.export`` (paddle2onnx) to
``OUT_DIR/model.onnx`` at 224 px, and writes ``OUT_DIR/layers.json``: every layer that owns
parameters, by Paddle's unique layer name (``conv2d_0``, the prefix of its parameters'
names ``conv2d_0.w_0``), and the parameter count.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "3")


def main() -> None:
    import paddle
    from paddle.vision import models

    name, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    paddle.seed(0)
    model = getattr(models, name)(pretrained=False)
    model.eval()
    spec = [paddle.static.InputSpec([1, 3, 224, 224], "float32", "image")]
    paddle.onnx.export(model, str(out / "model"), input_spec=spec, opset_version=17)
    layers = [{"name": layer.full_name(), "class": type(layer).__name__,
               "num_weights": sum(int(p.numel()) for p in layer.parameters(include_sublayers=False))}
              for layer in model.sublayers() if layer.parameters(include_sublayers=False)]  # fmt: skip
    info = {
        "model": name,
        "num_params": sum(int(p.numel()) for p in model.parameters()),
        "layers": layers,
    }
    (out / "layers.json").write_text(json.dumps(info, indent=1) + "\n")


if __name__ == "__main__":
    main()
