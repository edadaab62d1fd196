"""``captum-perturbmask evaluate``: score saliency methods over a whole dataset.

A thin layer over :func:`captum_perturbmask.evaluate.evaluate`: it builds the dataset
(``digits``, a folder of images, or an ``.npz`` file) and the model (the shipped one or a
torchvision classifier with a local weights file), picks the methods by name from
:func:`~captum_perturbmask.compare.default_methods`, and writes the records, the summary and its
figures into ``--out``. Under ``torchrun`` every rank runs this command on its own shard and
rank 0 writes the summary.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from captum_perturbmask.cli._common import (
    MAX_BATCH,
    MAX_SEEDS,
    MAX_SIZE,
    MIN_SIZE,
    CLIError,
    first_sentence,
    int_range,
    prepare_out,
    say,
)

if TYPE_CHECKING:
    from torch import nn

#: ``--methods`` names (lower case) -> the names of ``default_methods``.
METHOD_NAMES = {
    "perturbmask": "PerturbMask",
    "rise": "RISE",
    "gradcam": "GradCAM",
    "lime": "LIME",
    "occlusion": "Occlusion",
    "featureablation": "FeatureAblation",
    "integratedgradients": "IntegratedGradients",
}


class _Npz:
    """Items of an ``.npz`` file: ``inputs`` and optional ``targets`` and ``boxes`` (a
    map-style dataset: ``len`` and indexing)."""

    def __init__(self, path: str) -> None:
        import numpy as np
        import torch

        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as err:
            raise CLIError(f"cannot read --data {path}: {first_sentence(err)}") from None
        if "inputs" not in arrays:
            raise CLIError(
                f"--data {path} must hold an array 'inputs' (N, C, H, W) or (N, C, T), and "
                f"optionally 'targets' (N,) and 'boxes' (N, 4) / spans (N, 2); it holds "
                f"{sorted(arrays)}"
            )
        self.inputs = torch.as_tensor(arrays["inputs"]).float()
        n = self.inputs.shape[0]
        if self.inputs.dim() not in (3, 4) or n == 0:
            raise CLIError(
                f"--data {path}: 'inputs' must be (N, C, H, W) or (N, C, T), got "
                f"{tuple(self.inputs.shape)}"
            )
        self.targets = None
        if "targets" in arrays:
            self.targets = torch.as_tensor(arrays["targets"]).long().reshape(-1)
            if self.targets.numel() != n:
                raise CLIError(f"--data {path}: 'targets' must have {n} entries")
        self.boxes = None
        if "boxes" in arrays:
            self.boxes = torch.as_tensor(arrays["boxes"]).double()
            width = 4 if self.inputs.dim() == 4 else 2
            if tuple(self.boxes.shape) != (n, width):
                raise CLIError(
                    f"--data {path}: 'boxes' must be ({n}, {width}), got {tuple(self.boxes.shape)}"
                )

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        target = None if self.targets is None else int(self.targets[i])
        if self.boxes is None:
            return self.inputs[i], target
        return self.inputs[i], target, self.boxes[i]


def _folder(path: str, size: int, predicted: bool) -> Any:
    import torch
    from torchvision import datasets
    from torchvision.transforms import v2

    transform = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(size, antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    try:
        data = datasets.ImageFolder(path, transform=transform)
    except (FileNotFoundError, OSError) as err:
        raise CLIError(
            f"cannot read the image folder --data {path}: {first_sentence(err)}"
        ) from None
    say(
        f"{len(data)} images in {len(data.classes)} class folders; resized to {size} px on the "
        f"shorter side and centre-cropped to {size} x {size}, ImageNet normalisation inside "
        "the model"
    )
    if predicted:
        return _Predicted(data)
    return data


class _Predicted:
    """A dataset whose targets are left to the model's prediction (``len`` and indexing)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        item = self.data[i]
        return (item[0], None, *item[2:])


def _dataset(args: argparse.Namespace) -> tuple[Any, str]:
    """The dataset and its kind (``"digits"``, ``"images"``, ``"npz"``)."""
    if args.data == "digits":
        from captum_perturbmask.data import make_digits_clutter

        return make_digits_clutter("test", seed=args.seed), "digits"
    path = Path(args.data)
    if path.is_dir():
        return _folder(args.data, args.size, args.predicted), "images"
    if path.is_file() and path.suffix == ".npz":
        data = _Npz(args.data)
        return (_Predicted(data) if args.predicted else data), "npz"
    raise CLIError(
        f"--data must be 'digits', a folder of class subfolders of images, or an .npz file; "
        f"{args.data!r} is none of these"
    )


def _model(args: argparse.Namespace, kind: str) -> nn.Module:
    if args.model == "digits" or (args.model is None and kind == "digits"):
        from captum_perturbmask.data import load_default_classifier

        return load_default_classifier()
    if args.model is None:
        raise CLIError("--model is needed for this --data (a torchvision model name or 'digits')")
    from torch import nn
    from torchvision.transforms import v2

    from captum_perturbmask.cli.explain import IMAGENET_MEAN, IMAGENET_STD, build_model

    model, _ = build_model(args.model, args.weights, args.num_classes)
    return nn.Sequential(v2.Normalize(IMAGENET_MEAN, IMAGENET_STD), model).eval()


