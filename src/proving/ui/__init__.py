"""What people look at: HTML reports with plots (and, later, the dashboard)."""

from proving.ui.report import write_demo_report

__all__ = ["write_demo_report"]
