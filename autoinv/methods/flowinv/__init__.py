"""FlowInv: an image-conditional normalizing flow over transformations, with Augerino and InstaAug (see README.md)."""

from autoinv.methods.flowinv.baselines import AugerinoAugmenter as AugerinoAugmenter
from autoinv.methods.flowinv.baselines import InstaAugmenter as InstaAugmenter
from autoinv.methods.flowinv.baselines import WindowScheduler as WindowScheduler
from autoinv.methods.flowinv.core import AUG_SLOTS as AUG_SLOTS
from autoinv.methods.flowinv.core import DECOUPLED_GENERATORS as DECOUPLED_GENERATORS
from autoinv.methods.flowinv.core import AugmenterError as AugmenterError
from autoinv.methods.flowinv.core import ConditionalAffineCoupling as ConditionalAffineCoupling
from autoinv.methods.flowinv.core import FlowAugmenter as FlowAugmenter
from autoinv.methods.flowinv.core import MixtureBase as MixtureBase
from autoinv.methods.flowinv.core import PIDState as PIDState
from autoinv.methods.flowinv.core import PoseNet as PoseNet
from autoinv.methods.flowinv.core import TanhBound as TanhBound
from autoinv.methods.flowinv.core import UniformBase as UniformBase
from autoinv.methods.flowinv.core import apply_params as apply_params
from autoinv.methods.flowinv.core import augmenter_from_payload as augmenter_from_payload
from autoinv.methods.flowinv.core import augmenter_payload as augmenter_payload
from autoinv.methods.flowinv.core import gumbel_softmax as gumbel_softmax
from autoinv.methods.flowinv.core import lie_params as lie_params
from autoinv.methods.flowinv.core import load_augmenter as load_augmenter
from autoinv.methods.flowinv.core import mean_shift_align as mean_shift_align
from autoinv.methods.flowinv.core import pid_step as pid_step
from autoinv.methods.flowinv.core import rotation_degrees as rotation_degrees
from autoinv.methods.flowinv.core import rotation_error as rotation_error
from autoinv.methods.flowinv.core import select_plausible as select_plausible
from autoinv.methods.flowinv.core import tanh_bound as tanh_bound
from autoinv.methods.flowinv.core import tta_logits as tta_logits
from autoinv.methods.flowinv.fit import ARTIFACT_FIELDS as ARTIFACT_FIELDS
from autoinv.methods.flowinv.fit import Config as Config
from autoinv.methods.flowinv.fit import build_augmenter as build_augmenter
from autoinv.methods.flowinv.fit import fit as fit
from autoinv.methods.flowinv.fit import preflight as preflight
from autoinv.methods.flowinv.training import mode_mass as mode_mass
from autoinv.methods.flowinv.training import range_summary as range_summary
from autoinv.methods.flowinv.training import rotation_band as rotation_band
from autoinv.methods.flowinv.training import rotation_discovery as rotation_discovery
from autoinv.methods.flowinv.training import sprite_band_summary as sprite_band_summary

__all__ = [
    "ARTIFACT_FIELDS",
    "Config",
    "fit",
    "preflight",
    "build_augmenter",
    "AUG_SLOTS",
    "DECOUPLED_GENERATORS",
    "AugmenterError",
    "FlowAugmenter",
    "PoseNet",
    "ConditionalAffineCoupling",
    "TanhBound",
    "UniformBase",
    "MixtureBase",
    "AugerinoAugmenter",
    "InstaAugmenter",
    "WindowScheduler",
    "PIDState",
    "pid_step",
    "lie_params",
    "apply_params",
    "rotation_degrees",
    "rotation_error",
    "tanh_bound",
    "gumbel_softmax",
    "select_plausible",
    "tta_logits",
    "mean_shift_align",
    "augmenter_payload",
    "augmenter_from_payload",
    "load_augmenter",
    "range_summary",
    "rotation_band",
    "mode_mass",
    "rotation_discovery",
    "sprite_band_summary",
]
