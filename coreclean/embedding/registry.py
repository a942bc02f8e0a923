"""The backbone registry: which names ``--backbone`` takes, which weights each reads, and how a model is loaded.

Names
* ``precomputed`` / ``pixels`` / ``cnn``: the source's own embeddings, standardized pixels, a small CNN trained on
  the data itself (cross-fitted, :mod:`coreclean.embedding.crossfit_cnn`). No weights.
* any torchvision classification model (``resnet18``, ``resnet50``, ``convnext_tiny``, ``efficientnet_v2_s``,
  ``vit_b_16``, …): the output of the layer before its last linear layer (the penultimate features), with the
  preprocessing of its weights enum. ``weights``: ``"imagenet"`` (the model's DEFAULT enum; ResNet18's is
  ``IMAGENET1K_V1``), an enum member name (``IMAGENET1K_V2``), a ``state_dict`` FILE (offline; a fine-tuned head
  of any size is ignored) or None (random init; tests).
* ``clip:ARCH`` — an open_clip architecture (``clip:ViT-B-32``): L2-normalized image embeddings. ``weights``: an
  open_clip pretrained tag (``openai``, ``laion2b_s34b_b79k``; downloaded once on an online machine; the default
  ``imagenet`` means the architecture's first tag) or a checkpoint FILE for that architecture.
* ``clip`` — an open_clip model saved as a DIRECTORY (``open_clip_config.json`` + ``*.safetensors``/``*.bin``),
  named by ``weights``: any architecture, fully offline.

CLIP backbones have a text tower (:func:`has_text`): the build stores where its weights are so a text query can be
embedded later (:mod:`coreclean.embedding.text`).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

OWN = ("precomputed", "pixels", "cnn")  # backbones that read no weights
CLIP_PREFIX = "clip"


class Loaded(NamedTuple):
    """An image encoder ready for batches: ``model(batch (b, 3, H, W)) -> (b, dim)``."""

    model: Any
    preprocess: Any  # PIL image -> (3, H, W) tensor
    device: str
    dim: int


@lru_cache(maxsize=1)
def torchvision_names() -> tuple[str, ...]:
    """Classification models torchvision can build by name (detection/segmentation models live in submodules)."""
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


def choices() -> str:
    """What ``--backbone`` takes, for help texts and errors."""
    return (f"{', '.join(OWN)}, any torchvision classification model ({', '.join(torchvision_names()[:6])}, … "
            f"{len(torchvision_names())} in all), clip:ARCH (an open_clip architecture, e.g. clip:ViT-B-32) or clip "
            "(an open_clip model directory as --weights)")


def kind(backbone: str) -> str:
    """'precomputed' | 'pixels' | 'cnn' | 'torchvision' | 'clip'; ``ValueError`` listing the choices otherwise."""
    if backbone in OWN:
        return backbone
    if backbone == CLIP_PREFIX or backbone.startswith(CLIP_PREFIX + ":"):
        arch = backbone.partition(":")[2]
        if arch:
            import open_clip

            if arch not in open_clip.list_models():
                raise ValueError(f"backbone={backbone!r}: unknown open_clip architecture; choose one of "
                                 f"{', '.join(open_clip.list_models()[:12])}, … (open_clip.list_models()).")
        return "clip"
    if backbone in torchvision_names():
        return "torchvision"
    raise ValueError(f"backbone={backbone!r}: choose one of {choices()}.")


def reads_weights(backbone: str) -> bool:
    return kind(backbone) in ("torchvision", "clip")


def has_text(backbone: str | None) -> bool:
    """Whether the backbone has a text tower (text search, zero-shot label check)."""
    return bool(backbone) and (backbone == CLIP_PREFIX or backbone.startswith(CLIP_PREFIX + ":"))


def resolve_weights(backbone: str, weights: str | None) -> str | None:
    """The weights ``backbone`` will load: None for backbones without weights; for ``clip:ARCH`` the default
    ``imagenet`` becomes the architecture's first open_clip tag; ``clip`` needs a directory."""
    if not reads_weights(backbone):
        return None
    if backbone == CLIP_PREFIX:
        if weights is None or not Path(weights).is_dir():
            raise ValueError(f"backbone=clip: --weights must be an open_clip model directory (open_clip_config.json "
                             f"+ weights), got {weights!r}; or use clip:ARCH with a pretrained tag.")
        return str(Path(weights).resolve())
    if kind(backbone) == "clip" and weights == "imagenet":
        import open_clip

        tags = open_clip.list_pretrained_tags_by_model(backbone.partition(":")[2])
        if not tags:
            raise ValueError(f"backbone={backbone!r}: open_clip has no pretrained weights for it; pass --weights FILE.")
        return tags[0]
    if weights is not None and _looks_like_path(weights):
        return str(Path(weights).resolve())  # recorded so a text query can reload it later, from anywhere
    return weights


def _looks_like_path(weights: str) -> bool:
    return any(sep in weights for sep in ("/", "\\")) or Path(weights).suffix != "" or Path(weights).exists()


def weights_file(weights: str | Path) -> Path:
    """The state_dict file named by ``weights``, or ``ValueError`` saying how to make one."""
    path = Path(weights)
    try:
        found = path.is_file()
    except OSError:
        found = False
    if not found:
        raise ValueError(f"{path}: weights file not found; on an online machine save one with "
                         "torch.save(torchvision.models.resnet18(weights='IMAGENET1K_V1').state_dict(), 'r18.pt').")
    return path


