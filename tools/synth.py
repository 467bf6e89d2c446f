"""`uet synth`: synthetic ratings in the MovieLens layout, at any size.

    uet synth --ratings 1000000 --out DIR [--users U] [--movies M] [--seed S]

writes DIR/u.data (`user\\tmovie\\trating\\ttimestamp`, in time order) and DIR/u.user
(`user|age|gender|occupation|zip`), which `uet run --data-dir DIR` and `uet spans` read
unchanged. What makes it look like a real catalogue:

- popularity is heavy-tailed: a movie's weight is Zipf in its (random) popularity rank, and
  user activity is too, so a few ids carry most of the ratings and most ids are rare (the
  regime where hashing collides and unified embedding matters);
- users and movies arrive over time: a fifth of the users and a third of the movies exist
  at the start, the others appear at evenly spread points of the stream and are only
  rated after they arrived;
- timestamps never decrease (about 215 days, like MovieLens-100K, from 1997-09-20);
- ratings carry signal (user bias, movie quality and a low-rank taste match), so the
  models have something to learn; demographics use the schema's own vocabularies.

The same seed gives byte-identical files. Ratings are generated and written in chunks of
`CHUNK` rows with numpy and pyarrow, so memory depends on the number of users and movies,
not on the number of ratings. numpy and pyarrow load when the command runs, so `uet`
itself starts fast.
"""

from __future__ import annotations  # numpy types in annotations stay unevaluated

import argparse
import os
import sys
from typing import TYPE_CHECKING, Dict, List, Optional

from pipeline.exit_codes import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
  import numpy as np

CHUNK = 1_000_000
START_TIMESTAMP = 874_724_710  # 1997-09-20, the first rating of MovieLens-100K
DURATION_SECONDS = 215 * 86_400
ZIPF_MOVIES = 1.0   # popularity exponent of movies (weight of rank r: r ** -s)
ZIPF_USERS = 0.8    # activity exponent of users
INITIAL_USERS = 0.2
INITIAL_MOVIES = 0.3
ARRIVAL_END = 0.9   # every id has arrived by 90% of the stream
TASTE_DIMS = 4
# Gender shares of MovieLens-100K's users.
GENDER_SHARES = {"M": 0.71, "F": 0.29}


