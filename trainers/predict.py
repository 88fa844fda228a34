"""``h3r-predict``: run a trained model on image files, folders or a dataset split, and write what it sees.

Usage::

    h3r-predict CONFIG --checkpoint runs/synthetic/last.pt photo.png folder/ [--out DIR]
        [--boxes boxes.json] [--decoder NAME] [--flip] [--set key=value ...]
    h3r-predict wflw --checkpoint last.pt /data/WFLW --split test      # the dataset's own boxes

The crop of each instance is one of:

* the whole image (no ``--boxes``): the crop box is the image itself, ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``
  in pixel-centre coordinates, with no padding, so an image of the network's input size is used as it is;
* a box per instance from a COCO-style ``--boxes`` JSON (``images`` with ``id`` / ``file_name``,
  ``annotations`` with ``image_id`` / ``bbox = [x, y, w, h]``), enlarged by the config's ``padding`` as in
  evaluation;
* the dataset's own boxes (``--split``): INPUT is a dataset root, read by the config's loader exactly as
  ``h3r-eval`` reads it (:func:`trainers.build.build_datasets`).

In every case the crop is a :class:`~trainers.data.dataset.LandmarkDataset` sample, predicted by
:func:`trainers.evaluate.predict` and mapped back to ORIGINAL pixels by the inverse of the sample's matrix
(:func:`trainers.data.transforms.invert`), the same transforms as evaluation, not a second implementation.

Writes ``DIR/predictions.json`` (COCO keypoint results: ``image_id``, ``category_id``, ``keypoints`` as
``[x, y, score] * K`` in original pixels, ``score`` = mean keypoint score, plus ``file_name`` and the crop
``bbox``) and ``DIR/overlays/<image>.png`` (the image with its predicted landmarks, and the skeleton of
pose datasets from their :class:`~trainers.data.specs.DatasetSpec`). Bad input (a missing or unreadable
file, bad JSON, a box outside its image, a checkpoint of another model or codec) ends with one line naming
the file and entry, and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from h3r_theory.codecs import HeatmapCodec, RandomizedRounding
from h3r_theory.codecs.randomized_rounding import DECODE_METHODS

from . import checkpoint as checkpoint_io
from .build import build_codec, build_datasets, build_network, report_skips
from .config import Config, load_config
from .data import transforms
from .data.dataset import LandmarkDataset
from .data.parsing import read_json
from .data.records import ImageRef, load_image, make_record
from .distributed import local_device, unwrap
from .evaluate import predict
from .run_folder import write_bytes_atomic
from .runtime import amp_dtype, batches

MIN_OVERLAY_SIDE = 256  # pixels on the longer side of an overlay, at least
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclasses.dataclass(frozen=True)
class Markup:
    """What prediction needs to know about the model's dataset, without reading the dataset's files.

    Attributes:
        name: the dataset name (``data.name``); records are tagged with it.
        num_keypoints: K.
        flip_pairs: left/right pairs for the flip test.
        skeleton: limbs drawn on the overlays (empty for faces).
        input_size: the network input ``(W, H)``.
        options: the :class:`~trainers.data.dataset.LandmarkDataset` keyword arguments of evaluation (``padding``, ...).
    """

    name: str
    num_keypoints: int
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    input_size: tuple[int, int]
    options: dict


def _dataset_default(name: str):
    return inspect.signature(LandmarkDataset).parameters[name].default


def markup_of(config: Config) -> Markup:
    """The :class:`Markup` of ``config.data``: the synthetic set's generator, or a real dataset's spec."""
    d = config.data
    if d.name == "synthetic":
        (eval_set,) = build_datasets(config, ["eval"])  # generated lazily: nothing is rendered here
        padding = {"padding": d.options.get("padding", _dataset_default("padding"))}
        return Markup(
            "synthetic", eval_set.num_keypoints, tuple(eval_set.flip_pairs), (), eval_set.input_size, padding
        )
    from .data.flip_pairs import flip_pairs_for
    from .data.specs import get_spec

    spec = get_spec(d.name)
    size = tuple(d.input_size) if d.input_size is not None else tuple(_dataset_default("input_size"))
    return Markup(
        spec.name,
        spec.num_keypoints,
        tuple(flip_pairs_for(spec.name, spec.num_keypoints)),
        tuple(spec.skeleton),
        (int(size[0]), int(size[1])),
        dict(d.options),
    )


# -- inputs -------------------------------------------------------------------------------------------------
def image_files(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files of ``inputs`` in order: files as given, folders' images (by suffix) sorted by name."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"INPUT folder {path} holds no image file ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"INPUT not found: {path}")
    return files


def _number_list(value, length: int, where: str) -> list[float]:
    ok = isinstance(value, list) and len(value) == length
    ok = ok and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok:
        raise ValueError(f"{where}: expected {length} finite numbers, found {str(value)[:80]}")
    return [float(v) for v in value]


def read_boxes(path: Path) -> dict[str, list[tuple[np.ndarray, object]]]:
    """A COCO-style boxes file -> ``{image file name: [(box x_min, y_min, x_max, y_max, image id), ...]}``.

    Images are matched to INPUT files by their base name. Every failure names the file and the entry
    (``boxes.json: annotations[3].bbox: ...``).
    """
    data = read_json(path, "boxes file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(
            f"{path}: expected a COCO-style object with an 'images' list and an 'annotations' list"
        )
    if not isinstance(data.get("annotations"), list):
        raise ValueError(f"{path}: expected an 'annotations' list (one entry with a 'bbox' per instance)")
    names: dict[object, str] = {}
    for i, image in enumerate(data["images"]):
        where = f"{path}: images[{i}]"
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise ValueError(f"{where}: expected an object with 'id' and a 'file_name' string")
        if isinstance(image["id"], (dict, list)):
            raise ValueError(f"{where}: id must be a number or a string, found {image['id']!r}")
        name = Path(image["file_name"]).name
        if image["id"] in names and names[image["id"]] != name:
            raise ValueError(f"{where}: id {image['id']!r} is already used by {names[image['id']]!r}")
        names[image["id"]] = name
    boxes: dict[str, list[tuple[np.ndarray, object]]] = {}
    for j, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{j}]"
        if not isinstance(ann, dict) or "image_id" not in ann or "bbox" not in ann:
            raise ValueError(f"{where}: expected an object with 'image_id' and 'bbox' [x, y, w, h]")
        if isinstance(ann["image_id"], (dict, list)) or ann["image_id"] not in names:
            raise ValueError(f"{where}: image_id {ann['image_id']!r} is not an id of 'images'")
        x, y, w, h = _number_list(ann["bbox"], 4, f"{where}.bbox")
        if w <= 0 or h <= 0:
            raise ValueError(f"{where}.bbox: width and height must be positive, found {[x, y, w, h]}")
        boxes.setdefault(names[ann["image_id"]], []).append((np.array([x, y, x + w, y + h]), ann["image_id"]))
    return boxes


def check_box_in_image(box: np.ndarray, width: int, height: int, where: str) -> None:
    """Refuse a box that shares no area with its image ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.

    A box that only overhangs the border is kept: evaluation crops such boxes too (the outside is
    zero-padded), and COCO boxes routinely reach the far edge ``x + w = W``.
    """
    overlap_x = min(box[2], width - 0.5) - max(box[0], -0.5)
    overlap_y = min(box[3], height - 0.5) - max(box[1], -0.5)
    if overlap_x <= 0 or overlap_y <= 0:
        raise ValueError(
            f"{where}: box {np.round(box, 2).tolist()} (x_min, y_min, x_max, y_max) lies outside the "
            f"image of {width} x {height} pixels"
        )


@dataclasses.dataclass
class Instance:
    """One crop to predict: which image, which record of which dataset, and its COCO ids."""

    image: ImageRef  # a file, or an image inside a MATLAB file (COFW)
    image_id: object
    dataset: LandmarkDataset
    index: int


def image_instances(
    files: Sequence[Path], markup: Markup, boxes: dict | None, boxes_path: Path | None
) -> list[Instance]:
    """One :class:`Instance` per image (whole image) or per box of ``boxes`` (COCO-style, by file name)."""
    K = markup.num_keypoints
    items = []  # (record, image, image id)
    for position, path in enumerate(files):
        height, width = load_image(path).shape[:2]  # decoded in full: an unreadable image stops here
        if boxes is None:
            box = np.array([-0.5, -0.5, width - 0.5, height - 0.5])
            items.append((_record(path, box, K, markup.name, str(path)), path, position))
            continue
        entries = boxes.get(path.name)
        if not entries:
            raise ValueError(f"{boxes_path}: no annotation has a box for image {path.name!r} (INPUT {path})")
        for n, (box, image_id) in enumerate(entries):
            where = f"{boxes_path}: box {n} of image {path.name!r}"
            check_box_in_image(box, width, height, where)
            items.append((_record(path, box, K, markup.name, where), path, image_id))
    if not items:
        return []
    # The whole image is the crop itself (no padding); a box is padded as evaluation pads it.
    options = {**markup.options, "padding": 1.0} if boxes is None else markup.options
    dataset = _dataset([record for record, _, _ in items], markup, options)
    return [Instance(path, image_id, dataset, i) for i, (_, path, image_id) in enumerate(items)]


def _record(path: Path, box: np.ndarray, K: int, dataset: str, source: str):
    return make_record(path, np.zeros((K, 2)), np.zeros(K, dtype=np.int64), dataset, source, box=box)


def _dataset(records: list, markup: Markup, options: dict) -> LandmarkDataset:
    options = {k: v for k, v in options.items() if k != "input_size"}
    return LandmarkDataset(
        records, input_size=markup.input_size, train=False, flip_pairs=markup.flip_pairs, **options
    )


def dataset_instances(config: Config, root: Path, split: str) -> list[Instance]:
    """The records of ``split`` under ``root``, built exactly as ``h3r-eval`` builds its eval set."""
    if config.data.name == "synthetic":
        raise ValueError("--split reads a dataset root with the config's loader; the synthetic set has none")
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root}")
    data = dataclasses.replace(config.data, root=str(root), eval_split=split)
    (dataset,) = build_datasets(dataclasses.replace(config, data=data), ["eval"])
    report_skips("h3r-predict", [dataset])
    out = []
    for i, record in enumerate(dataset.records):
        image_id = record.extras.get("image_id", i)
        out.append(Instance(record.image, image_id, dataset, i))
    return out


# -- model ---------------------------------------------------------------------------------------------------
def decode_options(codec: HeatmapCodec, config: Config, decoder: str | None) -> dict:
    """The decoder options of ``--decoder NAME``: the codec's own name is its configured decoder; a
    :class:`RandomizedRounding` codec also offers each of its ``method`` s (window, topk, 2x2)."""
    options = dict(config.eval.decode)
    if decoder is None or decoder == codec.name:
        return options
    names = [codec.name] + (list(DECODE_METHODS) if isinstance(codec, RandomizedRounding) else [])
    if decoder not in names:
        raise ValueError(
            f"--decoder {decoder!r} is not a decoder of codec {codec.name!r}; choose from {names}"
        )
    return {**options, "method": decoder}


def load_checked(model: nn.Module, path: Path, config: Config) -> dict:
    """Load ``path`` into ``model`` after checking that it was trained with the same model and codec."""
    state = checkpoint_io.load(path)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path} is not an h3r-train checkpoint (no 'model' entry)")
    checkpoint_io.check_settings(state, config, path, override="--set ")
    try:
        unwrap(model).load_state_dict(state["model"])
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise ValueError(f"checkpoint {path} does not fit the config's model: {detail[:300]}") from None
    return state


@torch.no_grad()
def predict_instances(
    model: nn.Module,
    codec: HeatmapCodec,
    instances: Sequence[Instance],
    *,
    batch_size: int,
    flip_test: bool,
    options: dict,
    device: torch.device,
    amp: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keypoints (N, K, 2) float64 in ORIGINAL pixels, scores (N, K) and crop matrices (N, 2, 3).

    Batches never mix datasets (whole-image and boxed crops are two datasets); within each, the indices run
    in order in batches of ``batch_size``, as :func:`trainers.evaluate.evaluate` runs them.
    """
    N = len(instances)
    K = instances[0].dataset.num_keypoints
    pred, scores = torch.zeros(N, K, 2, dtype=torch.float64), torch.zeros(N, K, dtype=torch.float64)
    matrices = torch.zeros(N, 2, 3, dtype=torch.float64)
    groups: dict[int, list[int]] = {}
    for n, inst in enumerate(instances):
        groups.setdefault(id(inst.dataset), []).append(n)
    for members in groups.values():
        dataset = instances[members[0]].dataset
        rows = sorted(members, key=lambda n: instances[n].index)
        chunks = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
        index_lists = [[instances[n].index for n in chunk] for chunk in chunks]
        for chunk, batch in zip(chunks, batches(dataset, index_lists, 0, seed=0)):
            images = batch["image"].to(device)
            coords, s = predict(model, codec, images, dataset.flip_pairs, flip_test, options, amp)
            matrix = torch.as_tensor(batch["matrix"], dtype=torch.float64)
            pred[chunk] = transforms.transform_points(
                coords.to("cpu", torch.float64), transforms.invert(matrix)
            )
            scores[chunk] = s.to("cpu", torch.float64)
            matrices[chunk] = matrix
    return pred, scores, matrices


