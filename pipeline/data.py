"""The MovieLens preset's download: a verified copy of the official MovieLens-100K release.

The official release is copied from a local mirror directory when one is given (CI and
offline machines), else downloaded from GroupLens; either way the MD5 of `u.data`, `u.user`
and `u.item` must match the published release before anything reads it. A user's own
data directory is checked against its dataset spec by `dataspec.files.check`.
"""

import hashlib
import io
import os
import shutil
import urllib.request
import zipfile
from typing import Dict, Optional

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# MD5 of the official MovieLens-100K files (GroupLens release; also ../shared/.../MD5SUMS).
ML_100K_MD5: Dict[str, str] = {
    "u.data": "6e47046882bad158b0efbb84cd5cb987",
    "u.user": "1b53539edc13caad0282c8500608a319",
    "u.item": "c9e7f390115d79079537301d5204f3f7",
}


class DatasetError(RuntimeError):
  """The dataset is missing, incomplete or corrupt; the message says what to do."""


def md5(path: str) -> str:
  h = hashlib.md5()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def verify_ml100k(directory: str) -> None:
  """Raises DatasetError unless `directory` holds the official MovieLens-100K files."""
  for name, expected in ML_100K_MD5.items():
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
      raise DatasetError(f"{path}: missing; MovieLens-100K needs {sorted(ML_100K_MD5)}")
    actual = md5(path)
    if actual != expected:
      raise DatasetError(f"{path}: MD5 {actual} does not match the official release "
                         f"({expected}); the file is corrupt or not MovieLens-100K. Delete it "
                         "and fetch the dataset again")


def fetch_ml100k(target: str, mirror: Optional[str] = None,
                 url: str = GROUPLENS_URL) -> str:
  """Makes `target` hold a verified copy of MovieLens-100K and returns its path.

  An already verified copy is reused untouched (its file times feed ExampleGen's cache key).

  Args:
    target: directory to hold the copy (e.g. OUTPUT/data/ml-100k).
    mirror: a local directory with the official files; None downloads `url`.
    url: the official zip.

  Raises:
    DatasetError: the mirror or the download is missing files or fails the checksum.
  """
  target = os.path.abspath(target)
  try:
    verify_ml100k(target)
    return target
  except DatasetError:
    pass
  staging = target + ".partial"
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  if mirror:
    if not os.path.isdir(mirror):
      raise DatasetError(f"--mirror {mirror}: not a directory")
    for name in os.listdir(mirror):
      if os.path.isfile(os.path.join(mirror, name)):
        shutil.copy2(os.path.join(mirror, name), os.path.join(staging, name))
    source = f"mirror {mirror}"
  else:
    try:
      with urllib.request.urlopen(url, timeout=60) as response:
        payload = response.read()
    except OSError as e:
      raise DatasetError(f"cannot download {url}: {e}. Pass --data-dir DIR (your own "
                         "MovieLens-layout files) or --mirror DIR (a copy of ml-100k)") from e
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
      for member in archive.infolist():
        if member.filename.startswith("ml-100k/") and not member.is_dir():
          name = os.path.basename(member.filename)
          with archive.open(member) as src, open(os.path.join(staging, name), "wb") as dst:
            shutil.copyfileobj(src, dst)
    source = url
  try:
    verify_ml100k(staging)
  except DatasetError as e:
    shutil.rmtree(staging, ignore_errors=True)
    raise DatasetError(f"{e} (copied from {source})") from None
  shutil.rmtree(target, ignore_errors=True)
  os.replace(staging, target)
  return target
