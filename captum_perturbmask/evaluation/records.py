"""Records on disk: JSON Lines per rank, appended batch by batch, read back and resumed.

Every rank appends its records to ``records-rank<r>.jsonl`` under the output folder after each
batch (flushed and synced), so a killed run loses at most the batch in flight: a line cut by
the kill is skipped when reading and cut off before appending again, and
``completed`` tells the runner which (example, method) pairs are done. ``config.json``
holds the settings of the run; resuming with other settings is refused.

The examples kept for figures and the report (``evaluate(keep_examples=K)``) are stored beside
the records, one file per batch under ``examples/``, written before the batch's records, so
every recorded example of the first ``K`` has its maps after a kill and a resume.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "append_records",
    "completed",
    "drop_partial_line",
    "examples_path",
    "read_examples",
    "read_records",
    "records_path",
    "remove_records",
    "write_config",
    "write_examples",
]

_PATTERN = "records-rank*.jsonl"


def records_path(out: Path, rank: int) -> Path:
    """The records file of ``rank`` under ``out``."""
    return Path(out) / f"records-rank{rank:05d}.jsonl"


def read_records(out: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every complete record under the folder ``out``, rank by rank (a line cut by a kill is
    skipped).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> append_records(records_path(folder, 0), [{"kind": "run", "index": 0}])
        >>> list(read_records(folder))
        [{'kind': 'run', 'index': 0}]
    """
    for path in sorted(Path(out).glob(_PATTERN)):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # the batch in flight when a run was killed


def remove_records(out: Path) -> None:
    """Delete every records file and kept-examples file under ``out`` (a fresh run in an old
    folder)."""
    for old in (*Path(out).glob(_PATTERN), *Path(out).glob(f"examples/{_EXAMPLES}")):
        old.unlink()


_EXAMPLES = "block-*.pt"


def examples_path(out: Path, first_index: int) -> Path:
    """The kept-examples file of the batch that starts at dataset index ``first_index``."""
    return Path(out) / "examples" / f"block-{int(first_index):09d}.pt"


def write_examples(out: Path, first_index: int, kept: Mapping[str, Any]) -> None:
    """Save one batch's kept examples (``indices``, ``inputs``, ``boxes``, ``maps``: CPU
    tensors) whole or not at all (a temporary file, then a rename)."""
    import torch

    path = examples_path(out, first_index)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    torch.save(dict(kept), tmp)
    os.replace(tmp, path)


def read_examples(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every batch's kept examples under ``out``, in dataset-index order of the batches (a file
    that cannot be read is skipped: its batch has no kept maps)."""
    import torch

    found = []
    for path in sorted(Path(out).glob(f"examples/{_EXAMPLES}")):
        try:
            found.append(torch.load(path, map_location="cpu", weights_only=True))
        except Exception:  # noqa: BLE001 - a damaged file only costs the report its figures
            continue
    return found


def drop_partial_line(path: Path) -> None:
    """Cut a last line left unfinished by a killed run, so appends start on a fresh line."""
    if not path.exists():
        return
    with open(path, "rb+") as fh:
        end = fh.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            step = min(1 << 16, pos)
            fh.seek(pos - step)
            chunk = fh.read(step)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                if pos - step + cut + 1 < end:
                    fh.truncate(pos - step + cut + 1)
                return
            pos -= step
        fh.truncate(0)


def append_records(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Append ``records`` as JSON lines to ``path``, flushed and synced to disk."""
    with open(path, "a", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def completed(records: Iterable[Mapping[str, Any]], seeds: Iterable[int]) -> set[tuple[int, str]]:
    """(index, method) pairs whose records are complete: every seed, or the first seed of a
    deterministic method (failed records do not count: a resumed run retries them)."""
    wanted = set(seeds)
    seen: dict[tuple[int, str], set[int]] = {}
    complete = set()
    for r in records:
        if r["kind"] != "run" or r["status"] != "ok":
            continue
        key = (r["index"], r["method"])
        seen.setdefault(key, set()).add(r["seed"])
        if r.get("deterministic"):
            complete.add(key)
    return complete | {k for k, got in seen.items() if wanted <= got}


def write_config(out: Path, config: Mapping[str, Any], resume: bool) -> None:
    """Write ``config.json``; when resuming, first refuse a folder made with other settings
    (every key but ``seeds`` must match).

    Raises:
        ValueError: ``resume`` and the folder's settings differ, naming the keys.
    """
    path = Path(out) / "config.json"
    if resume and path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = {k for k in config if k != "seeds" and old.get(k) != config[k]}
        if changed:
            raise ValueError(
                f"`out` {out} holds records made with other settings ({', '.join(sorted(changed))}"
                f"); use another folder or resume=False"
            )
    path.write_text(json.dumps(dict(config), indent=2) + "\n", encoding="utf-8")
