"""The run report: one self-contained HTML page per pipeline run, and the run history.

`write_report(output_dir, run_id)` reads ML Metadata and the run's artifacts (through
`tools.report.collect`) and writes `OUTPUT/report/<run id>/index.html` (charts inline as
PNG data URIs, no script, nothing fetched from any network) and points
`OUTPUT/report/latest` at it. `uet run` calls it after every run, `uet report` rebuilds one,
and `uet runs` lists the history (`tools.report.cli`).

This module stays light: the CLI imports the package to declare its flags, and TensorFlow,
TFX, TFMA and matplotlib load only when a report is written.
"""

from typing import Any, Dict, Optional


def write_report(output_dir: str, run_id: Optional[str] = None, *,
                 metadata_path: Optional[str] = None, pipeline_name: Optional[str] = None,
                 summary: Optional[Dict[str, Any]] = None) -> str:
  """Writes the report of one pipeline run and points OUTPUT/report/latest at it.

  See `tools.report.writer.write_report` (the arguments are the same).

  Returns:
    The path of the report's index.html.
  """
  from tools.report import writer  # pylint: disable=g-import-not-at-top
  return writer.write_report(output_dir, run_id, metadata_path=metadata_path,
                             pipeline_name=pipeline_name, summary=summary)
