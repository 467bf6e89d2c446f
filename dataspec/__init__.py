"""The dataset spec: one declaration of a dataset that everything downstream derives from.

`dataspec.spec` holds the typed spec (source, side tables, label, time, features, slices,
schema) and its strict loader; `dataspec.presets` the specs that ship with the product
(`movielens`, `taxi`); `dataspec.files` the checks of a spec against the files it names.

No TensorFlow, TFX or Beam here (and pyarrow only where a Parquet header is read): a bad
spec is a usage error reported in a fraction of a second, like a bad flag.
"""
