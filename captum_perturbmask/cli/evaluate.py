"""``captum-perturbmask evaluate``: score saliency methods over a whole dataset.

A thin layer over :func:`captum_perturbmask.evaluation.evaluate`: it builds the dataset
(``digits``, a folder of images, or an ``.npz`` file) and the model (the shipped one or a
torchvision classifier with a local weights file), picks the methods and metrics by name from
the registries (:data:`~captum_perturbmask.evaluation.methods.METHODS`,
:data:`~captum_perturbmask.evaluation.scoring.METRICS`), and writes the records, the summary and its
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
        "consistency over seeds) and write records-rank*.jsonl, summary.md, summary.csv, "
        "curves.png and report.html (one self-contained page: settings, tables, curves, maps) "
        "into --out. Resumable (--resume); under `torchrun --nproc_per_node N -m "
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
        default=None,
        metavar="METHOD",
        help="registered methods to run, in any case (default: the default set of the data, "
        "e.g. perturbmask rise gradcam lime occlusion for images; a name that is not "
        "registered lists those that are)",
    )
    evaluate.add_argument(
        "--metrics",
        nargs="+",
        type=str.lower,
        default=None,
        metavar="METRIC",
        help="registered metrics to score (default: the default set, insertion deletion and, "
        "where the data has boxes, iou pointing; road adds ROAD's MoRF and LeRF, slower; a "
        "name that is not registered lists those that are)",
    )
    evaluate.add_argument(
        "--reference",
        default="default",
        metavar="REF",
        help="what removed pixels become in insertion and deletion: 'default' (insertion from "
        "a blur of images, zeros for series; deletion to zeros), 'mean' (the mean input of the "
        "evaluated examples) or a number (default: default)",
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
        "--report-examples",
        type=int_range(0, 10_000),
        default=8,
        metavar="K",
        help="examples whose maps report.html shows (the first K; kept under --out/examples/; "
        "default 8, 0 for none)",
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
    from captum_perturbmask.evaluation.distributed import Distributed

    if not 0.0 <= args.box_threshold <= 1.0:
        raise CLIError(f"--box-threshold must be in [0, 1], got {args.box_threshold}")
    data, kind = _dataset(args)
    model = _model(args, kind)
    n = len(data) if args.n_examples is None else min(args.n_examples, len(data))
    out = prepare_out(args.out)
    dist = Distributed()  # under torchrun: every rank decides on rank 0's view of --out
    try:
        return _evaluate(args, data, model, n, out, dist)
    finally:
        dist.close()


def _names(wanted: list[str] | None, registered: list[str], flag: str) -> list[str] | None:
    """``--methods`` / ``--metrics`` (any case) as registered names; ``None`` if not given."""
    if not wanted:
        return None
    by_lower = {name.lower(): name for name in registered}
    unknown = [w for w in wanted if w.lower() not in by_lower]
    if unknown:
        raise CLIError(
            f"{flag} {', '.join(unknown)} not available for this data and model; choose from "
            f"{', '.join(n.lower() for n in registered)}"
        )
    return [by_lower[w.lower()] for w in wanted]


def _reference(value: str) -> str | float:
    if value in ("default", "mean"):
        return value
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if number != number or number in (float("inf"), float("-inf")):
        raise CLIError(f"--reference must be 'default', 'mean' or a number, got {value!r}")
    return number


def _evaluate(
    args: argparse.Namespace, data: Any, model: nn.Module, n: int, out: Path, dist: Any
) -> int:
    from captum_perturbmask._core.devices import resolve_device
    from captum_perturbmask.evaluation import METHODS, METRICS, evaluate, read_records
    from captum_perturbmask.evaluation.methods import data_kind

    has_records = dist.broadcast(dist.rank == 0 and any(out.glob("records-rank*.jsonl")))
    if has_records and not args.resume:
        raise CLIError(
            f"--out {args.out} already holds records; pass --resume to continue them or choose "
            "another folder"
        )
    first = data[0][0]
    kind = data_kind(first.unsqueeze(0), "--data")
    usable = [name for name, m in METHODS.items() if kind in m.data]
    methods = _names(args.methods, usable, "--methods")
    metrics = _names(args.metrics, list(METRICS), "--metrics")
    reference = _reference(args.reference)
    if args.device is not None:
        try:
            resolve_device(args.device, "--device")
        except (TypeError, ValueError) as err:
            raise CLIError(str(err).replace("`--device`", "--device")) from None
    shown = methods or [n for n in usable if kind in METHODS[n].default]
    rank = dist.rank
    if rank == 0:
        say(
            f"evaluating {', '.join(shown)} on {n} examples of {args.data} at {args.budget} "
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
        metrics=metrics,
        reference=reference,
        device=args.device,
        out=out,
        resume=True,
        on_error="skip" if args.skip_errors else "raise",
        show_progress=True,
        indices=range(n),
        box_threshold=args.box_threshold,
        keep_examples=min(args.report_examples, n),
    )
    if rank == 0:
        print(result.to_markdown())
        errors = sum(1 for r in read_records(out) if r.get("status") != "ok")
        _write_report(args, data, result, out)
        say(
            f"wrote records, summary.md, summary.csv{', curves.png' if result.curves else ''} "
            f"and report.html to {out}" + (f" ({errors} failed records)" if errors else "")
        )
    return 0


def _write_report(args: argparse.Namespace, data: Any, result: Any, out: Path) -> None:
    """``report.html``: the run's page, with the model and data named as on the command line."""
    from captum_perturbmask.report import write_report

    if args.model in (None, "digits"):
        result.config["model"] = f"the shipped {result.config['model']}"
    else:
        weights = f"weights {args.weights}" if args.weights else "random init"
        result.config["model"] = f"torchvision {args.model} ({weights}); {result.config['model']}"
    result.config["data"] = args.data
    names = getattr(data, "classes", None)
    write_report(
        result,
        out / "report.html",
        title="captum-perturbmask evaluate",
        class_names=names if isinstance(names, list) else None,
        max_examples=args.report_examples,
        grid_examples=min(args.report_examples, 4),
    )