def weights_identity(weights: str | Path | None) -> str | None:
    """What identifies ``weights`` in a cache key: None, a name ('imagenet', an enum member, an open_clip tag), or
    the sha256 of the weights file (of each file of a model directory)."""
    from ..data.files import file_digest

    if weights is None or not _looks_like_path(str(weights)):
        return None if weights is None else str(weights)
    path = Path(weights)
    if path.is_dir():
        import hashlib

        files = sorted(p for p in path.iterdir() if p.is_file())
        return hashlib.sha256("".join(f"{p.name}:{file_digest(p)}" for p in files).encode()).hexdigest()
    return file_digest(weights_file(weights))


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def resnet18_backbone(weights: str | Path | None, device: str | None = None) -> Loaded:
    """ResNet18 with ``fc`` removed (512-d), in eval mode: :func:`torchvision_backbone` of ``resnet18``."""
    return torchvision_backbone("resnet18", weights, device)


def _head(model) -> tuple[str, Any]:
    """(name, module) of the last linear layer: the classification head whose input is the penultimate feature."""
    import torch

    linear = [(name, module) for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
    if not linear:
        raise ValueError(f"{type(model).__name__}: no linear classification layer to take the features before; "
                         "choose another model.")
    return linear[-1]


def _replace(model, name: str, module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def torchvision_backbone(arch: str, weights: str | Path | None, device: str | None = None) -> Loaded:
    """A torchvision classification model without its last linear layer, in eval mode, with its weights'
    preprocessing (the DEFAULT enum's for a file or random init).

    ``weights="imagenet"`` downloads the DEFAULT enum once (online machines); offline the error says how to pass
    a state_dict file instead.
    """
    import torch
    from torchvision.models import get_model_builder, get_model_weights

    device = _device(device)
    builder, enums = get_model_builder(arch), get_model_weights(arch)
    names = [member.name for member in enums]
    enum = None
    if weights is not None and str(weights) == "imagenet":
        enum = enums.DEFAULT
    elif weights is not None and str(weights) in names:
        enum = enums[str(weights)]
    if enum is not None:
        try:
            model = builder(weights=enum)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise ValueError(f"could not download the {arch} weights {enum} ({err}). Offline, pass --weights FILE: "
                             f"a state_dict saved on an online machine with torch.save(torchvision.models.{arch}("
                             f"weights='{enum.name}').state_dict(), '{arch}.pt').") from err
    else:
        with torch.random.fork_rng(devices=[]):  # random init is the same network every time: a resumed build's
            torch.manual_seed(0)  # chunks and a rebuild describe images in one space (the caller's RNG untouched)
            model = builder(weights=None)
    head_name, head = _head(model)
    _replace(model, head_name, torch.nn.Identity())
    if enum is None and weights is not None:
        if not _looks_like_path(str(weights)):
            raise ValueError(f"weights={weights!r}: {arch} knows 'imagenet', {', '.join(names)} or a state_dict FILE.")
        path = weights_file(weights)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith(head_name + ".")}  # any number of classes
            model.load_state_dict(state)
        except Exception as err:  # torch raises several types for a bad file
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"{path}: not a {arch} state_dict ({message}).") from err
    preprocess = (enum or enums.DEFAULT).transforms()
    return Loaded(model.eval().to(device), preprocess, device, int(head.in_features))


def _clip_name(backbone: str, weights: str | None) -> tuple[str, str | None]:
    """(open_clip model name, pretrained) for ``create_model_and_transforms``."""
    if backbone == CLIP_PREFIX:
        return f"local-dir:{weights}", None
    return backbone.partition(":")[2], None if weights is None else str(weights)


def load_clip(backbone: str, weights: str | None, device: str | None = None):
    """(open_clip model in eval mode, image preprocess, open_clip model name) — weights checked first."""
    import open_clip

    name, pretrained = _clip_name(backbone, weights)
    if backbone == CLIP_PREFIX:
        from open_clip.factory import _find_checkpoint_in_dir

        directory = Path(str(weights))
        if not (directory / "open_clip_config.json").is_file() or not _find_checkpoint_in_dir(directory):
            raise ValueError(f"{directory}: not an open_clip model directory (needs open_clip_config.json and a "
                             "*.safetensors / *.bin checkpoint).")
    elif pretrained is not None and _looks_like_path(pretrained):
        weights_file(pretrained)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained,
                                                                     device=_device(device))
    except Exception as err:  # unknown tag, failed download, a checkpoint of another architecture
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{backbone} with weights {weights!r}: could not load ({message[:300]}). Offline, pass "
                         "--weights FILE (a checkpoint of this architecture) or use --backbone clip --weights DIR."
                         ) from err
    return model.eval(), preprocess, name


class _ImageTower:
    """``encode_image`` of a CLIP model, rows L2-normalized (cosine geometry, as the text side)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, batch):
        import torch

        return torch.nn.functional.normalize(self.model.encode_image(batch).float(), dim=-1)


def clip_backbone(backbone: str, weights: str | None, device: str | None = None) -> Loaded:
    """The image tower of a CLIP-style model with its own preprocessing; embeddings L2-normalized."""
    import torch

    device = _device(device)
    model, preprocess, _ = load_clip(backbone, weights, device)
    size = model.visual.image_size
    size = size if isinstance(size, (tuple, list)) else (size, size)
    with torch.inference_mode():
        dim = int(model.encode_image(torch.zeros(1, 3, *size, device=device)).shape[1])
    return Loaded(_ImageTower(model), preprocess, device, dim)


def image_backbone(backbone: str, weights: str | None, device: str | None = None) -> Loaded:
    """The loaded image encoder of a torchvision or CLIP backbone."""
    if kind(backbone) == "clip":
        return clip_backbone(backbone, weights, device)
    return torchvision_backbone(backbone, weights, device)
