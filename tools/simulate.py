"""`uet simulate`: replay a dataset in time order, as a weekly schedule would.

The rows of a dataset with a time column (a preset or a spec file; default MovieLens-100K)
are cut into N time-window spans. For each period t = 1 .. N-1 the real pipeline
runs on a feed directory that holds spans 1..t (ingesting span t, training on the newest
`window` spans, warm-starting the candidate from the model in production), and then every
model is scored on period t+1: data from the future that no model has seen. Beside the
pipeline's unified candidate (warm) and hash baseline, three reference models are trained
here on exactly the same training rows:

  * unified, cold: the same model trained from scratch on the window only;
  * collisionless, vocabulary frozen at period 1: exact rows for the ids of period 1's
    training rows, every later id falls into its out-of-vocabulary row (a vocabulary model
    that is not re-fitted);
  * collisionless, vocabulary re-fitted on every window: what teams run today, trained from
    scratch, at a parameter count that moves with the vocabulary (reported per period);
  * collisionless, warm-started: the vocabulary grows by the window's new ids; the rows of
    known ids, the MLP and the default are carried over from the previous period's model,
    new ids start from its default, and training continues at the candidate's warm-start
    learning rate.

Every model gives an id it has not trained on the same treatment: the mean embedding of the
window's rarer ids (the unified models through the admission filter, the collisionless ones
in their out-of-vocabulary row), so cold is compared with cold (unified cold against
re-fitted collisionless) and warm with warm (the pipeline's candidate against warm-started
collisionless).

It reports the share of next-period rows with an id (each `id` feature of the spec) that
never appeared in training,
whether the candidate was pushed, and for every model the AUC per period and pooled over all
periods (every period's predictions in one AUC). OUTPUT/simulation.json holds all of it.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from typing import Any, Dict, List, Tuple

from pipeline.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def add_parser(sub) -> None:
  """Registers `uet simulate`."""
  p = sub.add_parser("simulate", help="replay a dataset in time order: warm vs cold vs "
                     "hash vs frozen-, re-fitted- and grown-vocabulary models on the next "
                     "period, per period and pooled",
                     description=__doc__.split("\n\n")[1])
  p.add_argument("--dataset", help="a preset name (movielens, taxi, wide) or a spec file with "
                 "a time column (default: movielens)")
  p.add_argument("--spans", type=int, default=6, help="number of equal time windows (6)")
  p.add_argument("--data-dir", help="the data directory (default: the spec's "
                 "source.data_dir; for MovieLens the official release, from --mirror or "
                 "GroupLens)")
  p.add_argument("--mirror", help="local copy of ml-100k (MovieLens without --data-dir)")
  p.add_argument("--output-dir", default="simulation", help="where everything goes")
  p.add_argument("--window", type=int, default=2, help="spans each period trains on (2)")
  p.add_argument("--epochs", type=int, default=5, help="epochs per period (5)")
  p.add_argument("--min-auc-gain", type=float, default=0.0,
                 help="baseline gate of the replayed pipeline (default 0.0: not worse)")
  p.add_argument("--auc-floor", type=float, default=0.5,
                 help="AUC floor of the replayed pipeline (default 0.5: a month of ratings, "
                 "mostly from new users, scores far below the full-data 0.70 floor, which "
                 "would block every push and so every warm start)")
  p.set_defaults(func=run)


def _split_is_train(serialized: bytes) -> bool:
  """The ExampleGen's own rule: sha256 of the serialized example, 8 of 10 buckets train."""
  return int(hashlib.sha256(serialized).hexdigest(), 16) % 10 < 8


