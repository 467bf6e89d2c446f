"""The MovieLens preset's features, grouped the way the MovieLens experiments vary them.

`bench/cold_start.py` and `bench/unified_configs.py` compare chunk layouts and admission
filters on MovieLens-100K. They name no column: the groups come from the preset spec
(`dataspec.spec.load("movielens")`): the item's ids (role item), the user's ids (role
user), the open attributes of a side table's entity (id features with `attribute_of`),
and the closed domains (categorical and numeric features).
"""

from typing import Dict, Optional, Tuple

from dataspec import spec as spec_lib
from trainer import config as config_lib

SPEC = spec_lib.with_schema_domains(spec_lib.load("movielens"))


def _role(role: str) -> str:
  """The entity's own id feature of `role` (its attributes share the role)."""
  (name,) = [f.name for f in SPEC.features
             if f.kind == "id" and f.role == role and not f.attribute_of]
  return name


ITEM = _role("item")
USER = _role("user")
ATTRIBUTES = tuple(f.name for f in SPEC.features if f.kind == "id" and f.attribute_of)
CLOSED = tuple(f.name for f in SPEC.features if f.closed_domain_size is not None)
IDS = SPEC.id_features  # what the admission filter covers: ITEM, USER and ATTRIBUTES


def chunks(ids: int, attributes: Optional[int] = None,
           closed: Optional[int] = None) -> Tuple[Tuple[str, int], ...]:
  """A chunk layout by group: the item's and the user's ids `ids` chunks each, the open
  attributes `attributes`, the closed domains `closed` (None: the group keeps the config's
  `default_chunks`)."""
  layout: Dict[str, int] = {ITEM: ids, USER: ids}
  for names, n in ((ATTRIBUTES, attributes), (CLOSED, closed)):
    if n is not None:
      layout.update({name: n for name in names})
  return tuple((f, layout[f]) for f in SPEC.feature_names if f in layout)


def closed_chunks(n: int) -> Tuple[Tuple[str, int], ...]:
  """Only the closed domains at `n` chunks (the others keep `default_chunks`)."""
  return tuple((f, n) for f in CLOSED)


def rule_chunks(budget: int) -> Tuple[Tuple[str, int], ...]:
  """The budget rule's chunks at `budget` (`trainer.config.budget_rule_layout`)."""
  return config_lib.budget_rule_layout(budget, SPEC)["chunks"]


def previous_rule_chunks(budget: int) -> Tuple[Tuple[str, int], ...]:
  """The budget rule before it told ids apart by role: every open vocabulary (kind id)
  `RULE_OPEN_CHUNKS`, closed domains as the rule sizes them now."""
  rows = max(2, budget // config_lib.RULE_DIM_PER_TABLE)
  return tuple((f.name, config_lib.RULE_OPEN_CHUNKS if f.kind == "id"
                else config_lib.rule_chunks(f, rows)) for f in SPEC.features)


def resolve(config: config_lib.TrainingConfig) -> config_lib.TrainingConfig:
  """`config` resolved against the MovieLens preset (`trainer.config.resolve`)."""
  return config_lib.resolve(config, SPEC)
