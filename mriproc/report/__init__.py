"""The visual QC report: ``mriproc report OUT_DIR``.

:func:`write_report` reads a run's ``endpoints.tsv``, ``errors.tsv`` and
derivatives and writes self-contained HTML pages under ``OUT_DIR/mriproc/report/``:
per visit a mosaic of the reading image with the mask contours and a registration
check, per subject the endpoint trajectories, and a cohort page with the endpoint
distributions by arm, the errors and the flagged scans.
"""

from mriproc.report.build import ReportResult, write_report
from mriproc.report.inputs import ReportInputError

__all__ = ["ReportInputError", "ReportResult", "write_report"]
