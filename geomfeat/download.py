"""Fetching, verifying and caching checkpoint files with pooch.

Two environment variables control where checkpoints come from and where they are kept:

``GEOMFEAT_CACHE``
    Folder of the local cache. Default: pooch's per-user cache folder for ``geomfeat``
    (``~/.cache/geomfeat`` on Linux). A checkpoint already there whose SHA-256 matches is used
    without any network access, so an air-gapped site can simply copy the ``.pth`` files into it.
``GEOMFEAT_WEIGHTS_URL``
    Base location that replaces the upstream one: the file is fetched from
    ``$GEOMFEAT_WEIGHTS_URL/<file name>``. An ``http(s)://`` or ``ftp://`` URL (a mirror), or a
    local folder (plain path or ``file://`` URL) holding the checkpoint files.

Every file is verified against the SHA-256 in the registry before it is used. A download whose hash
does not match is deleted and reported; it never stays in the cache.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

import pooch

from .cache import CACHE_ENV, cache_dir
from .errors import WeightsError
from .registry import ModelCard, get_model_card

__all__ = ["CACHE_ENV", "cache_dir", "fetch_weights", "is_cached", "quiet_downloads", "weights_url"]

URL_ENV = "GEOMFEAT_WEIGHTS_URL"
#: URL schemes ``$GEOMFEAT_WEIGHTS_URL`` may use (pooch's downloaders, and local files).
URL_SCHEMES = ("http", "https", "ftp", "sftp", "doi", "file")


def weights_url(model: str | ModelCard) -> str:
    """Where the checkpoint of ``model`` is fetched from, honouring ``$GEOMFEAT_WEIGHTS_URL``."""
    card = get_model_card(model)
    base = os.environ.get(URL_ENV)
    if not base:
        return card.url
    scheme = urlparse(base).scheme
    if len(scheme) > 1 and scheme.lower() not in URL_SCHEMES:  # 1 letter: a Windows drive
        raise WeightsError(f"{URL_ENV}={base!r} has the unknown URL scheme {scheme!r}; use "
                           f"{', '.join(s + '://' for s in URL_SCHEMES)} or a local folder")
    return f"{base.rstrip('/')}/{card.file}"


def is_cached(model: str | ModelCard) -> bool:
    """Whether a verified copy of the checkpoint is in the cache (hashes the file)."""
    card = get_model_card(model)
    path = cache_dir() / card.file
    return path.is_file() and pooch.file_hash(str(path)) == card.sha256


def _local_source(url: str) -> Path | None:
    """The local file behind ``url`` if it is a plain path or a ``file://`` URL."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if len(parsed.scheme) <= 1:  # a POSIX path, or a Windows path with a drive letter
        return Path(url)
    return None


def _copy_downloader(source: Path):
    def download(url: str, output_file, pooch_obj, check_only: bool = False) -> bool | None:
        if check_only:
            return source.is_file()
        if not source.is_file():
            raise FileNotFoundError(f"no such file: {source}")
        with open(source, "rb") as src:
            if isinstance(output_file, (str, os.PathLike)):
                with open(output_file, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            else:
                shutil.copyfileobj(src, output_file)
        return None

    return download


def fetch_weights(model: str | ModelCard, *, progress: bool = True) -> Path:
    """Return the local path of a verified checkpoint, downloading it on first use.

    Parameters
    ----------
    model : str or ModelCard
        Registry name of the encoder.
    progress : bool
        Show a download progress bar on stderr.

    Returns
    -------
    pathlib.Path
        Path of the checkpoint inside :func:`cache_dir`; for a local model card (one written
        by ``geomfeat pretrain``), the checkpoint beside the card, verified where it is.

    Raises
    ------
    WeightsError
        If the file cannot be fetched (the message names the URL and both settings) or its
        SHA-256 does not match the registry or the model card.
    """
    card = get_model_card(model)
    if card.path:  # a local model card: verify its checkpoint where it is, never download
        path = Path(card.path)
        if not path.is_file():
            raise WeightsError(f"checkpoint {path} of model card {card.name!r} not found")
        if pooch.file_hash(str(path)) != card.sha256:
            raise WeightsError(f"checkpoint {path} does not match the SHA-256 of model card "
                               f"{card.name!r} (expected {card.sha256}); it was changed or "
                               "replaced after the card was written")
        return path
    url = weights_url(card)
    folder = cache_dir()
    local = _local_source(url)
    downloader = _copy_downloader(local) if local is not None else None
    if downloader is None and progress:
        downloader = pooch.HTTPDownloader(progressbar=True) if url.startswith("http") else None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = pooch.retrieve(
            url,
            known_hash=f"sha256:{card.sha256}",
            fname=card.file,
            path=folder,
            downloader=downloader,
            progressbar=False if downloader is not None else progress,
        )
    except ValueError as exc:
        if "hash" in str(exc).lower():
            raise WeightsError(
                f"checkpoint {card.file} fetched from {url} failed SHA-256 verification "
                f"(expected {card.sha256}); the file was discarded. {exc}"
            ) from None
        raise
    except Exception as exc:  # network, HTTP and file-system errors of pooch/requests
        raise WeightsError(
            f"could not fetch checkpoint {card.file} from {url} and no verified copy is cached in "
            f"{folder} ({type(exc).__name__}: {exc}). Set {URL_ENV} to a mirror or to a folder "
            f"holding the file, or put the file into the cache folder ({CACHE_ENV})."
        ) from exc
    return Path(path)


@contextmanager
def quiet_downloads(quiet: bool = True) -> Iterator[None]:
    """Silence pooch's "Downloading data from ..." line inside the block (when ``quiet``).

    pooch logs through its own ``logging.Logger("pooch")`` object with a handler on stderr; it
    is not ``logging.getLogger("pooch")``, so its level is set on :func:`pooch.get_logger`.
    """
    logger = pooch.get_logger()
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
