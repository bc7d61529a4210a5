"""Variants of a pretrained base model built from its checkpoints without training, to be scored with
`python -m bench.zeroshot --validate`: the mean of several members' quantiles in one graph (an ensemble of runs),
or the same weights reading a longer context than they were trained on.

Each variant's card is copied from an exported model (`--card`), its input window changed to what the graph reads;
the card's weight digest stays the source's, so a variant is for validation only, never to be served as the base.

  python -m bench.base_variants mean OUT.onnx --card A.onnx A.pt B.pt [C.pt ...]
  python -m bench.base_variants context OUT.onnx --card A.onnx A.pt --max-context 2048
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import onnx
import torch
from torch import nn

from training.patch_model import PatchConfig, PatchForecaster
from training.pretrain import export, validate_export


class QuantileMean(nn.Module):
    """Members that read the same input and answer the same levels and horizon: their quantiles averaged level
    by level (a mean of monotone quantiles is monotone); the conformal unit is the first member's (all compute it
    alike from the input)."""

    def __init__(self, members: list[PatchForecaster]) -> None:
        super().__init__()
        shapes = {(m.config.input_length, m.config.horizon, tuple(m.config.quantile_levels)) for m in members}
        if len(shapes) != 1:
            raise ValueError("members must share input_length, horizon and quantile_levels")
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def forward(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outs = [m(values) for m in self.members]
        forecast = torch.stack([o[0] for o in outs]).mean(dim=0)
        quantiles = torch.stack([o[2] for o in outs]).mean(dim=0)
        return forecast, outs[0][1], quantiles


def load(checkpoint: Path, **changes: object) -> PatchForecaster:
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = PatchForecaster(PatchConfig(**{**saved["config"], **changes}))
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def write(model: nn.Module, out: Path, card_from: Path, input_length: int) -> int:
    """Export, check against PyTorch, and copy the card; returns the number of checks."""
    export(model, out)  # type: ignore[arg-type]
    checks = validate_export(model, out)  # type: ignore[arg-type]
    graph, source = onnx.load(str(out)), onnx.load(str(card_from), load_external_data=False)
    del graph.metadata_props[:]
    for prop in source.metadata_props:
        if prop.key == "gatecast.input_window":
            prop.value = json.dumps({**json.loads(prop.value), "trained": input_length}, separators=(",", ":"))
        graph.metadata_props.append(prop)
    onnx.save(graph, str(out))
    return checks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.base_variants", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["mean", "context"])
    parser.add_argument("out", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--card", type=Path, required=True, help="an exported model whose card the variant copies")
    parser.add_argument("--max-context", type=int, help="context: the longest context the variant reads")
    args = parser.parse_args(argv)
    if args.kind == "mean":
        model: nn.Module = QuantileMean([load(p) for p in args.checkpoints])
    else:
        if args.max_context is None or len(args.checkpoints) != 1:
            parser.error("context takes one checkpoint and --max-context")
        model = load(args.checkpoints[0], max_context=args.max_context)
    checks = write(model, args.out, args.card, model.config.input_length)  # type: ignore[union-attr]
    print(f"wrote {args.out} ({checks} checks against PyTorch)")


if __name__ == "__main__":
    main()