# -- outputs -------------------------------------------------------------------------------------------------
def crop_box(matrix: torch.Tensor, input_size: Sequence[int]) -> list[float]:
    """COCO ``[x, y, w, h]`` (original pixels) of the region the network saw: the input box mapped back."""
    W, H = input_size
    corners = torch.tensor(
        [[-0.5, -0.5], [W - 0.5, -0.5], [-0.5, H - 0.5], [W - 0.5, H - 0.5]], dtype=torch.float64
    )
    back = transforms.transform_points(corners[None], transforms.invert(matrix[None]))[0]
    low, high = back.min(0).values, back.max(0).values
    return [round(float(v), 3) for v in (low[0], low[1], high[0] - low[0], high[1] - low[1])]


def _plain(value):
    """A numpy scalar (an id read from a .mat or .npy file) as the Python number JSON can write."""
    return value.item() if isinstance(value, np.generic) else value


def coco_results(
    instances: Sequence[Instance], pred: torch.Tensor, scores: torch.Tensor, matrices: torch.Tensor
) -> list[dict]:
    """COCO keypoint results, one per instance: ``keypoints`` ``[x, y, score] * K`` in original pixels."""
    out = []
    for n, inst in enumerate(instances):
        triples = torch.cat([pred[n], scores[n][:, None]], dim=-1).reshape(-1)
        out.append(
            {
                "image_id": _plain(inst.image_id),
                "file_name": str(inst.image),
                "category_id": 1,
                "bbox": crop_box(matrices[n], inst.dataset.input_size),
                "keypoints": [float(v) for v in triples],  # float64, unrounded: what evaluation computes
                "score": float(scores[n].mean()),
            }
        )
    return out


