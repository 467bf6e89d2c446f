"""The model package: features, preprocessing, embeddings, model, training, export.

What imports it must have set TF_USE_LEGACY_KERAS=1 before TensorFlow loads (the `uet` CLI,
the container image and the tests do).
"""
