"""Box annotations in the three formats users have: YOLO text labels, PASCAL VOC XML and COCO JSON.

Each reader returns a list of :class:`Annotated` records (an image path, boxes ``[N, 4]`` as normalised
``(x1, y1, x2, y2)`` in [0, 1], integer labels ``[N]``) and a :class:`ReadReport` that counts what was
noticed once per data set (images without a label file, label files without an image). A malformed line
raises :class:`~spikeconv.errors.AnnotationError` naming the file and line; nothing is skipped silently.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ..errors import AnnotationError, DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Annotated:
    """One image and its boxes: ``boxes [N, 4]`` normalised ``(x1, y1, x2, y2)``, ``labels [N]`` int64."""

    image: Path
    boxes: Tensor
    labels: Tensor


@dataclass
class ReadReport:
    """What a reader noticed about a data set, to be shown once: counts and a few example names."""

    images: int = 0
    boxes: int = 0
    unlabelled: list[str] = field(default_factory=list)
    orphan_labels: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable notes (empty when there is nothing to say beyond the counts)."""
        out = []
        if self.unlabelled:
            out.append(f"{len(self.unlabelled)} image(s) have no label file and count as images without objects "
                       f"(e.g. {self.unlabelled[0]})")
        if self.orphan_labels:
            out.append(f"{len(self.orphan_labels)} label file(s) have no image and were ignored "
                       f"(e.g. {self.orphan_labels[0]})")
        return out


def _yolo_line(path: Path, number: int, line: str, num_classes: int) -> tuple[int, list[float]]:
    fields = line.split()
    where = f"{path}:{number}"
    if len(fields) != 5:
        raise AnnotationError(f"{where}: a YOLO label line has 5 fields 'class cx cy w h', found {len(fields)}")
    try:
        label = int(fields[0])
        cx, cy, w, h = (float(v) for v in fields[1:])
    except ValueError as exc:
        raise AnnotationError(f"{where}: cannot read {line.strip()!r} as 'class cx cy w h' ({exc})") from None
    if not 0 <= label < num_classes:
        raise AnnotationError(f"{where}: class index {label} is outside 0..{num_classes - 1}")
    if not (w > 0 and h > 0):
        raise AnnotationError(f"{where}: the box has zero or negative size (w={w}, h={h})")
    box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    tolerance = 1e-3  # labels written with 6 decimals round a box at the border just past it
    if not all(-tolerance <= v <= 1 + tolerance for v in box):
        raise AnnotationError(f"{where}: the box ({cx}, {cy}, {w}, {h}) reaches outside the image; YOLO "
                              "coordinates are normalised to [0, 1]")
    return label, [min(max(v, 0.0), 1.0) for v in box]


def read_yolo(images: str | os.PathLike, labels: str | os.PathLike, num_classes: int) -> tuple[list[Annotated], ReadReport]:
    """Read ``images/*.jpg`` with ``labels/<stem>.txt`` (one line ``class cx cy w h`` per box, normalised).

    An image without a label file has no objects (counted in the report); a label file without an image is
    ignored (counted). Example layout: ``coco128/images/train2017`` and ``coco128/labels/train2017``.
    """
    images, labels = Path(images), Path(labels)
    if not images.is_dir():
        raise DataError(f"image folder {images} does not exist")
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{images} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    report = ReadReport(images=len(files))
    stems = {p.stem for p in files}
    if labels.is_dir():
        report.orphan_labels = sorted(p.name for p in labels.glob("*.txt") if p.stem not in stems)
    records = []
    for image in files:
        label_file = labels / f"{image.stem}.txt"
        rows: list[tuple[int, list[float]]] = []
        if label_file.is_file():
            for number, line in enumerate(label_file.read_text().splitlines(), start=1):
                if line.strip():
                    rows.append(_yolo_line(label_file, number, line, num_classes))
        else:
            report.unlabelled.append(image.name)
        records.append(_record(image, rows))
        report.boxes += len(rows)
    return records, report


def _record(image: Path, rows: list[tuple[int, list[float]]]) -> Annotated:
    boxes = torch.tensor([r[1] for r in rows], dtype=torch.float32).reshape(-1, 4)
    return Annotated(image, boxes, torch.tensor([r[0] for r in rows], dtype=torch.int64))


