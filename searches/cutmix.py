"""CutMix (Yun et al., 2019): searched α, mixing probability, learning rate and weight decay.

Everything but the method comes from ``searches/mixup.py``, so the two compare on the same data, budget and space.
"""

from searches.mixup import BASE as BASE
from searches.mixup import METRIC as METRIC
from searches.mixup import MODE as MODE
from searches.mixup import NUM_SAMPLES as NUM_SAMPLES
from searches.mixup import QUICK as QUICK
from searches.mixup import QUICK_NUM_SAMPLES as QUICK_NUM_SAMPLES
from searches.mixup import space as space

METHOD = "cutmix"
