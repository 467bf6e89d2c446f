# TFRS, TFT and TFMA need Keras 2 (tf-keras); TensorFlow 2.16 picks Keras 3 unless this is set
# before `tf.keras` is first touched. Every entry point imports this package first.
import os as _os

_os.environ["TF_USE_LEGACY_KERAS"] = "1"
