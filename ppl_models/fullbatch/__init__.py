"""Full-batch SVI models from a few hooks: subclass :class:`FullBatchSpec`, extend
:class:`FullBatchConfig`, register, and the zoo does the rest (see the README's
"Adding a model").
"""

from ppl_models.fullbatch.config import FullBatchConfig
from ppl_models.fullbatch.fit import FullBatchFit, WithExtras
from ppl_models.fullbatch.nuts import NutsReferenceConfig, NutsReferenceSpec
from ppl_models.fullbatch.spec import FullBatchSpec

__all__ = [
    "FullBatchConfig",
    "FullBatchFit",
    "FullBatchSpec",
    "NutsReferenceConfig",
    "NutsReferenceSpec",
    "WithExtras",
]
