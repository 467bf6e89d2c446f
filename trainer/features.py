"""Feature names: the raw contract (schema/schema.pbtxt) and the model's inputs.

Everything that names a feature imports it from here, so a rename is one edit.
"""

# Raw features, exactly as the ExampleGen writes them for the MovieLens preset and the schema
# declares them.
USER_ID = "user_id"
MOVIE_ID = "movie_id"
RATING = "rating"
TIMESTAMP = "timestamp"
USER_AGE = "user_age"
USER_GENDER = "user_gender"
USER_OCCUPATION = "user_occupation"
USER_ZIP_CODE = "user_zip_code"

RAW_FEATURES = (USER_ID, MOVIE_ID, RATING, TIMESTAMP, USER_AGE, USER_GENDER,
                USER_OCCUPATION, USER_ZIP_CODE)
RAW_BYTES_FEATURES = (USER_ID, MOVIE_ID, USER_GENDER, USER_OCCUPATION, USER_ZIP_CODE)
RAW_INT_FEATURES = (RATING, TIMESTAMP, USER_AGE)

# The raw label; absent from serving requests.
RAW_LABEL = RATING

# Transformed features: the tutorial's six categorical inputs, all strings.
USER_AGE_BUCKET = "user_age_bucket"
MODEL_FEATURES = (MOVIE_ID, USER_ID, USER_GENDER, USER_ZIP_CODE, USER_OCCUPATION,
                  USER_AGE_BUCKET)

# Transform's admission flag of a feature is named feature + this (`trainer/admission.py`).
ADMITTED_SUFFIX = "_admitted"

# Transformed binary label: 1 when rating >= LABEL_THRESHOLD.
LABEL = "label"
LABEL_THRESHOLD = 3

# Features the candidate-vs-baseline gate reports its metrics by, besides overall.
SLICE_FEATURES = (USER_GENDER, USER_AGE_BUCKET)

# TFDS' `bucketized_user_age`: each age maps to the lower bound of its bucket.
AGE_BUCKET_LOWER_BOUNDS = (1, 18, 25, 35, 45, 50, 56)


# Transform custom_config key: true to write a vocabulary per model feature (the collisionless
# model reads them; the hashed models need none).
VOCABULARIES_KEY = "vocabularies"


def vocabulary_name(feature: str) -> str:
  """Name of the Transform vocabulary file for a model feature."""
  return f"{feature}_vocab"
