"""The partition JSON: schema-checked both ways, byte-stable, and usable by optimizers."""

from __future__ import annotations

import json

import pytest
import torch

from graphblocks.errors import PartitionError, SchemaError
from graphblocks.partition import Partition, partition_schema
from graphblocks.pipeline import Settings, analyze_model
from tests import toy_models as toys


@pytest.fixture(scope="module")
def tiny():
    return analyze_model(
        toys.TinyResNet().eval(), Settings(input_size=(3, 16, 16)), name="tiny_resnet"
    )


def test_round_trip_is_lossless_and_byte_stable(tiny, tmp_path):
    text = tiny.partition.to_json()
    again = Partition.from_json(text)
    assert again == tiny.partition and again.to_json() == text
    path = tmp_path / "p.json"
    tiny.partition.save(path)
    assert path.read_text() == text and Partition.load(path) == tiny.partition
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"], "no temporary files left behind"


def test_documented_keys(tiny):
    data = json.loads(tiny.partition.to_json())
    assert data["schema_version"] == 2
    assert data["model"]["name"] == "tiny_resnet" and data["model"]["source"] == "module"
    assert set(data["blocks"][0]) >= {
        "index",
        "layers",
        "params",
        "num_params",
        "quartile",
        "entry",
        "exit",
        "has_residual",
        "inputs",
        "outputs",
        "narrowest_refused_cut",
    }
    assert set(data["quartiles"]) == {"1", "2", "3", "4"}
    assert (
        abs(
            sum(q["share"] for q in data["quartile_params"].values())
            + data["head"]["num_params"] / data["model"]["num_params"]
            - 1
        )
        < 1e-4
    )
    assert partition_schema()["properties"]["schema_version"]["const"] == 2
    assert partition_schema(1)["properties"]["schema_version"]["const"] == 1


def test_schema_rejects_broken_documents(tiny):
    data = json.loads(tiny.partition.to_json())
    del data["blocks"][0]["params"]
    with pytest.raises(SchemaError, match="invalid partition at blocks/0"):
        Partition.from_dict(data)
    data = json.loads(tiny.partition.to_json())
    data["schema_version"] = 7
    with pytest.raises(SchemaError, match="schema_version 7"):
        Partition.from_dict(data)
    with pytest.raises(SchemaError, match="not a partition JSON"):
        Partition.from_json("{not json")


def test_param_groups_drive_a_real_optimizer(tiny):
    model = toys.TinyResNet()
    p = tiny.partition
    groups = p.param_groups(model, lrs=[0.01 * (i + 1) for i in range(p.num_blocks)] + [0.5])
    assert [g["name"] for g in groups] == [f"block{i}" for i in range(p.num_blocks)] + ["head"]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    optimizer = torch.optim.SGD(groups, lr=1.0)
    assert [g["lr"] for g in optimizer.param_groups][-1] == 0.5
    loss = model(torch.randn(2, 3, 16, 16)).sum()
    loss.backward()
    optimizer.step()
    by_mapping = p.param_groups(model, lrs={"head": 0.1, 0: 0.2})
    assert by_mapping[0]["lr"] == 0.2 and by_mapping[-1]["lr"] == 0.1 and "lr" not in by_mapping[1]


def test_param_groups_refuse_the_wrong_model(tiny):
    with pytest.raises(PartitionError, match="does not match the model"):
        tiny.partition.param_groups(toys.VGGLike())
    with pytest.raises(PartitionError, match="learning rates"):
        tiny.partition.param_groups(toys.TinyResNet(), lrs=[0.1])


def test_coverage_assertion_catches_a_double_placement(tiny):
    p = Partition.from_json(tiny.partition.to_json())
    p.blocks[1].params.append(p.blocks[0].params[0])
    with pytest.raises(PartitionError, match="doubled"):
        p.check_coverage([n for n, _ in toys.TinyResNet().named_parameters()])
