"""``captum-perturbmask evaluate``: score saliency methods over a whole dataset.

A thin layer over :func:`captum_perturbmask.evaluation.evaluate`: it builds the dataset
(``digits``, a folder of images or an ``.npz`` file, through :mod:`captum_perturbmask.loaders`)
and the model (:func:`~captum_perturbmask.loaders.load_model`: the shipped one, a torchvision
name, an exported or scripted file, a factory, timm or Hugging Face), checks that the model
takes the data (one forward pass) before any work, picks the methods and metrics by name from
the registries (:data:`~captum_perturbmask.evaluation.methods.METHODS`,
:data:`~captum_perturbmask.evaluation.scoring.METRICS`), and writes the records, the summary
and its figures into ``--out``. Under ``torchrun`` every rank runs this command on its own
shard and rank 0 writes the summary.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from captum_perturbmask.cli._common import (
    LOADER_FLAGS,
    MAX_BATCH,
    MAX_SEEDS,
    MAX_SIZE,
    MIN_SIZE,
    CLIError,
    first_sentence,
    int_range,
    load_cli_model,
    loader_errors,
    prepare_out,
    say,
)


def _folder(path: str, size: int) -> Any:
    from captum_perturbmask.loaders.datasets import ImageFolderDataset

    with loader_errors():
        data = ImageFolderDataset(path, size)
    say(
        f"{len(data)} images in {len(data.classes)} class folders; resized to {size} px on the "
        f"shorter side and centre-cropped to {size} x {size}"
    )
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
        data, kind = _folder(args.data, args.size), "images"
    elif path.is_file() and path.suffix.lower() == ".npz":
        from captum_perturbmask.loaders.datasets import NpzDataset

        with loader_errors():
            data, kind = NpzDataset(args.data), "npz"
    else:
        what = "does not exist" if not path.exists() else "is neither a folder nor an .npz file"
        raise CLIError(
            f"--data must be 'digits', a folder of class subfolders of images, or an .npz file; "
            f"{args.data!r} {what}"
        )
    return (_Predicted(data) if args.predicted else data), kind


def _model(args: argparse.Namespace, kind: str) -> Any:
    """The model of ``--model`` (the shipped digits classifier by default for the digits)."""
    spec = args.model
    if spec is None:
        if kind != "digits":
            raise CLIError(
                "--model is needed for this --data: a torchvision name, a .pt2 or TorchScript "
                "file, package.module:factory, timm:NAME, hf:FOLDER or 'digits'"
            )
        spec = "digits"
    model, _ = load_cli_model(args, spec)
    return model


def _item_error(err: Exception) -> str:
    from captum_perturbmask.loaders import LoadError

    if isinstance(err, LoadError):
        return f"{LOADER_FLAGS.get(err.argument, err.argument)} {err.detail}"
    return first_sentence(err)


def _first_item(data: Any, n: int, skip: bool) -> tuple[Any, ...]:
    """The first item that loads: the first item, or with ``--skip-errors`` the first of
    those that load."""
    from captum_perturbmask.evaluation.data import check_item
    from captum_perturbmask.loaders import LoadError

    first_error = None
    for index in range(n):
        try:
            return check_item(data[index], index)
        except (ValueError, TypeError, OSError) as err:  # LoadError is a ValueError
            if not skip:
                where = "" if isinstance(err, LoadError) else f"--data item {index}: "
                raise CLIError(
                    f"{where}{_item_error(err)}; --skip-errors records such items and goes on"
                ) from None
            first_error = first_error or _item_error(err)
    raise CLIError(f"none of the {n} items of --data could be read; the first: {first_error}")


def _check_fit(model: Any, first: Any, data: Any, args: argparse.Namespace) -> None:
    """The model takes the data's inputs and has a class for every target, or one line."""
    from captum_perturbmask.loaders import LoadError
    from captum_perturbmask.loaders.models import probe_model

    x = first.unsqueeze(0).to(args.device or "cpu")
    label = args.model or "digits"
    try:
        logits = probe_model(model, x, label)
    except LoadError as err:
        hint = ""
        if x.dim() == 3:
            hint = "; --data holds series (N, C, T): the model must take series"
        elif x.dim() == 4:
            hint = f"; --data holds {x.shape[1]}-channel images (N, C, H, W)"
        with loader_errors():
            raise LoadError(err.argument, err.detail + hint) from None
    classes = logits.shape[1]
    inner = getattr(data, "data", data)  # under _Predicted, the targets do not count
    if inner is not data:
        return
    targets = getattr(inner, "targets", None)
    top = None
    if isinstance(targets, list) or hasattr(targets, "max"):
        top = int(max(targets)) if len(targets) else None
    if hasattr(inner, "classes") and isinstance(inner.classes, list):
        top = len(inner.classes) - 1
    if top is not None and classes > 1 and top >= classes:
        raise CLIError(
            f"--data {args.data} has class {top} but --model {label} has {classes} outputs "
            f"(classes 0..{classes - 1}); pass --num-classes, other --weights or --predicted"
        )


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
            "--model", "--weights", "--num-classes", "--normalize", "--budget", "--seed",
            "--device", "--threads", "--skip-errors", "--out",
            model={
                "help": "the classifier: 'digits' (the shipped one, the default for --data "
                "digits), a torchvision name, a .pt2 (torch.export) or TorchScript file, "
                "package.module:factory, timm:NAME or hf:FOLDER",
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
    evaluate.set_defaults(command="evaluate")


def run(args: argparse.Namespace) -> int:
    """Evaluate; see :func:`add_parser` for the arguments."""
    from captum_perturbmask.evaluation.distributed import Distributed
    from captum_perturbmask.loaders import LoadError

    if not 0.0 <= args.box_threshold <= 1.0:
        raise CLIError(f"--box-threshold must be in [0, 1], got {args.box_threshold}")
    reference = _reference(args.reference)
    data, kind = _dataset(args)
    model = _model(args, kind)
    n = len(data) if args.n_examples is None else min(args.n_examples, len(data))
    first = _first_item(data, n, args.skip_errors)[0]
    _check_fit(model, first, data, args)
    created = not Path(args.out).exists()
    out = prepare_out(args.out)
    dist = Distributed()  # under torchrun: every rank decides on rank 0's view of --out
    try:
        return _evaluate(args, data, model, first, n, out, dist, reference)
    except LoadError as err:  # an item that cannot be read, without --skip-errors
        _drop_if_empty(out, created, dist)
        raise CLIError(
            f"{_item_error(err)}; --skip-errors records such items and goes on"
        ) from None
    except (ValueError, TypeError, RuntimeError) as err:  # the model or a method failed
        _drop_if_empty(out, created, dist)
        raise CLIError(
            f"evaluation stopped: {first_sentence(err)}; --skip-errors records failing items "
            "and goes on"
        ) from None
    except CLIError:
        _drop_if_empty(out, created, dist)
        raise
    finally:
        dist.close()


def _drop_if_empty(out: Path, created: bool, dist: Any) -> None:
    """Remove the ``--out`` this run created when it failed before recording any example
    (the records of finished batches stay, for ``--resume``)."""
    import shutil

    records = [p for p in out.glob("records-rank*.jsonl") if p.stat().st_size > 0]
    if created and dist.rank == 0 and not records:
        shutil.rmtree(out, ignore_errors=True)


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
    args: argparse.Namespace, data: Any, model: Any, first: Any, n: int, out: Path, dist: Any,
    reference: str | float,
) -> int:  # fmt: skip
    from captum_perturbmask.evaluation import METHODS, METRICS, evaluate, read_records
    from captum_perturbmask.evaluation.methods import data_kind

    has_records = dist.broadcast(dist.rank == 0 and any(out.glob("records-rank*.jsonl")))
    if has_records and not args.resume:
        raise CLIError(
            f"--out {args.out} already holds records; pass --resume to continue them or choose "
            "another folder"
        )
    kind = data_kind(first.unsqueeze(0), "--data")
    usable = [name for name, m in METHODS.items() if kind in m.data]
    methods = _names(args.methods, usable, "--methods")
    metrics = _names(args.metrics, list(METRICS), "--metrics")
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

    weights = f", weights {args.weights}" if args.weights else ""
    if args.model in (None, "digits"):
        result.config["model"] = f"the shipped {result.config['model']}{weights}"
    else:
        result.config["model"] = f"{args.model}{weights}; {result.config['model']}"
    result.config["data"] = args.data
    names = getattr(getattr(data, "data", data), "classes", None)
    write_report(
        result,
        out / "report.html",
        title="captum-perturbmask evaluate",
        class_names=names if isinstance(names, list) else None,
        max_examples=args.report_examples,
        grid_examples=min(args.report_examples, 4),
    )
