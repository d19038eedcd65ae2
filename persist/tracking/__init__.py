"""The only place that imports mlflow: run lifecycle, tags, artifacts and run lookup."""

from persist.tracking.artifacts import (
                                       download_artifact,
                                       downloaded,
                                       log_arrays,
                                       log_directory,
                                       log_figure,
                                       log_html,
                                       log_json,
                                       read_json,
)
from persist.tracking.runs import (
                                       find_finished,
                                       find_runs,
                                       get_run,
                                       log_metrics,
                                       phase_run,
                                       resolve_tracking_uri,
                                       set_tags,
                                       setup_tracking,
)

__all__ = [
    "download_artifact", "downloaded", "find_finished", "find_runs", "get_run", "log_arrays", "log_directory",
    "log_figure", "log_html", "log_json", "log_metrics",
    "phase_run", "read_json", "resolve_tracking_uri", "set_tags", "setup_tracking",
]