def read_voc(images: str | os.PathLike, annotations: str | os.PathLike, classes: list[str],
             *, keep_difficult: bool = False) -> tuple[list[Annotated], ReadReport]:
    """Read PASCAL VOC: ``annotations/<stem>.xml`` (``<object><name>``, ``<bndbox>`` in 1-based pixels)."""
    images, annotations = Path(images), Path(annotations)
    files = sorted(annotations.glob("*.xml")) if annotations.is_dir() else []
    if not files:
        raise DataError(f"{annotations} holds no VOC .xml annotations")
    index = {name: k for k, name in enumerate(classes)}
    records, report = [], ReadReport()
    for xml in files:
        try:
            root = ElementTree.parse(xml).getroot()
            width = float(root.findtext("size/width"))
            height = float(root.findtext("size/height"))
        except (ElementTree.ParseError, TypeError, ValueError) as exc:
            raise AnnotationError(f"{xml}: not a VOC annotation with <size><width>/<height> ({exc})") from None
        image = images / (root.findtext("filename") or f"{xml.stem}.jpg")
        if not image.is_file():
            report.orphan_labels.append(xml.name)
            continue
        rows = []
        for k, obj in enumerate(root.iter("object"), start=1):
            name = obj.findtext("name", "").strip()
            if name not in index:
                raise AnnotationError(f"{xml}: object {k} has class {name!r}, not among the {len(classes)} classes given")
            if not keep_difficult and obj.findtext("difficult", "0").strip() == "1":
                continue
            try:
                x1, y1, x2, y2 = (float(obj.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax"))
            except (TypeError, ValueError):
                raise AnnotationError(f"{xml}: object {k} has no numeric <bndbox>") from None
            if not (x2 > x1 and y2 > y1):
                raise AnnotationError(f"{xml}: object {k} has a box of zero or negative size")
            rows.append((index[name], [max(x1 - 1, 0) / width, max(y1 - 1, 0) / height,
                                       min(x2 / width, 1.0), min(y2 / height, 1.0)]))
        records.append(_record(image, rows))
        report.boxes += len(rows)
    report.images = len(records)
    return records, report


def read_coco(images: str | os.PathLike, annotation_file: str | os.PathLike,
              categories: list[int] | None = None) -> tuple[list[Annotated], ReadReport]:
    """Read COCO JSON (``images``, ``annotations`` with ``bbox = [x, y, w, h]`` pixels, ``category_id``).

    Category ids map to contiguous labels in sorted order (or in the order of ``categories``); crowd
    annotations are left out.
    """
    images, annotation_file = Path(images), Path(annotation_file)
    try:
        data = json.loads(annotation_file.read_text())
        entries, anns = data["images"], data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AnnotationError(f"{annotation_file}: not a COCO annotation file with 'images' and 'annotations' ({exc})") from None
    ids = categories or sorted(c["id"] for c in data.get("categories", []))
    index = {cid: k for k, cid in enumerate(ids)}
    by_image: dict[int, list[dict]] = {}
    for ann in anns:
        by_image.setdefault(ann["image_id"], []).append(ann)
    records, report = [], ReadReport()
    for entry in sorted(entries, key=lambda e: e["file_name"]):
        image = images / entry["file_name"]
        if not image.is_file():
            report.orphan_labels.append(entry["file_name"])
            continue
        width, height = float(entry["width"]), float(entry["height"])
        rows = []
        for ann in by_image.get(entry["id"], []):
            if ann.get("iscrowd", 0):
                continue
            if ann["category_id"] not in index:
                raise AnnotationError(f"{annotation_file}: annotation {ann.get('id')} has unknown category "
                                      f"{ann['category_id']}")
            x, y, w, h = (float(v) for v in ann["bbox"])
            if not (w > 0 and h > 0):
                raise AnnotationError(f"{annotation_file}: annotation {ann.get('id')} has a box of zero size")
            rows.append((index[ann["category_id"]], [x / width, y / height, min((x + w) / width, 1.0),
                                                     min((y + h) / height, 1.0)]))
        if not rows:
            report.unlabelled.append(entry["file_name"])
        records.append(_record(image, rows))
        report.boxes += len(rows)
    report.images = len(records)
    return records, report


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names from a YOLO ``classes.yaml`` (``names:`` then ``  k: name`` lines) or a text file of names."""
    path = Path(path)
    lines = path.read_text().splitlines()
    if path.suffix in (".yaml", ".yml"):
        names: dict[int, str] = {}
        inside = False
        for line in lines:
            if line.strip().startswith("names:"):
                inside = True
                continue
            if inside and ":" in line and line.startswith((" ", "\t")):
                key, value = line.split(":", 1)
                names[int(key.strip())] = value.strip().strip("'\"")
            elif inside and line.strip():
                break
        if not names or sorted(names) != list(range(len(names))):
            raise AnnotationError(f"{path}: no contiguous 'names:' block of 'k: name' lines")
        return [names[k] for k in range(len(names))]
    return [line.strip() for line in lines if line.strip()]
