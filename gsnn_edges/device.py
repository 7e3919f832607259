"""Where a run trains: the device choices of the job spec, resolving them, and finding
the device a model lives on.

torch is imported inside the functions, so the job spec (and the API process) can name
the choices without importing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    import torch

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is an error.

    Raises:
        RuntimeError: ``device='cuda'`` and no CUDA device is available.
    """
    import torch

    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device='cuda' but no CUDA device is available here")
    return torch.device(device)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter or buffer (CPU when it has neither)."""
    import torch

    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def adamw(params: Iterable[torch.Tensor], **kwargs: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW(params, **kwargs)``, fused into one kernel over all parameters
    where torch has one (CPU, CUDA): the GSNN's step over its ~30 small tensors took
    1.44 ms as torch's default loop and 0.32 ms fused (500 function nodes, 2 threads;
    ``benchmarks/README.md``, "Implementation choices"). Same update up to float rounding."""
    import torch

    params = list(params)
    fused = bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params
    )
    return torch.optim.AdamW(params, fused=fused or None, **kwargs)
