"""Run reports: per-epoch curves, test confusion matrix and ROC, one self-contained ``report.html``.

>>> from lstmtext.report import ReportCallback, write_report, rebuild_report
>>> model.fit(x, y, epochs=5, validation_split=0.2,
...           callbacks=[ReportCallback("runs/imdb", test_data=(x_test, y_test))])  # doctest: +SKIP
>>> rebuild_report("runs/imdb")  # doctest: +SKIP

Needs the ``report`` extra (matplotlib); TensorBoard logging needs the ``tensorboard`` extra.
"""

from lstmtext.report.build import predictions_section, rebuild_report, run_report, write_report
from lstmtext.report.callbacks import ReportCallback, TensorBoard, summary_writer
from lstmtext.report.metrics import auc, confusion_matrix, roc_curve

__all__ = [
    "ReportCallback",
    "TensorBoard",
    "auc",
    "confusion_matrix",
    "predictions_section",
    "rebuild_report",
    "roc_curve",
    "run_report",
    "summary_writer",
    "write_report",
]