def add_parser(subparsers: Any, parents: Callable[..., list[argparse.ArgumentParser]]) -> None:
    """The ``evaluate`` subcommand."""
    evaluate = subparsers.add_parser(
        "evaluate",
        help="score saliency methods over a dataset (one process, or many with torchrun)",
        description="Explain every example of a dataset with every method, score the maps "
        "(insertion, deletion, IoU and pointing when boxes are known, forward passes, seconds, "
        "consistency over seeds) and write records-rank*.jsonl, summary.md, summary.csv and "
        "curves.png into --out. Resumable (--resume); under `torchrun --nproc_per_node N -m "
        "captum_perturbmask evaluate ...` every rank takes a shard and rank 0 writes the summary.",
        parents=parents(
            "--model", "--weights", "--num-classes", "--budget", "--seed", "--device",
            "--threads", "--out",
            model={
                "help": "'digits' (the shipped classifier, the default for --data digits) or a "
                "torchvision classification model name",
            },
            device={
                "help": "torch device of the model and the inputs (default cpu; cuda:LOCAL_RANK "
                "under torchrun with CUDA); checked before any work",
            },
        ),
    )  # fmt: skip
    evaluate.add_argument(
        "--data",
        required=True,
        metavar="DATA",
        help="'digits' (the shipped held-out digits-in-clutter images, with boxes), a folder of "
        "class subfolders of images (torchvision ImageFolder), or an .npz file with 'inputs' "
        "(N, C, H, W) or (N, C, T), optional 'targets' (N,) and 'boxes' (N, 4) or spans (N, 2)",
    )
    evaluate.add_argument(
        "--methods",
        nargs="+",
        type=str.lower,
        choices=tuple(METHOD_NAMES),
        default=None,
        metavar="METHOD",
        help="methods to run (default: all default methods for the data: perturbmask rise "
        "gradcam lime occlusion for images; perturbmask rise occlusion featureablation lime "
        "integratedgradients for series)",
    )
    evaluate.add_argument(
        "--n-examples", type=int_range(1, 10**9), default=None, metavar="N",
        help="evaluate the first N examples (default all)",
    )  # fmt: skip
    evaluate.add_argument(
        "--seeds",
        type=int_range(1, MAX_SEEDS),
        default=1,
        metavar="K",
        help="runs per stochastic method, seeds --seed, --seed + 1, ... (2 or more give "
        "consistency; default 1)",
    )
    evaluate.add_argument(
        "--batch-size",
        type=int_range(1, MAX_BATCH),
        default=16,
        help="examples explained together (default 16)",
    )
    evaluate.add_argument(
        "--size",
        type=int_range(MIN_SIZE, MAX_SIZE),
        default=224,
        help="image side for a folder of images: resized, then centre-cropped (default 224)",
    )
    evaluate.add_argument(
        "--box-threshold",
        type=float,
        default=0.5,
        metavar="Q",
        help="saliency quantile whose box (span) is scored against the data's boxes: 0.9 keeps "
        "the top 10%% (default 0.5)",
    )
    evaluate.add_argument(
        "--predicted",
        action="store_true",
        help="explain the model's predicted class instead of the dataset's label",
    )
    evaluate.add_argument(
        "--resume", action="store_true", help="continue the records already in --out"
    )
    evaluate.add_argument(
        "--skip-errors",
        action="store_true",
        help="record a failing example or method and go on (default: stop)",
    )
    evaluate.set_defaults(command="evaluate")


def run(args: argparse.Namespace) -> int:
    """Evaluate; see :func:`add_parser` for the arguments."""
    from captum_perturbmask.evaluate import _Distributed

    if not 0.0 <= args.box_threshold <= 1.0:
        raise CLIError(f"--box-threshold must be in [0, 1], got {args.box_threshold}")
    data, kind = _dataset(args)
    model = _model(args, kind)
    n = len(data) if args.n_examples is None else min(args.n_examples, len(data))
    out = prepare_out(args.out)
    dist = _Distributed()  # under torchrun: every rank decides on rank 0's view of --out
    try:
        return _evaluate(args, data, model, n, out, dist)
    finally:
        dist.close()


def _evaluate(
    args: argparse.Namespace, data: Any, model: nn.Module, n: int, out: Path, dist: Any
) -> int:
    from captum_perturbmask.compare import default_methods
    from captum_perturbmask.evaluate import evaluate, read_records

    has_records = [dist.rank == 0 and any(out.glob("records-rank*.jsonl"))]
    if dist.active:
        dist.dist.broadcast_object_list(has_records, src=0)
    if has_records[0] and not args.resume:
        raise CLIError(
            f"--out {args.out} already holds records; pass --resume to continue them or choose "
            "another folder"
        )
    first = data[0][0]
    example = first.unsqueeze(0).expand(args.batch_size, *first.shape)
    available = default_methods(model, example, args.budget, args.batch_size * 16)
    wanted = [METHOD_NAMES[m] for m in args.methods] if args.methods else list(available)
    missing = [m for m in wanted if m not in available]
    if missing:
        raise CLIError(
            f"--methods {', '.join(m.lower() for m in missing)} not available for this data "
            f"and model; choose from {', '.join(m.lower() for m in available)}"
        )
    methods = {name: available[name] for name in wanted}
    rank = dist.rank
    if rank == 0:
        say(
            f"evaluating {', '.join(methods)} on {n} examples of {args.data} at {args.budget} "
            f"forward passes, seeds {list(range(args.seed, args.seed + args.seeds))}, "
            f"batches of {args.batch_size}, into {out}"
        )
    result = evaluate(
        model,
        data,
        methods,
        budget=args.budget,
        seeds=tuple(range(args.seed, args.seed + args.seeds)),
        batch_size=args.batch_size,
        out=out,
        resume=True,
        device=args.device,
        on_error="skip" if args.skip_errors else "raise",
        show_progress=True,
        indices=range(n),
        box_threshold=args.box_threshold,
    )
    if rank == 0:
        print(result.to_markdown())
        errors = sum(1 for r in read_records(out) if r.get("status") != "ok")
        say(
            f"wrote records, summary.md, summary.csv and curves.png to {out}"
            + (f" ({errors} failed records)" if errors else "")
        )
    return 0
