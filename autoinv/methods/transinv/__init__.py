"""TransInv: transfer a teacher's invariance through learned augmentation (see README.md)."""

from autoinv.methods.transinv.augmenter import Augmenter as Augmenter
from autoinv.methods.transinv.augmenter import AugmenterError as AugmenterError
from autoinv.methods.transinv.augmenter import AugmenterSet as AugmenterSet
from autoinv.methods.transinv.augmenter import StrengthMLP as StrengthMLP
from autoinv.methods.transinv.augmenter import augmenter_from_payload as augmenter_from_payload
from autoinv.methods.transinv.augmenter import augmenter_payload as augmenter_payload
from autoinv.methods.transinv.augmenter import compose as compose
from autoinv.methods.transinv.augmenter import gumbel_softmax as gumbel_softmax
from autoinv.methods.transinv.augmenter import load_augmenter as load_augmenter
from autoinv.methods.transinv.augmenter import relaxed_bernoulli as relaxed_bernoulli
from autoinv.methods.transinv.common import TransInvError as TransInvError
from autoinv.methods.transinv.common import corrupted_accuracy as corrupted_accuracy
from autoinv.methods.transinv.common import init_from_teacher as init_from_teacher
from autoinv.methods.transinv.fit import ARTIFACT_FIELDS as ARTIFACT_FIELDS
from autoinv.methods.transinv.fit import Config as Config
from autoinv.methods.transinv.fit import MinMax as MinMax
from autoinv.methods.transinv.fit import fit as fit
from autoinv.methods.transinv.fit import preflight as preflight
from autoinv.methods.transinv.fit import teacher_specs as teacher_specs
from autoinv.methods.transinv.primitives import PRIMITIVES as PRIMITIVES
from autoinv.methods.transinv.primitives import Primitive as Primitive
from autoinv.methods.transinv.primitives import PrimitiveError as PrimitiveError
from autoinv.methods.transinv.primitives import scaled_ranges as scaled_ranges

__all__ = [
    "ARTIFACT_FIELDS",
    "Config",
    "fit",
    "preflight",
    "teacher_specs",
    "MinMax",
    "PRIMITIVES",
    "Primitive",
    "PrimitiveError",
    "scaled_ranges",
    "Augmenter",
    "AugmenterSet",
    "AugmenterError",
    "StrengthMLP",
    "gumbel_softmax",
    "relaxed_bernoulli",
    "compose",
    "augmenter_payload",
    "augmenter_from_payload",
    "load_augmenter",
    "TransInvError",
    "corrupted_accuracy",
    "init_from_teacher",
]
