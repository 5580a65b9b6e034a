"""TransformMix: learned transformations and mixing masks for sample-mixing augmentation (see README.md)."""

from autoinv.methods.transformmix.core import MaskNet as MaskNet
from autoinv.methods.transformmix.core import Mixer as Mixer
from autoinv.methods.transformmix.core import MixerError as MixerError
from autoinv.methods.transformmix.core import MixParams as MixParams
from autoinv.methods.transformmix.core import SpatialTransformer as SpatialTransformer
from autoinv.methods.transformmix.core import gather_partners as gather_partners
from autoinv.methods.transformmix.core import load_mixer as load_mixer
from autoinv.methods.transformmix.core import mask_softmax as mask_softmax
from autoinv.methods.transformmix.core import mix as mix
from autoinv.methods.transformmix.core import mix_labels as mix_labels
from autoinv.methods.transformmix.core import mixer_from_payload as mixer_from_payload
from autoinv.methods.transformmix.core import mixer_payload as mixer_payload
from autoinv.methods.transformmix.core import partner_indices as partner_indices
from autoinv.methods.transformmix.core import sample_lambdas as sample_lambdas
from autoinv.methods.transformmix.core import transformmix_batch as transformmix_batch
from autoinv.methods.transformmix.core import warp_stack as warp_stack
from autoinv.methods.transformmix.fit import ARTIFACT_FIELDS as ARTIFACT_FIELDS
from autoinv.methods.transformmix.fit import Config as Config
from autoinv.methods.transformmix.fit import compare_mixes as compare_mixes
from autoinv.methods.transformmix.fit import fit as fit
from autoinv.methods.transformmix.fit import preflight as preflight
from autoinv.methods.transformmix.fit import search_mixer as search_mixer
from autoinv.methods.transformmix.fit import teacher_specs as teacher_specs
from autoinv.methods.transformmix.saliency import CamBatches as CamBatches
from autoinv.methods.transformmix.saliency import base_augment as base_augment
from autoinv.methods.transformmix.saliency import cam_teacher_spec as cam_teacher_spec
from autoinv.methods.transformmix.saliency import class_activation_maps as class_activation_maps
from autoinv.methods.transformmix.saliency import dataset_cams as dataset_cams
from autoinv.methods.transformmix.saliency import normalize_maps as normalize_maps
from autoinv.methods.transformmix.saliency import teacher_cams as teacher_cams

__all__ = [
    "ARTIFACT_FIELDS",
    "Config",
    "fit",
    "preflight",
    "teacher_specs",
    "search_mixer",
    "base_augment",
    "CamBatches",
    "cam_teacher_spec",
    "compare_mixes",
    "Mixer",
    "MixerError",
    "MixParams",
    "SpatialTransformer",
    "MaskNet",
    "class_activation_maps",
    "normalize_maps",
    "teacher_cams",
    "dataset_cams",
    "partner_indices",
    "sample_lambdas",
    "gather_partners",
    "mask_softmax",
    "warp_stack",
    "mix",
    "mix_labels",
    "transformmix_batch",
    "mixer_payload",
    "mixer_from_payload",
    "load_mixer",
]
