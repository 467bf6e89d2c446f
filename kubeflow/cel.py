"""The subset of CEL that TFX 1.16's Kubeflow V2 compiler writes into trigger conditions.

`tfx.orchestration.kubeflow.v2.compiler_utils.placeholder_to_cel` encodes a `tfx.dsl.Cond`
predicate with exactly these constructs, and this module evaluates exactly these:

  literals          1.0  'text'  (ints are written as floats)
  input artifacts   inputs.artifacts['KEY'].artifacts[0].metadata['NAME']   ... .uri
  comparison        a == b   a < b   a > b
  logic             !(a)   (a && b)   (a || b)
  concatenation     (a + b)   (strings)

Anything else (other identifiers, functions, operators) is refused with its text and
position, so a spec that needs more of CEL fails before any task runs instead of being
misread. A maintained CEL implementation (`cel-python`) resolves on this stack but is not in
the locked environment yet (see kubeflow/README.md).
"""

import re
from typing import Any, List, Mapping, Tuple

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>\d+\.\d*(?:[eE][-+]?\d+)?|\d+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>&&|\|\||==|!=|<=|>=|[-<>!()\[\].+*/%?:,])
  | (?P<name>[A-Za-z_]\w*)
""", re.VERBOSE)
_SUPPORTED_OPS = {"&&", "||", "==", "<", ">", "!", "(", ")", "[", "]", ".", "+"}
_SUPPORTED_NAMES = {"inputs", "artifacts", "metadata", "uri", "parameter_values"}


class CelError(ValueError):
  """The expression is outside the supported subset, or cannot be evaluated."""


def tokenize(text: str) -> List[Tuple[str, str, int]]:
  """(kind, text, position) of each token, refusing what the compiler never writes."""
  tokens, position = [], 0
  while position < len(text):
    match = _TOKEN.match(text, position)
    if not match:
      raise CelError(f"unexpected {text[position]!r} at {position}")
    kind, value = match.lastgroup, match.group()
    if kind == "op" and value not in _SUPPORTED_OPS:
      raise CelError(f"operator {value!r} at {position} is not in the subset TFX emits")
    if kind == "name" and value not in _SUPPORTED_NAMES:
      raise CelError(f"{value!r} at {position} is not in the subset TFX emits (only "
                     "inputs.artifacts[...].artifacts[i].metadata[...] / .uri)")
    if kind != "space":
      tokens.append((kind, value, position))
    position = match.end()
  return tokens


class _Parser:
  """Recursive descent over the grammar in the module docstring."""

  def __init__(self, text: str, env: Mapping[str, Any]):
    self.text = text
    self.tokens = tokenize(text)
    self.index = 0
    self.env = env

  def _peek(self) -> str:
    return self.tokens[self.index][1] if self.index < len(self.tokens) else ""

  def _take(self, expected: str = "") -> Tuple[str, str, int]:
    if self.index >= len(self.tokens):
      raise CelError(f"unexpected end of {self.text!r}")
    token = self.tokens[self.index]
    if expected and token[1] != expected:
      raise CelError(f"expected {expected!r} at {token[2]}, found {token[1]!r}")
    self.index += 1
    return token

  def parse(self) -> Any:
    value = self._or()
    if self.index != len(self.tokens):
      raise CelError(f"unexpected {self._peek()!r} at {self.tokens[self.index][2]}")
    return value

  def _or(self) -> Any:
    value = self._and()
    while self._peek() == "||":
      self._take()
      right = self._and()
      value = _boolean(value) or _boolean(right)
    return value

  def _and(self) -> Any:
    value = self._unary()
    while self._peek() == "&&":
      self._take()
      right = self._unary()
      value = _boolean(value) and _boolean(right)
    return value

  def _unary(self) -> Any:
    if self._peek() == "!":
      self._take()
      return not _boolean(self._unary())
    return self._comparison()

  def _comparison(self) -> Any:
    left = self._sum()
    if self._peek() in ("==", "<", ">"):
      op = self._take()[1]
      right = self._sum()
      if op == "==":
        return _same_type(left, right, op) and left == right
      _same_type(left, right, op)
      return left < right if op == "<" else left > right
    return left

  def _sum(self) -> Any:
    value = self._postfix()
    while self._peek() == "+":
      self._take()
      right = self._postfix()
      _same_type(value, right, "+")
      value = value + right
    return value

  def _postfix(self) -> Any:
    value = self._primary()
    while self._peek() in ("[", "."):
      if self._take()[1] == "[":
        kind, key, position = self._take()
        self._take("]")
        if kind == "number":
          if not isinstance(value, list) or int(key) >= len(value):
            raise CelError(f"index {key} at {position}: no such element")
          value = value[int(key)]
        elif kind == "string":
          if not isinstance(value, Mapping) or key[1:-1] not in value:
            raise CelError(f"key {key} at {position}: no such key")
          value = value[key[1:-1]]
        else:
          raise CelError(f"index {key!r} at {position} is not a literal")
      else:
        kind, field, position = self._take()
        if kind != "name":
          raise CelError(f"field name expected at {position}")
        if not isinstance(value, Mapping) or field not in value:
          raise CelError(f"field {field!r} at {position}: no such field")
        value = value[field]
    return value

  def _primary(self) -> Any:
    kind, value, position = self._take()
    if value == "(":
      inner = self._or()
      self._take(")")
      return inner
    if kind == "number":
      return float(value)
    if kind == "string":
      return bytes(value[1:-1], "utf-8").decode("unicode_escape")
    if value == "inputs":
      return self.env["inputs"]
    raise CelError(f"unexpected {value!r} at {position}")


def _boolean(value: Any) -> bool:
  if not isinstance(value, bool):
    raise CelError(f"{value!r} is not a bool (CEL has no truthiness)")
  return value


def _same_type(left: Any, right: Any, op: str) -> bool:
  numbers = (int, float)
  same = (isinstance(left, numbers) and isinstance(right, numbers)
          and not isinstance(left, bool) and not isinstance(right, bool)) or \
      type(left) is type(right)  # pylint: disable=unidiomatic-typecheck
  if not same:
    # CEL reports "no such overload" for mixed types, rather than false.
    raise CelError(f"no such overload: {type(left).__name__} {op} {type(right).__name__} "
                   f"({left!r} {op} {right!r})")
  return True


def evaluate(text: str, env: Mapping[str, Any]) -> Any:
  """Evaluates `text` with `inputs` bound to `env["inputs"]`.

  Args:
    text: a trigger condition as the compiler wrote it.
    env: {"inputs": {"artifacts": {key: {"artifacts": [runtime artifact dicts]}},
      "parameter_values": {...}}}.

  Returns:
    The value (a bool for a trigger condition).

  Raises:
    CelError: a construct outside the subset, a missing key or element, or mixed types.
  """
  return _Parser(text, env).parse()