def load_span(spec, span_path: str) -> Dict[str, Any]:
  """A span's rows as model features, labels, serving requests and the train mask.

  Args:
    spec: the dataset spec.
    span_path: the span's directory (`span-N`); its side tables are beside its source file
      or in the feed's root, as the ExampleGen finds them.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from components.example_gen import encoder, spans as spans_lib  # pylint: disable=g-import-not-at-top
  from tools import columns  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.abspath(span_path))
  table = columns.read_table(spec, root, os.path.join(os.path.basename(span_path),
                                                      spans_lib.span_file(spec)))
  is_train = [_split_is_train(e) for e in encoder.serialize_examples(table)]
  # What a client sends to `serving_default`: the raw example without its label.
  requests = encoder.serialize_examples(table.drop([spec.label.column]))
  model_inputs, label, _ = columns.model_inputs(spec, columns.to_numpy(table))
  return {"features": model_inputs, "label": label, "requests": requests,
          "is_train": np.asarray(is_train)}


def _concat(parts: List[Dict[str, Any]], train_only: bool) -> Tuple[Dict, Any]:
  import numpy as np  # pylint: disable=g-import-not-at-top
  feats = {f: np.concatenate([p["features"][f][p["is_train"]] if train_only
                              else p["features"][f] for p in parts])
           for f in parts[0]["features"]}
  label = np.concatenate([p["label"][p["is_train"]] if train_only else p["label"]
                          for p in parts])
  return feats, label


def auc(labels, scores) -> float:
  """ROC AUC with TFMA's default 10,000 thresholds."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  metric = tf.keras.metrics.AUC(num_thresholds=10_000)
  metric.update_state(labels, scores)
  return float(metric.result().numpy())


MODELS = ("unified_warm", "unified_cold", "hash", "collisionless_frozen",
          "collisionless_refit", "collisionless_warm")
# Like against like: (name, unified model, collisionless model).
PAIRS = (("cold", "unified_cold", "collisionless_refit"),
         ("warm", "unified_warm", "collisionless_warm"))
# Pooled AUC is also reported from this period on: where warm start has history to carry.
LATE_FROM_PERIOD = 3


def train_reference(training, model_type: str, feats, label, vocabularies=None,
                    warm_from=None):
  """Trains one reference model in-process with the pipeline's own builder and loop.

  `feats` carries the admission flags Transform would add when the config uses them
  (`admission.admitted_columns`); the collisionless models ignore them and give the same
  admission features their out-of-vocabulary row, set like the candidate's defaults
  (`RankingModel.fit_unseen_defaults`).

  Args:
    training: the candidate's training config.
    model_type: "unified", "hash" or "collisionless".
    feats: feature -> training values (and admission flags).
    label: training labels.
    vocabularies: collisionless: feature -> vocabulary.
    warm_from: collisionless: the previous period's model; its rows are carried over into
      `vocabularies`, a superset of its own (`warm_start.grow_collisionless`), and training
      runs at the warm-start learning rate.

  Returns:
    The trained Keras model, with `parameters` (`model.parameter_counts`) and
    `embedding_parameters` (embeddings, filter and defaults) attached.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from trainer import model as model_lib, warm_start  # pylint: disable=g-import-not-at-top
  config = training.replace(model_type=model_type)
  if model_type == "collisionless":
    config = config.replace(id_dropout=0.0)
  if warm_from is not None:
    config = config.for_warm_start()
  tf.keras.utils.set_random_seed(config.seed)
  spec = model_lib.embedding_spec(config, vocabularies)
  model = model_lib.build_model(config, spec)
  if warm_from is not None:
    warm_start.grow_collisionless(warm_from, model)
  model.parameters = model_lib.parameter_counts(config, spec)
  model.embedding_parameters = model.parameters["total"] - model.parameters["mlp"]
  ds = tf.data.Dataset.from_tensor_slices((feats, label)).shuffle(
      len(label), seed=config.seed, reshuffle_each_iteration=False).batch(
          config.batch_size).cache()
  model.fit(ds, epochs=config.epochs, verbose=0)
  model.fit_unseen_defaults(ds)  # what the Trainer does after fitting (trainer/train.py)
  return model


def config_parameters(training) -> Dict[str, int]:
  """`model.parameter_counts` of a hashed model of this config."""
  from trainer import model as model_lib  # pylint: disable=g-import-not-at-top
  return model_lib.parameter_counts(training, model_lib.embedding_spec(training))


def window_rows(loaded: List[Dict[str, Any]], t: int, window: int) -> Tuple[Dict, Any]:
  """The training rows of period t (1-based): the ExampleGen's train split of the newest
  `window` spans up to span t, as the pipeline's models train on them."""
  return _concat(loaded[max(0, t - window):t], train_only=True)


def vocabularies_of(feats) -> Dict[str, List[str]]:
  """Transform's vocabularies of the analyzed (training) rows: feature -> sorted values."""
  return {f: sorted({v.decode() for v in values}) for f, values in feats.items()}


