"""Fetching Kaggle datasets with ``kagglehub`` (cached), with an error that says how to do it by hand."""

from __future__ import annotations

import logging
from pathlib import Path

from mushroom.data.images import IMAGE_EXTENSIONS
from mushroom.errors import MushroomError

log = logging.getLogger(__name__)

GENUS_HANDLE = "maysee/mushrooms-classification-common-genuss-images"


def has_images(root: Path) -> bool:
    """Whether ``root`` already holds images of any kind the package reads (so no download is needed).

    Not only JPEGs: the 215-species archive is all PNG, and ``.JPG`` and ``.jpeg`` occur in the others.
    """
    if not root.is_dir():
        return False
    return any(path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() for path in root.rglob("*"))


def download_dataset(handle: str, target: str | Path) -> Path:
    """Download Kaggle dataset ``handle`` into ``target`` unless images are already there.

    kagglehub keeps its own cache, so a second call does not download again. Credentials come
    from ``~/.kaggle/kaggle.json`` or ``KAGGLE_USERNAME``/``KAGGLE_KEY``, as kagglehub reads them.
    """
    target = Path(target).expanduser()
    if has_images(target):
        return target
    import kagglehub

    log.info("Downloading Kaggle dataset %s into %s", handle, target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        path = kagglehub.dataset_download(handle, output_dir=str(target))
    except Exception as error:
        raise MushroomError(
            f"Could not download the Kaggle dataset '{handle}' ({type(error).__name__}: {error}).\n"
            "Either make kagglehub work (network access plus credentials in ~/.kaggle/kaggle.json or "
            "the KAGGLE_USERNAME and KAGGLE_KEY variables), or download the archive by hand from "
            f"https://www.kaggle.com/datasets/{handle}, unpack it and place the class folders under "
            f"{target} (either {target}/<Genus>/<image>.jpg or the archive's own "
            f"{target}/Mushrooms/<Genus>/<image>.jpg), or point data.root at where they are."
        ) from error
    path = Path(path)
    if not has_images(path):
        raise MushroomError(f"kagglehub returned {path} for '{handle}', but it holds no JPEG images.")
    log.info("Dataset %s is in %s", handle, path)
    return path
