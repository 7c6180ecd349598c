"""Models to measure: design patterns on a shared skeleton, a zoo of hand-crafted and
search-found architectures, and the user's own models; ``build(target) -> Model``.

Imports torch at module level: import this only when a model is about to be built.
"""

from fff.models.spec import Spec, parse as parse_spec
from fff.models.patterns import PATTERNS, PatternNet
from fff.models.targets import DEFAULT_TARGET, TARGET_KINDS, Model, build, list_targets
from fff.models.zoo import ZOO

__all__ = ["build", "Model", "list_targets", "DEFAULT_TARGET", "TARGET_KINDS", "PATTERNS", "PatternNet", "ZOO",
           "Spec", "parse_spec"]