def grown_vocabularies(previous: Dict[str, List[str]], feats) -> Dict[str, List[str]]:
  """`previous` with the window's new values appended (known values keep their order)."""
  now = vocabularies_of(feats)
  return {f: list(previous[f]) + sorted(set(now[f]) - set(previous[f])) for f in now}


def train_references(training, loaded: List[Dict[str, Any]], t: int, window: int,
                     frozen_vocabulary: Dict[str, List[str]],
                     previous_warm=None) -> Dict[str, Any]:
  """Period t's reference models, trained on period t's training rows only.

  Args:
    training: the candidate's training config.
    loaded: every span (`load_span`); only spans up to t are read.
    t: the period (1-based).
    window: spans per training window.
    frozen_vocabulary: the vocabularies of period 1's training rows.
    previous_warm: period t-1's warm-started collisionless model (None at period 1: it
      starts cold).

  Returns:
    {"feats", "label": the training rows; "models": name -> model; "filter_rows": the
    rows the admission filter is built from}.
  """
  from trainer import admission  # pylint: disable=g-import-not-at-top
  feats, label = window_rows(loaded, t, window)
  admitted = training.admission_features
  refit_vocab = vocabularies_of(feats)
  grown_vocab = (refit_vocab if previous_warm is None else
                 grown_vocabularies(dict(previous_warm.spec.vocabularies), feats))
  models = {
      "unified_cold": train_reference(training, "unified",
                                      admission.admitted_columns(feats, feats, admitted),
                                      label),
      "collisionless_frozen": train_reference(training, "collisionless", feats, label,
                                              frozen_vocabulary),
      "collisionless_refit": train_reference(training, "collisionless", feats, label,
                                             refit_vocab),
      "collisionless_warm": train_reference(training, "collisionless", feats, label,
                                            grown_vocab, warm_from=previous_warm),
  }
  return {"feats": feats, "label": label, "models": models, "filter_rows": feats}


def paired_differences(rows: List[Dict[str, Any]], pooled: Dict[str, float]
                       ) -> Dict[str, Dict[str, Any]]:
  """Unified minus collisionless AUC, like against like (`PAIRS`), per period and pooled."""
  return {name: {"unified": u, "collisionless": c,
                 "per_period": [r["auc"][u] - r["auc"][c] for r in rows],
                 "pooled": pooled[u] - pooled[c]}
          for name, u, c in PAIRS if u in pooled and c in pooled}


def predict(model, feats):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ds = tf.data.Dataset.from_tensor_slices(feats).batch(8192)
  return model.predict(ds, verbose=0).reshape(-1)


def score_saved_model(model_dir: str, requests: List[bytes]):
  """Probabilities from a pipeline model's serving signature (raw tf.Examples in)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  serve = tf.saved_model.load(model_dir).signatures["serving_default"]
  out = [serve(examples=tf.constant(requests[i:i + 8192]))["probability"].numpy()
         for i in range(0, len(requests), 8192)]
  return np.concatenate(out)


ANY_ID = "any_id"


def unseen_share(next_feats, seen: Dict[str, set]) -> Dict[str, float]:
  """Per id feature of `seen`, the share of next-period rows whose value never appeared
  before; under `ANY_ID`, the share of rows with at least one such value."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  new = {f: np.array([v not in values for v in next_feats[f]]) for f, values in seen.items()}
  shares = {f: float(mask.mean()) for f, mask in new.items()}
  shares[ANY_ID] = float(np.logical_or.reduce(list(new.values())).mean()) if new else 0.0
  return shares


def returning_rows(next_feats, feature: str, seen_values):
  """Mask of next-period rows whose `feature` value (the returning user) appeared before."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  return np.array([v in seen_values for v in next_feats[feature]])


def returning_feature(spec) -> str:
  """The id feature "returning" is measured on: the first with role user, else the first
  id feature."""
  ids = spec.features_of_kind("id")
  return next((f.name for f in ids if f.role == "user"), ids[0].name)


def pooled_auc(rows: List[Dict[str, Any]], scores: Dict[str, List[Any]], labels: List[Any],
               from_period: int = 1) -> Dict[str, float]:
  """Per model: one AUC over the predictions of every period >= `from_period`."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  keep = [i for i, r in enumerate(rows) if r["period"] >= from_period]
  if not keep:
    return {}
  y = np.concatenate([labels[i] for i in keep])
  return {m: auc(y, np.concatenate([s[i] for i in keep])) for m, s in scores.items()}