def default_users(num_ratings: int) -> int:
  """About MovieLens-100K's ratings per user (106), at least 20 users."""
  return max(20, num_ratings // 106)


def default_movies(num_ratings: int) -> int:
  """About MovieLens-100K's ratings per movie (60), at least 20 movies."""
  return max(20, num_ratings // 60)


def schema_vocabulary(domain: str) -> List[str]:
  """The values of a string domain of the curated schema (e.g. `user_occupation`)."""
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top
  from dataspec import spec as spec_lib  # pylint: disable=g-import-not-at-top
  with open(spec_lib.load(spec_lib.DEFAULT_PRESET).schema) as f:
    schema = text_format.Parse(f.read(), schema_pb2.Schema())
  for string_domain in schema.string_domain:
    if string_domain.name == domain:
      return list(string_domain.value)
  raise ValueError(f"the schema has no string domain {domain!r}")


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
  """Zipf weights of ranks 1..n, assigned to ids in a random order."""
  import numpy as np  # pylint: disable=g-import-not-at-top,redefined-outer-name
  return (np.arange(1, n + 1, dtype=np.float64) ** -exponent)[rng.permutation(n)]


def _arrivals(n: int, initial: float, num_ratings: int) -> np.ndarray:
  """Stream position from which each id (in id order) may be rated; non-decreasing."""
  import numpy as np  # pylint: disable=g-import-not-at-top,redefined-outer-name
  first = max(1, int(round(n * initial)))
  later = n - first
  positions = np.zeros(n, dtype=np.int64)
  if later:
    positions[first:] = (np.arange(1, later + 1) * (ARRIVAL_END * num_ratings / later)
                         ).astype(np.int64)
  return positions


def _sample_prefix(cumulative: np.ndarray, available: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
  """Per row, an index < available[row], drawn with the weights behind `cumulative`."""
  import numpy as np  # pylint: disable=g-import-not-at-top,redefined-outer-name
  totals = cumulative[available - 1]
  return np.minimum(np.searchsorted(cumulative, rng.random(len(available)) * totals,
                                    side="right"), available - 1)


class _World:
  """The fixed part of a synthetic catalogue: ids, weights, arrivals, tastes."""

  def __init__(self, num_ratings: int, num_users: int, num_movies: int, seed: int):
    import numpy as np  # pylint: disable=g-import-not-at-top,redefined-outer-name
    rng = np.random.default_rng([seed, 0])
    self.user_cumulative = np.cumsum(_zipf_weights(num_users, ZIPF_USERS, rng))
    self.movie_cumulative = np.cumsum(_zipf_weights(num_movies, ZIPF_MOVIES, rng))
    self.user_arrival = _arrivals(num_users, INITIAL_USERS, num_ratings)
    self.movie_arrival = _arrivals(num_movies, INITIAL_MOVIES, num_ratings)
    self.user_bias = rng.normal(0.0, 0.5, num_users)
    self.movie_quality = rng.normal(0.0, 0.7, num_movies)
    self.user_taste = rng.normal(0.0, 1.0, (num_users, TASTE_DIMS))
    self.movie_taste = rng.normal(0.0, 1.0, (num_movies, TASTE_DIMS))
    self.ages = np.clip(np.round(rng.normal(33.0, 12.0, num_users)), 7, 73).astype(np.int64)
    genders = sorted(GENDER_SHARES)
    self.genders = np.array(genders)[rng.choice(
        len(genders), num_users, p=[GENDER_SHARES[g] for g in genders])]
    occupations = schema_vocabulary("user_occupation")
    # Uneven occupation shares, like the real ones (students and "other" dominate).
    shares = _zipf_weights(len(occupations), 1.0, rng)
    self.occupations = np.array(occupations)[rng.choice(
        len(occupations), num_users, p=shares / shares.sum())]
    self.zip_codes = rng.integers(0, 100_000, num_users)


def _rating_chunk(world: _World, start: int, stop: int, num_ratings: int,
                  seed: int) -> Dict[str, np.ndarray]:
  """Ratings [start, stop) of the stream; depends only on (seed, start), not on history."""
  import numpy as np  # pylint: disable=g-import-not-at-top,redefined-outer-name
  rng = np.random.default_rng([seed, 1, start])
  position = np.arange(start, stop, dtype=np.int64)
  users_present = np.searchsorted(world.user_arrival, position, side="right")
  movies_present = np.searchsorted(world.movie_arrival, position, side="right")
  users = _sample_prefix(world.user_cumulative, users_present, rng)
  movies = _sample_prefix(world.movie_cumulative, movies_present, rng)
  taste = np.einsum("ij,ij->i", world.user_taste[users], world.movie_taste[movies])
  score = (3.6 + world.user_bias[users] + world.movie_quality[movies] + 0.35 * taste
           + rng.normal(0.0, 0.6, len(position)))
  ratings = np.clip(np.round(score), 1, 5).astype(np.int64)
  # Strictly increasing before the floor, so timestamps never decrease.
  offsets = (position + rng.random(len(position))) * (DURATION_SECONDS / num_ratings)
  return {"user": users + 1, "movie": movies + 1, "rating": ratings,
          "timestamp": START_TIMESTAMP + offsets.astype(np.int64)}


def write(out_dir: str, num_ratings: int, num_users: Optional[int] = None,
          num_movies: Optional[int] = None, seed: int = 0) -> Dict[str, int]:
  """Writes a synthetic MovieLens-layout directory.

  Args:
    out_dir: directory to create (must not exist, or be empty).
    num_ratings: ratings to write (>= 1).
    num_users: users (default `default_users`); all of them are in u.user.
    num_movies: movies (default `default_movies`).
    seed: the same seed (and sizes) gives the same files.

  Returns:
    {"ratings", "users", "movies"}: the sizes written.

  Raises:
    ValueError: bad sizes, or `out_dir` exists and is not empty.
  """
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  from pyarrow import csv as pa_csv  # pylint: disable=g-import-not-at-top
  from dataspec import spec as spec_lib  # pylint: disable=g-import-not-at-top
  movielens = spec_lib.load("movielens")   # the layout written: its source and side table
  ratings_file, users_file = movielens.source.path, movielens.source.side_tables[0].path

  num_users = default_users(num_ratings) if num_users is None else num_users
  num_movies = default_movies(num_ratings) if num_movies is None else num_movies
  for name, value in (("--ratings", num_ratings), ("--users", num_users),
                      ("--movies", num_movies)):
    if value < 1:
      raise ValueError(f"{name} must be >= 1, got {value}")
  if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
    raise ValueError(f"--out {out_dir}: exists and is not an empty directory; pass a new "
                     "directory (synth never overwrites data)")
  os.makedirs(out_dir, exist_ok=True)
  world = _World(num_ratings, num_users, num_movies, seed)

  with open(os.path.join(out_dir, users_file), "w", encoding="utf-8") as f:
    for i in range(num_users):
      f.write(f"{i + 1}|{world.ages[i]}|{world.genders[i]}|{world.occupations[i]}|"
              f"{world.zip_codes[i]:05d}\n")

  options = pa_csv.WriteOptions(include_header=False, delimiter="\t")
  with open(os.path.join(out_dir, ratings_file), "wb") as f:
    for start in range(0, num_ratings, CHUNK):
      chunk = _rating_chunk(world, start, min(start + CHUNK, num_ratings), num_ratings, seed)
      pa_csv.write_csv(pa.table(chunk), f, write_options=options)
  return {"ratings": num_ratings, "users": num_users, "movies": num_movies}


def add_parser(sub) -> None:
  """Registers `uet synth`."""
  p = sub.add_parser(
      "synth", help="write synthetic MovieLens-layout ratings of any size",
      description="Writes OUT/u.data and OUT/u.user: heavy-tailed popularity, users with "
      "demographics, timestamps in order with new users and movies arriving over time. The "
      "same seed gives the same files; memory does not grow with --ratings.")
  p.add_argument("--ratings", type=int, required=True, help="number of ratings")
  p.add_argument("--out", required=True, help="directory to create (new or empty)")
  p.add_argument("--users", type=int, help="number of users (default: ratings / 106, as in "
                 "MovieLens-100K)")
  p.add_argument("--movies", type=int, help="number of movies (default: ratings / 60)")
  p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  """Writes the directory and says what it holds; exit code 2 on bad arguments."""
  try:
    sizes = write(args.out, args.ratings, args.users, args.movies, args.seed)
  except (ValueError, OSError) as e:
    print(f"uet synth: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  print(f"wrote {sizes['ratings']} ratings of {sizes['users']} users on {sizes['movies']} "
        f"movies to {args.out} (u.data, u.user)")
  return EXIT_OK
