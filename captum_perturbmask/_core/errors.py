"""The error of what a user gives by name or file (:class:`LoadError`, a ``ValueError`` that
names the argument; public as ``captum_perturbmask.loaders.LoadError``) and one-line messages
of exceptions (:func:`one_line`). Imports nothing, so the command line's parser stays cheap."""

from __future__ import annotations

__all__ = ["LoadError", "one_line"]


class LoadError(ValueError):
    """A model, weights, class-name, image or data file that cannot be used.

    The message is one line: the argument, the value that came, what is wrong with it and
    what was expected. ``argument`` is the loader's parameter (``"spec"``, ``"weights"``,
    ``"num_classes"``, ``"class_names"``, ``"image"``, ``"data"``, ...) and ``detail`` the
    rest of the line, so a command line can name its own option instead
    (``f"{flag} {err.detail}"``).

    Example:
        >>> err = LoadError("weights", "notes.txt is not a torch.save checkpoint: it holds text")
        >>> str(err)
        '`weights` notes.txt is not a torch.save checkpoint: it holds text'
        >>> f"--weights {err.detail}"
        '--weights notes.txt is not a torch.save checkpoint: it holds text'
    """

    def __init__(self, argument: str, detail: str) -> None:
        self.argument = argument
        self.detail = " ".join(str(detail).split())  # one line, whatever came in
        super().__init__(f"`{argument}` {self.detail}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # picklable (DataLoader workers)
        return (type(self), (self.argument, self.detail))


def one_line(err: BaseException, limit: int = 160) -> str:
    """The first sentence of an exception's message, for a one-line report.

    Example:
        >>> one_line(RuntimeError("Given groups=1, weight of size [64, 3, 7, 7]. More text"))
        'Given groups=1, weight of size [64, 3, 7, 7]'
    """
    text = str(err).strip()
    text = text.splitlines()[0] if text else type(err).__name__
    text = text.split(". ")[0].rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."