def simulation_summary(rows: List[Dict[str, Any]], scores: Dict[str, List[Any]],
            labels: List[Any]) -> Dict[str, Any]:
  """What simulation.json holds: per model AUC per period and pooled; unseen shares; rows."""
  pooled = pooled_auc(rows, scores, labels)
  late = pooled_auc(rows, scores, labels, LATE_FROM_PERIOD)
  return {
      "models": {m: {"auc_per_period": [r["auc"][m] for r in rows],
                     "auc_pooled": pooled[m],
                     f"auc_pooled_from_period_{LATE_FROM_PERIOD}": late.get(m),
                     "embedding_parameters_per_period":
                         [r["embedding_parameters"].get(m) for r in rows],
                     "parameters_per_period": [r["parameters"].get(m) for r in rows]}
                 for m in scores},
      "unified_minus_collisionless": paired_differences(rows, pooled),
      "unseen_share_per_period": [dict(period=r["period"], **r["unseen"]) for r in rows],
      "periods": rows,
  }


def write_report(rows: List[Dict[str, Any]], output_dir: str,
                 result: Dict[str, Any], title: str = "", returning: str = "") -> str:
  """Markdown table + PNG plot + JSON of the results; returns the markdown."""
  names = [m for m in MODELS if m in result["models"]]
  header = ("| period | trains on spans | train rows | next-period rows | unseen id | "
            "unified warm | unified cold | hash | collisionless (frozen vocab) | "
            "collisionless (re-fitted vocab) | collisionless (warm, grown vocab) | pushed |")
  lines = [header, "|" + "---|" * 12]
  for r in rows:
    per_feature = ", ".join(f"{f} {v:.1%}" for f, v in r["unseen"].items() if f != ANY_ID)
    lines.append(
        f"| {r['period']} | {r['train_spans']} | {r['train_rows']} | {r['next_rows']} | "
        f"{r['unseen'][ANY_ID]:.1%} ({per_feature}) | " +
        " | ".join(f"{r['auc'][m]:.4f}" for m in names) +
        f" | {'yes' if r['pushed'] else 'no'} |")
  models = result["models"]
  late = f"auc_pooled_from_period_{LATE_FROM_PERIOD}"
  lines.append("| pooled | | | | | " + " | ".join(f"{models[m]['auc_pooled']:.4f}"
                                                 for m in names) + " | |")
  lines.append(f"| pooled, periods {LATE_FROM_PERIOD}+ | | | | | " +
               " | ".join(f"{models[m][late]:.4f}" if models[m][late] is not None else ""
                          for m in names) + " | |")
  pairs = result["unified_minus_collisionless"]
  lines += ["", "Unified minus collisionless AUC, like against like (cold: unified cold vs "
            "re-fitted vocabulary; warm: the pipeline's warm-started candidate vs the "
            "warm-started, grown-vocabulary collisionless model):", "",
            "| period | " + " | ".join(pairs) + " |", "|" + "---|" * (len(pairs) + 1)]
  for i, r in enumerate(rows):
    lines.append(f"| {r['period']} | " + " | ".join(
        f"{p['per_period'][i]:+.4f}" for p in pairs.values()) + " |")
  lines.append("| pooled | " + " | ".join(f"{p['pooled']:+.4f}" for p in pairs.values())
               + " |")
  lines += ["", "Parameters per period: the total, MLP included (in parentheses: embeddings, "
            "filter and defaults):", "",
            "| period | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
  for i, r in enumerate(rows):
    lines.append(f"| {r['period']} | " + " | ".join(
        f"{models[m]['parameters_per_period'][i]['total']:,} "
        f"({models[m]['embedding_parameters_per_period'][i]:,})" for m in names) + " |")
  lines += ["", f"AUC on the next period's rows of *returning* {returning} values only "
            "(values seen in an earlier period):", "",
            "| period | returning rows | " + " | ".join(names) + " |",
            "|" + "---|" * (len(names) + 2)]
  for r in rows:
    a = r["auc_returning"]
    lines.append(f"| {r['period']} | {r['returning_rows']} | " +
                 " | ".join(f"{a[m]:.4f}" for m in names) + " |")
  markdown = "\n".join(lines) + "\n"
  with open(os.path.join(output_dir, "simulation.md"), "w") as f:
    f.write("AUC on the next period (future data), per model\n\n" + markdown)
  with open(os.path.join(output_dir, "simulation.json"), "w") as f:
    json.dump(result, f, indent=2)
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(8, 4.5))
  periods = [r["period"] for r in rows]
  for key, label in (("unified_warm", "unified, warm-started"),
                     ("unified_cold", "unified, cold"), ("hash", "hash (per-feature)"),
                     ("collisionless_frozen", "collisionless, vocab frozen at period 1"),
                     ("collisionless_refit", "collisionless, vocab re-fitted every window"),
                     ("collisionless_warm", "collisionless, warm-started, vocab grown")):
    ax.plot(periods, [r["auc"][key] for r in rows], marker="o", label=label)
  ax2 = ax.twinx()
  ax2.bar(periods, [r["unseen"][ANY_ID] for r in rows], alpha=0.15, color="gray",
          label="unseen id (share)")
  ax2.set_ylim(0, 1)
  ax2.set_ylabel("share of next-period rows with an unseen id")
  ax.set_xlabel("period t (trained up to t, scored on t+1)")
  ax.set_ylabel("AUC on period t+1")
  ax.set_xticks(periods)
  ax.legend(loc="lower right", fontsize=8)
  ax.set_title(f"{title} replayed in time order")
  fig.tight_layout()
  fig.savefig(os.path.join(output_dir, "simulation.png"), dpi=120)
  plt.close(fig)
  return markdown


