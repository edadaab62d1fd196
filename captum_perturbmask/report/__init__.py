"""Reports: what a run produced, as pages a reviewer opens in a browser.

* :func:`write_report` / :func:`report_html` - one self-contained HTML page of an
  :class:`~captum_perturbmask.evaluation.EvaluationResult` (from
  :func:`~captum_perturbmask.evaluation.evaluate` or
  :func:`~captum_perturbmask.evaluation.compare`): configuration, tables with 95% intervals,
  paired differences, insertion / deletion curves, a grid of maps and a view of each kept
  example;
* :func:`explain_index_html` - the index page of a folder of explanations.

Every page carries its style inline and its figures as inline PNGs: it loads nothing (no
script, no font, no network address), so it reads the same offline, attached to a mail or
stored as a CI artefact. The figures come from :mod:`captum_perturbmask.viz`.
"""

from captum_perturbmask.report.evaluation import report_html, write_report
from captum_perturbmask.report.explain import explain_index_html

__all__ = ["explain_index_html", "report_html", "write_report"]
