"""Zero-copy access to Pillow's pixel memory: an RGB image (4 bytes a pixel in Pillow) is
exported through Pillow's Arrow C interface and viewed as a ``(H, W, 4)`` numpy array, so
large decoded photos are hashed in place. Used by :mod:`.io`."""

from __future__ import annotations

import ctypes
from typing import Optional

import numpy as np
from PIL import Image

class _ArrowArray(ctypes.Structure):
    pass


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_single_block_ready = False


def use_single_block_images() -> None:
    """Ask Pillow to store each new image in one contiguous block (its default splits large
    images into 16 MB pieces). Only the allocation strategy changes; it lets large decoded
    photos be hashed in place through Pillow's Arrow export instead of being copied."""
    global _single_block_ready
    if _single_block_ready:
        return
    setter = getattr(Image.core, "set_use_block_allocator", None)
    if setter is not None:
        try:
            setter(1)
        except Exception:  # pragma: no cover - older Pillow
            pass
    _single_block_ready = True


def rgbx_view(img: Image.Image) -> Optional[np.ndarray]:
    """A zero-copy ``(H, W, 4)`` view of an RGB image's pixels (Pillow keeps RGB as 4 bytes
    per pixel; the 4th is padding), or None when Pillow cannot export it. The view keeps
    the export (and so the image memory) alive."""
    if img.mode != "RGB" or not hasattr(img, "__arrow_c_array__"):
        return None
    width, height = img.size
    try:
        if not img.im.isblock():
            return None
        schema, array = img.__arrow_c_array__()
        top = _ArrowArray.from_address(_capsule_pointer(array, b"arrow_array"))
        if top.length != width * height or top.offset != 0 or top.n_children != 1:
            return None
        child = top.children[0].contents
        if child.offset != 0 or child.length < 4 * width * height or child.n_buffers < 2 or not child.buffers[1]:
            return None
        buf = (ctypes.c_uint8 * (4 * width * height)).from_address(child.buffers[1])
        buf._keep_alive = (schema, array, img)  # type: ignore[attr-defined]
        return np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 4)
    except Exception:
        return None