def overlay_figure(
    image: np.ndarray, keypoints: Sequence[np.ndarray], skeleton: Sequence[tuple[int, int]] = ()
):
    """A matplotlib Figure of ``image`` (H, W, 3) uint8 with each instance's ``keypoints`` (K, 2, original
    pixels) drawn as dots, joined by ``skeleton`` limbs when given. The picture is the image's own size, or
    an integer multiple of it for images under :data:`MIN_OVERLAY_SIDE` pixels (a 64 px face is too small
    to see its landmarks)."""
    from matplotlib.figure import Figure

    H, W = image.shape[:2]
    zoom = max(1, math.ceil(MIN_OVERLAY_SIDE / max(W, H)))  # small images drawn larger, pixels kept square
    dpi = 100
    fig = Figure(figsize=(W * zoom / dpi, H * zoom / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image, interpolation="nearest")  # default extent: pixel centres at integer coordinates
    scale = max(W, H) * zoom / 256.0  # markers and lines of the same size on the drawn picture
    for kp in keypoints:
        for a, b in skeleton:
            ax.plot(kp[[a, b], 0], kp[[a, b], 1], color="#1f77b4", lw=1.2 * scale**0.5)
        # cyan with a dark rim: readable on the coloured blobs of the synthetic faces and on photographs
        ax.scatter(kp[:, 0], kp[:, 1], s=16.0 * scale, color="#00e5ff", edgecolors="black", linewidths=0.6)
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.set_axis_off()
    return fig


def write_outputs(
    out_dir: Path, instances: Sequence[Instance], pred: torch.Tensor, results: list[dict], skeleton
) -> dict:
    """Write ``predictions.json`` and one overlay PNG per image; returns their paths
    ``{"predictions": path, "overlays": [path, ...]}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "predictions.json"
    # Each file through a temp file and a rename: a Ctrl-C leaves whole files, and a link at a name is
    # replaced, not written through.
    write_bytes_atomic(json_path, (json.dumps(results, indent=1) + "\n").encode())
    by_image: dict[ImageRef, list[int]] = {}
    for n, inst in enumerate(instances):
        by_image.setdefault(inst.image, []).append(n)
    (out_dir / "overlays").mkdir(exist_ok=True)
    used: set[str] = set()
    overlays = []
    for image, rows in by_image.items():
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(image)).stem)  # "file.mat:IsT[3]" -> a file name
        name, k = stem, 1
        while name in used:  # the same stem in two folders
            k += 1
            name = f"{stem}_{k}"
        used.add(name)
        fig = overlay_figure(load_image(image), [pred[n].numpy() for n in rows], skeleton)
        path = out_dir / "overlays" / f"{name}.png"
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=fig.dpi)
        overlays.append(str(write_bytes_atomic(path, buffer.getvalue())))
    return {"predictions": str(json_path), "overlays": overlays}


# -- test images ------------------------------------------------------------------------------------------
def save_synthetic_images(config: Config | str, folder: str | Path, count: int = 8) -> list[Path]:
    """The first ``count`` images of the config's synthetic EVAL split as PNG files ``folder/face_<i>.png``
    (8-bit, rounded from the rendered [0, 1] floats): test images for ``h3r-predict`` whose keypoints are
    known (``build_datasets(config, ["eval"])[0][i]["keypoints"]``, in the same pixels)."""
    from PIL import Image

    config = load_config(config) if isinstance(config, str) else config
    if config.data.name != "synthetic":
        raise ValueError(
            f"save_synthetic_images needs a synthetic config, got data.name={config.data.name!r}"
        )
    (eval_set,) = build_datasets(config, ["eval"])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(min(int(count), len(eval_set))):
        pixels = eval_set[i]["image"].permute(1, 2, 0).mul(255.0).round().to(torch.uint8).numpy()
        paths.append(folder / f"face_{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


# -- command line -------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict:
    """Everything :func:`main` does after parsing; raises ``ValueError`` / ``OSError`` on bad input."""
    check_out_folder(Path(args.out))  # before any work: an unusable --out would lose it
    config = load_config(args.config, args.set)
    markup = markup_of(config)
    if args.split is not None:
        if len(args.inputs) != 1 or args.boxes is not None:
            raise ValueError("--split takes exactly one INPUT, the dataset root, and no --boxes")
        instances = dataset_instances(config, Path(args.inputs[0]), args.split)
    else:
        boxes_path = None if args.boxes is None else Path(args.boxes)
        boxes = None if boxes_path is None else read_boxes(boxes_path)
        instances = image_instances(image_files(args.inputs), markup, boxes, boxes_path)
    if not instances:
        raise ValueError("nothing to predict: no image and no record in INPUT")
    device = local_device(config.train.device)
    codec = build_codec(config, markup.input_size)
    options = decode_options(codec, config, args.decoder)
    model = build_network(config, markup.num_keypoints)
    load_checked(model, Path(args.checkpoint), config)
    model.to(device)
    flip_test = bool(args.flip or config.eval.flip_test)
    pred, scores, matrices = predict_instances(
        model,
        codec,
        instances,
        batch_size=config.eval.batch_size,
        flip_test=flip_test,
        options=options,
        device=device,
        amp=amp_dtype(device, config.train.amp),
    )
    results = coco_results(instances, pred, scores, matrices)
    return write_outputs(Path(args.out), instances, pred, results, markup.skeleton)


def check_out_folder(out: Path) -> None:
    """``ValueError`` naming ``--out`` when it, ``overlays/`` in it or a parent of it is not a folder."""
    for path in (out, out / "overlays"):
        if path.exists() and not path.is_dir():
            raise ValueError(f"--out {out}: {path} is a file, not a folder")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ValueError(f"--out {out}: {parent} is a file, not a folder")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="h3r-predict", description="Predict landmarks with a trained model")
    p.add_argument("config", help="the training config: a YAML file or a bundled name (synthetic, wflw, ...)")
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files or folders (or a dataset root with --split)"
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint written by h3r-train (last.pt)")
    p.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    p.add_argument("--boxes", help="COCO-style JSON with one bbox per instance (images matched by file name)")
    p.add_argument("--split", help="INPUT is a dataset root: predict this split with the dataset's own boxes")
    p.add_argument("--decoder", help="a decoder of the codec (its name, or a method: window, topk, 2x2)")
    p.add_argument("--flip", action="store_true", help="flip test: average with the mirrored image's maps")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override, as for h3r-train (repeat it for several), e.g. --set codec.name=argmax",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``h3r-predict``: prints the written paths as JSON; bad input: one line on stderr, exit status 2."""
    args = parser().parse_args(argv)
    try:
        written = run(args)
    except KeyboardInterrupt:  # outputs are written atomically, file by file: nothing is left half-written
        print("h3r-predict: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:
        print(f"h3r-predict: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(json.dumps({"predictions": written["predictions"], "overlays": len(written["overlays"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
