"""The report's charts: matplotlib figures as inline PNG data URIs (no file, no network)."""

import base64
import io
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # no display; before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

from tools.report import collect  # noqa: E402

_COLORS = {"candidate": "#1f77b4", "baseline": "#ff7f0e", "production": "#2ca02c"}


def _data_uri(fig) -> str:
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
  plt.close(fig)
  return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def metric_by_slice(metrics: Dict[str, Dict[str, Dict[str, float]]],
                    metric: str) -> Optional[str]:
  """Grouped bars: one group per slice, one bar per model (candidate, baseline, production)."""
  slices = [s for s in _slice_order(metrics)
            if any(metric in m for m in metrics[s].values())]
  models = [m for m in collect.MODELS if any(m in metrics[s] for s in slices)]
  if not slices or not models:
    return None
  fig, ax = plt.subplots(figsize=(7.5, 2.8))
  width = 0.8 / len(models)
  for i, model in enumerate(models):
    xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(slices))]
    ys = [metrics[s].get(model, {}).get(metric, float("nan")) for s in slices]
    ax.bar(xs, ys, width, label=model, color=_COLORS.get(model))
  ax.set_xticks(range(len(slices)))
  ax.set_xticklabels(slices, rotation=20, ha="right", fontsize=8)
  ax.set_ylabel(metric)
  values = [metrics[s][m][metric] for s in slices for m in models
            if metric in metrics[s].get(m, {})]
  low, high = min(values), max(values)
  pad = max((high - low) * 0.3, 0.01)
  top = high + pad
  if metric == "auc":
    top = min(top, 1.0)
  ax.set_ylim(max(0.0, low - pad), top)  # differences matter, not the axis from 0
  ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
  ax.grid(axis="y", alpha=0.3)
  return _data_uri(fig)


def _slice_order(metrics) -> List[str]:
  return sorted(metrics, key=lambda s: (s != "overall", s))


def histogram(buckets: Sequence[Tuple[float, float, float]], title: str) -> Optional[str]:
  """TFDV's standard histogram: one bar per (low, high, count) bucket, to scale."""
  if not buckets:
    return None
  fig, ax = plt.subplots(figsize=(4.5, 2.4))
  ax.bar([low for low, _, _ in buckets], [count for _, _, count in buckets],
         width=[high - low for low, high, _ in buckets], align="edge", color="#1f77b4",
         edgecolor="white")
  ax.set_title(title, fontsize=9)
  ax.set_ylabel("examples (approx.)")
  ax.grid(axis="y", alpha=0.3)
  return _data_uri(fig)


def drift(measures: Sequence["collect.DriftMeasure"]) -> Optional[str]:
  """Each drift distance as a bar, its threshold as a tick mark."""
  if not measures:
    return None
  labels = [f"{m.feature} ({m.split})" for m in measures]
  fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(measures)))
  ys = range(len(measures))
  ax.barh(ys, [m.value for m in measures],
          color=["#2ca02c" if m.passed else "#d62728" for m in measures])
  ax.scatter([m.threshold for m in measures], ys, marker="|", s=300, color="black",
             label="threshold", zorder=3)
  ax.set_yticks(list(ys))
  ax.set_yticklabels(labels, fontsize=8)
  ax.set_xlim(0, max(max(m.threshold for m in measures),
                     max(m.value for m in measures)) * 1.1)
  ax.set_xlabel("distance from the baseline span")
  ax.legend(fontsize=8, loc="lower right")
  return _data_uri(fig)


def training_curves(curves: Dict[str, Dict[str, List[Tuple[int, float]]]],
                    metric: str) -> Optional[str]:
  """`metric` (epoch_loss, epoch_auc) per epoch, train and validation, for each model."""
  lines = [(model, phase, points) for model, tags in sorted(curves.items())
           for phase in ("train", "validation")
           for points in [tags.get(f"{phase}/{metric}")] if points]
  if not lines:
    return None
  fig, ax = plt.subplots(figsize=(4.5, 2.6))
  for model, phase, points in lines:
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
            linestyle="-" if phase == "train" else "--", color=_COLORS.get(model),
            label=f"{model} {phase}")
  ax.set_xlabel("epoch")
  ax.set_title(metric.replace("epoch_", ""), fontsize=9)
  ax.xaxis.get_major_locator().set_params(integer=True)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  return _data_uri(fig)


def history(rows: Sequence["collect.RunRow"]) -> Optional[str]:
  """Candidate AUC of every run; pushed versions marked."""
  points = [r for r in rows if r.candidate_auc is not None]
  if not points:
    return None
  fig, ax = plt.subplots(figsize=(7.5, 2.4))
  xs = range(len(points))
  ax.plot(list(xs), [r.candidate_auc for r in points], color="#1f77b4", marker=".",
          label="candidate AUC")
  pushed = [(i, r) for i, r in enumerate(points) if r.pushed]
  ax.scatter([i for i, _ in pushed], [r.candidate_auc for _, r in pushed], s=60,
             color="#2ca02c", zorder=3, label="pushed")
  for i, r in pushed:
    ax.annotate(r.pushed_version, (i, r.candidate_auc), fontsize=7,
                textcoords="offset points", xytext=(0, 6), ha="center")
  ax.set_xticks(list(xs))
  ax.set_xticklabels([f"span {r.span}" if r.span is not None else "" for r in points],
                     fontsize=7, rotation=20)
  ax.set_ylabel("AUC")
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  return _data_uri(fig)