def run(args: argparse.Namespace) -> int:
  """Runs the replay; exit code 0 when every period completed."""
  from components.example_gen import spans as spans_lib  # pylint: disable=g-import-not-at-top
  from dataspec import files, spec as spec_lib  # pylint: disable=g-import-not-at-top
  from pipeline import config as config_lib, data, lock  # pylint: disable=g-import-not-at-top
  if args.spans < 2:
    print("uet simulate: error: --spans must be >= 2 (train on one, score the next)",
          file=sys.stderr)
    return EXIT_USAGE
  output_dir = os.path.abspath(args.output_dir)
  os.makedirs(output_dir, exist_ok=True)
  try:
    spec = spec_lib.load(args.dataset)
    if spec.time is None or not spec.id_features:
      raise ValueError(f"dataset {spec.name} ({spec.origin}) declares no time column or no "
                       "id feature: the replay cuts spans by time and measures unseen ids; "
                       "add `time:` and an `id` feature to the spec")
    data_dir = spec_lib.resolve_data_dir(spec, args.data_dir)
    if data_dir:
      source = files.check(spec, data_dir).data_dir
    elif spec.origin == spec_lib.preset_path(spec_lib.DEFAULT_PRESET):
      source = data.fetch_ml100k(os.path.join(output_dir, "data", "ml-100k"),
                                 mirror=args.mirror)
    else:
      raise ValueError(f"dataset {spec.name} ({spec.origin}) names no data directory "
                       "(source.data_dir): pass --data-dir")
    all_spans = spans_lib.write_time_spans(spec, source, os.path.join(output_dir, "spans"),
                                           num_spans=args.spans)
  except (ValueError, data.DatasetError) as e:
    print(f"uet simulate: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  if len(all_spans) < 2:
    print("uet simulate: error: the rows fall into fewer than 2 spans", file=sys.stderr)
    return EXIT_USAGE

  loaded = [load_span(spec, s.path) for s in all_spans]
  feed = os.path.join(output_dir, "feed")
  pipeline_out = os.path.join(output_dir, "pipeline")
  shutil.rmtree(feed, ignore_errors=True)
  shutil.rmtree(pipeline_out, ignore_errors=True)
  os.makedirs(feed)
  for table in spec.source.side_tables:
    shutil.copy2(os.path.join(output_dir, "spans", table.path), feed)
  config = config_lib.from_mapping(
      {"dataset": spec, "training": {"epochs": args.epochs},
       "evaluation": {"min_auc_gain": args.min_auc_gain, "auc_floor": args.auc_floor}},
      data_dir=feed, output_dir=pipeline_out, span_pattern=spans_lib.span_pattern(spec),
      window_spans=args.window)
  frozen_vocab = vocabularies_of(window_rows(loaded, 1, args.window)[0])

  with lock.output_lock(pipeline_out):
    return _replay(args, config, all_spans, loaded, feed, frozen_vocab, output_dir)


def _replay(args, config, all_spans, loaded, feed, frozen_vocab, output_dir) -> int:  # pylint: disable=too-many-locals
  """The periods of the replay; the caller holds the pipeline output directory's lock."""
  from components.example_gen import spans as spans_lib  # pylint: disable=g-import-not-at-top
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  from tools import run_command  # pylint: disable=g-import-not-at-top
  from trainer import admission  # pylint: disable=g-import-not-at-top
  spec = config.dataset
  returning_by = returning_feature(spec)
  rows = []
  scores_by_model: Dict[str, List[Any]] = {m: [] for m in MODELS}
  labels = []
  previous_warm = None
  start = time.perf_counter()
  for t in range(1, len(all_spans)):
    # Period t's data arrives: the scheduled run ingests it.
    shutil.copytree(all_spans[t - 1].path, spans_lib.span_dir(feed, t))
    print(f"\n== period {t}: ingest span {t}, score span {t + 1}", file=sys.stderr)
    try:
      summary = run_command.run_pipeline(config)
    except local_runner.PipelineRunError as e:
      print(f"uet simulate: period {t} FAILED: {e}", file=sys.stderr)
      return EXIT_FAILED
    nxt = loaded[t]
    seen = {f: {v for p in loaded[:t] for v in p["features"][f]} for f in spec.id_features}
    refs = train_references(config.candidate, loaded, t, args.window, frozen_vocab,
                            previous_warm)
    feats, label, ref = refs["feats"], refs["label"], refs["models"]
    previous_warm = ref["collisionless_warm"]
    # The cold model sees the admission flags Transform gives the pipeline's models: a
    # filter of the window's training ids.
    admitted = config.candidate.admission_features
    scores = {
        "unified_warm": score_saved_model(summary["candidate_model_dir"], nxt["requests"]),
        "unified_cold": predict(ref["unified_cold"], admission.admitted_columns(
            nxt["features"], refs["filter_rows"], admitted)),
        "hash": score_saved_model(summary["baseline_model_dir"], nxt["requests"]),
        **{m: predict(ref[m], nxt["features"]) for m in
           ("collisionless_frozen", "collisionless_refit", "collisionless_warm")},
    }
    for m, v in scores.items():
      scores_by_model[m].append(v)
    labels.append(nxt["label"])
    returning = returning_rows(nxt["features"], returning_by, seen[returning_by])
    row = {
        "period": t,
        "train_spans": f"{max(1, t - args.window + 1)}-{t}",
        "train_rows": int(len(label)),
        "next_rows": int(len(nxt["label"])),
        "unseen": unseen_share(nxt["features"], seen),
        "auc": {k: auc(nxt["label"], v) for k, v in scores.items()},
        # Where memory of earlier periods can matter: users who came before.
        "returning_rows": int(returning.sum()),
        "auc_returning": {k: auc(nxt["label"][returning], v[returning])
                                for k, v in scores.items()},
        "warm_started": bool(summary.get("warm_started_from")),
        "pushed": bool(summary["pushed_model_dir"]),
        "pipeline_seconds": summary["seconds"],
        "parameters": {"unified_warm": ref["unified_cold"].parameters,
                       "hash": config_parameters(config.baseline),
                       **{m: model.parameters for m, model in ref.items()}},
    }
    row["embedding_parameters"] = {m: p["total"] - p["mlp"]
                                   for m, p in row["parameters"].items()}
    rows.append(row)
    print(f"period {t}: " + ", ".join(f"{k} {v:.4f}" for k, v in row["auc"].items()) +
          f"; unseen id {row['unseen'][ANY_ID]:.1%}; pushed {row['pushed']}",
          file=sys.stderr)
  result = simulation_summary(rows, scores_by_model, labels)
  result["seconds"] = time.perf_counter() - start
  markdown = write_report(rows, output_dir, result, title=spec.name, returning=returning_by)
  print(markdown)
  print(f"simulation: {time.perf_counter() - start:.0f} s; table {output_dir}/simulation.md, "
        f"plot {output_dir}/simulation.png")
  return EXIT_OK
