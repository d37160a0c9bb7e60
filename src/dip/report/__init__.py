"""Self-contained HTML reports: the restoration process frame by frame, curves, and a
side-by-side comparison with other methods."""

from .build import run_report, score
from .page import Panel, Report, Section, write_report

__all__ = ["Panel", "Report", "Section", "run_report", "score", "write_report"]
