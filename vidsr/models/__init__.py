"""Super-resolution networks and how to load them.

>>> from vidsr.models import load_model
>>> model = load_model("animevideov3")   # or a .pth / .pt / .ckpt / .safetensors / .param path
>>> model.scale, model.size_multiple, model.precisions
(4, 1, ('fp32', 'fp16', 'bf16'))
"""
from vidsr.models._api import export_model, list_models, load_model
from vidsr.models._checkpoint import canonical_state_dict, read_state_dict
from vidsr.models._descriptor import ModelDescriptor, ModelInfo
from vidsr.models._loaders import save_pth, save_safetensors
from vidsr.models.compact import SRVGGNetCompact
from vidsr.models.rrdb import RRDBNet

__all__ = [
    "ModelDescriptor",
    "ModelInfo",
    "RRDBNet",
    "SRVGGNetCompact",
    "canonical_state_dict",
    "export_model",
    "list_models",
    "load_model",
    "read_state_dict",
    "save_pth",
    "save_safetensors",
]
