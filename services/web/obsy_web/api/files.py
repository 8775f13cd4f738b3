"""Allsky frames and the files of the data directory.

Only files under ``data_dir`` are served, only media types (images, videos, FITS), never
hidden files, and never through a path that leaves the directory (``..``, absolute paths,
symbolic links pointing out): the database and logs live there too.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlparse

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as FastApiPath
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import func, select

from obsy_web.api.common import Page, Paging
from obsy_web.api.fleet import of_site, site_filter
from obsy_web.api.security import get_context, viewer
from obsy_web.context import WebContext
from obsy_web.db.models import AllskyFrameRecord, AllskyStreakRecord
from obsy_web.uploads import SITES_FOLDER, allsky_picture_url, bridged_frame_path

router = APIRouter(dependencies=[Depends(viewer)])

SERVED_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".mp4", ".webm", ".mkv", ".fits", ".fit", ".fts", ".fz"}
)
#: The one document a bridged site sends beside its pictures: the allsky night summary, the figures
#: of its summary card (``/allsky/nights/{night}/summary?site=``). It is never served as a file.
UPLOADED_SUMMARY = re.compile(r"^allsky/\d{4}-\d{2}-\d{2}/products/summary\.json$")
FILES_PREFIX = "/files/"
#: Night products the allsky service leaves in ``<data_dir>/allsky/<night>/products/`` (older
#: versions: in the night folder itself), by file name start ("star-trails" counts as "startrails").
PRODUCT_KINDS = ("keogram", "startrails", "timelapse", "panorama", "summary")
PRODUCTS_FOLDER = "products"
THUMBS_FOLDER = "thumbs"


class AllskyImage(BaseModel):
    frame_id: str
    time: datetime
    night: str
    exposure_s: float
    gain: float | None
    stars: int | None
    sqm: float | None
    sun_altitude: float | None
    moon_altitude: float | None
    moon_phase: float | None
    url: str
    fits_url: str | None
    width: int | None
    height: int | None
    file: str | None = None  # where this service serves the picture (null: a bridged site's, not arrived yet)


class NightProduct(BaseModel):
    kind: str
    name: str
    url: str
    thumbnail: str | None = None


class AllskyStreakItem(BaseModel):
    """A meteor or satellite track of ``allsky/streaks``, with the URL its crop is served at."""

    frame_id: str
    time: datetime
    night: str
    kind: str
    start: tuple[float, float]
    end: tuple[float, float]
    start_altaz: tuple[float, float] | None = None
    end_altaz: tuple[float, float] | None = None
    length_px: float
    length_deg: float | None = None
    snr: float
    exposure_s: float | None = None
    crop_url: str | None = None  # as the allsky service published it (file:// under the data directory)
    crop: str | None = None  # where this service serves the crop; None when it is not in the data directory


class Night(BaseModel):
    night: str
    frames: int
    first: datetime
    last: datetime


def relative_parts(relative: str) -> tuple[str, ...] | None:
    """The parts of a relative path that stays inside its folder (no ``..``, no hidden parts); else None."""
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    if not parts or any(p in ("..", "") or p.startswith(".") or "\x00" in p for p in parts) or relative.startswith("/"):
        return None
    return parts


def resolve_data_file(data_dir: Path, relative: str) -> Path:
    """The file ``relative`` names inside ``data_dir``; 404 for anything else."""
    parts = relative_parts(relative)
    if parts is None:
        raise HTTPException(404, "no such file in the data directory")
    root = data_dir.resolve()
    path = root.joinpath(*parts)
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise HTTPException(404, "no such file in the data directory") from None
    if not real.is_relative_to(root) or not real.is_file():
        raise HTTPException(404, "no such file in the data directory")
    if real.suffix.lower() not in SERVED_SUFFIXES:
        raise HTTPException(404, f"files of type {real.suffix or '(none)'} are not served")
    return real


def _image(record: AllskyFrameRecord, context: WebContext) -> AllskyImage:
    image = AllskyImage.model_validate(record, from_attributes=True)
    local = record.site == context.config.site_id()
    image.file = allsky_picture_url(
        context.data_dir, record.site, local=local, frame_id=image.frame_id, night=image.night, url=image.url
    )
    return image


@router.get("/files/{path:path}", tags=["allsky"], summary="A media file from the data directory")
def data_file(path: str, context: WebContext = Depends(get_context)) -> FileResponse:
    return FileResponse(resolve_data_file(context.data_dir, path))


@router.get("/allsky/nights", tags=["allsky"], response_model=list[Night], summary="Nights with allsky frames")
def allsky_nights(
    limit: int = Query(60, ge=1, le=1000),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> list[Night]:
    f = AllskyFrameRecord
    with context.sessions() as db:
        rows = db.execute(
            select(f.night, func.count(), func.min(f.time), func.max(f.time))
            .where(*of_site(f.site, site))
            .group_by(f.night)
            .order_by(f.night.desc())
            .limit(limit)
        ).all()
    return [Night(night=n, frames=c, first=a, last=b) for n, c, a, b in rows]


@router.get("/allsky/images", tags=["allsky"], response_model=Page[AllskyImage], summary="Allsky frames, newest first")
def allsky_images(
    night: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="observing night, YYYY-MM-DD"),
    paging: Paging = Depends(),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Page[AllskyImage]:
    f = AllskyFrameRecord
    where = ([f.night == night] if night else []) + of_site(f.site, site)
    with context.sessions() as db:
        total = db.scalar(select(func.count()).select_from(f).where(*where)) or 0
        rows = db.scalars(select(f).where(*where).order_by(f.time.desc()).limit(paging.limit).offset(paging.offset))
        items = [_image(r, context) for r in rows]
    return Page(items=items, total=total, limit=paging.limit, offset=paging.offset)


@router.get("/allsky/images/latest", tags=["allsky"], response_model=AllskyImage, summary="The newest allsky frame")
def allsky_latest(site: str | None = Depends(site_filter), context: WebContext = Depends(get_context)) -> AllskyImage:
    f = AllskyFrameRecord
    with context.sessions() as db:
        record = db.scalar(select(f).where(*of_site(f.site, site)).order_by(f.time.desc()).limit(1))
        if record is None:
            raise HTTPException(404, "no allsky frame has been recorded yet")
        return _image(record, context)


@router.get("/allsky/images/{frame_id}", tags=["allsky"], response_model=AllskyImage, summary="One allsky frame")
def allsky_image(
    frame_id: str, site: str | None = Depends(site_filter), context: WebContext = Depends(get_context)
) -> AllskyImage:
    f = AllskyFrameRecord
    with context.sessions() as db:
        record = db.scalar(select(f).where(f.frame_id == frame_id, *of_site(f.site, site)).limit(1))
        if record is None:
            raise HTTPException(404, f"no allsky frame {frame_id!r}")
        return _image(record, context)


@router.get("/allsky/images/{frame_id}/file", tags=["allsky"], summary="The image file of one allsky frame")
def allsky_image_file(
    frame_id: str, site: str | None = Depends(site_filter), context: WebContext = Depends(get_context)
) -> Response:
    image = allsky_image(frame_id, site, context)
    url = urlparse(image.url)
    if site is not None and site != context.config.site_id():
        # A bridged site's picture, where its uploader sent it (obsy.upload); never a file of this site.
        relative = bridged_frame_path(site, image.night, url.path)
        if relative is None or not (context.data_dir / relative).is_file():
            raise HTTPException(404, f"the picture of {frame_id} has not arrived from site {site} (yet)")
        return FileResponse(resolve_data_file(context.data_dir, relative))
    if url.scheme in ("http", "https"):
        return RedirectResponse(image.url, status_code=307)
    if url.scheme == "file" and url.netloc in ("", "localhost"):
        # What the allsky service publishes: its file under the data_dir this service shares.
        relative = _under_data_dir(context.data_dir, Path(unquote(url.path)))
        if relative is None:
            raise HTTPException(404, f"the frame's file {url.path!r} is not in the data directory")
        return FileResponse(resolve_data_file(context.data_dir, relative))
    if url.scheme or url.netloc:
        raise HTTPException(404, f"the frame's URL {image.url!r} is not a file this service serves")
    relative = url.path.removeprefix(FILES_PREFIX) if url.path.startswith(FILES_PREFIX) else url.path
    return FileResponse(resolve_data_file(context.data_dir, relative))


def _under_data_dir(data_dir: Path, path: Path) -> str | None:
    """``path`` relative to the data directory, or None when it lies elsewhere (checked again when served)."""
    root = data_dir.resolve()
    return path.relative_to(root).as_posix() if path.is_absolute() and path.is_relative_to(root) else None


def _night_dir(context: WebContext, site: str | None, night: str) -> tuple[Path, bool]:
    """A night's allsky folder here: this site's (``<data_dir>/allsky/<night>``, True), or where a bridged
    site's uploader sends its files (``<data_dir>/sites/<site>/allsky/<night>``, False)."""
    if site is None or site == context.config.site_id():
        return context.data_dir / "allsky" / night, True
    return context.data_dir / SITES_FOLDER / site / "allsky" / night, False


@router.get(
    "/allsky/nights/{night}/products",
    tags=["allsky"],
    response_model=list[NightProduct],
    summary="Keograms, star trails, timelapses, panoramas and the summary card of one night",
)
def allsky_products(
    night: str = FastApiPath(..., pattern=r"^\d{4}-\d{2}-\d{2}$"),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> list[NightProduct]:
    """Media files in ``<data_dir>/allsky/<night>/products/`` (and the night folder) named after a product kind,
    each with its thumbnail (``products/thumbs/<name>.jpg``) when there is one. With ``site=``, a bridged
    site's products that its uploader has sent here (none until then), served by ``…/products/{name}?site=``."""
    night_dir, local = _night_dir(context, site, night)
    products = []
    for folder in (night_dir / PRODUCTS_FOLDER, night_dir):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            plain = path.name.lower().replace("-", "")
            kind = next((k for k in PRODUCT_KINDS if plain.startswith(k)), None)
            if kind and path.is_file() and path.suffix.lower() in SERVED_SUFFIXES:
                thumb = folder / THUMBS_FOLDER / f"{path.stem}.jpg"
                if local:
                    url, thumbnail = _file_url(context.data_dir, path), _file_url(context.data_dir, thumb)
                else:
                    url, thumbnail = (
                        _product_url(night_dir, path, night, site),
                        _product_url(night_dir, thumb, night, site),
                    )
                products.append(
                    NightProduct(kind=kind, name=path.name, url=url, thumbnail=thumbnail if thumb.is_file() else None)
                )
    return products


def _product_url(night_dir: Path, path: Path, night: str, site: str | None) -> str:
    relative = quote(path.relative_to(night_dir).as_posix())
    return f"/api/v1/allsky/nights/{night}/products/{relative}?site={quote(site or '')}"


@router.get(
    "/allsky/nights/{night}/products/{name:path}",
    tags=["allsky"],
    summary="One night product file (a bridged site's, as its uploader sent it; this site's too)",
)
def allsky_product_file(
    name: str,
    night: str = FastApiPath(..., pattern=r"^\d{4}-\d{2}-\d{2}$"),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> FileResponse:
    """``name`` under the night's folder (``products/keogram.jpg``, ``products/thumbs/keogram.jpg``); 404 for
    anything else, and for a bridged site's product that has not arrived."""
    night_dir, _local = _night_dir(context, site, night)
    return FileResponse(resolve_data_file(night_dir, name))


def _file_url(data_dir: Path, path: Path) -> str:
    return f"/api/v1/files/{path.relative_to(data_dir).as_posix()}"


@router.get(
    "/allsky/nights/{night}/streaks",
    tags=["allsky"],
    response_model=list[AllskyStreakItem],
    summary="The meteors and satellites of one night, in time order, with their crops",
)
def allsky_streaks(
    night: str = FastApiPath(..., pattern=r"^\d{4}-\d{2}-\d{2}$"),
    limit: int = Query(500, ge=1, le=5000),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> list[AllskyStreakItem]:
    s = AllskyStreakRecord
    with context.sessions() as db:
        query = select(s).where(s.night == night, *of_site(s.site, site))
        records = db.scalars(query.order_by(s.time, s.id).limit(limit)).all()
    local = context.config.site_id()
    return [_streak(record, context.data_dir, record.site == local) for record in records]


def _streak(record: AllskyStreakRecord, data_dir: Path, local: bool) -> AllskyStreakItem:
    """The streak with ``crop``: only this site's crops are here (a bridged site's path names its own disk)."""
    item = AllskyStreakItem.model_validate(
        {**record.data, "frame_id": record.frame_id, "time": record.time, "night": record.night}
    )
    url = urlparse(item.crop_url or "")
    if local and url.scheme == "file" and url.netloc in ("", "localhost"):
        relative = _under_data_dir(data_dir, Path(unquote(url.path)))
        item.crop = f"/api/v1/files/{quote(relative)}" if relative is not None else None
    return item


@router.get("/allsky/nights/{night}/summary", tags=["allsky"], summary="The summary of one night (allsky products)")
def allsky_night_summary(
    night: str = FastApiPath(..., pattern=r"^\d{4}-\d{2}-\d{2}$"),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> dict[str, Any]:
    """``products/summary.json`` as the allsky service wrote it: frames, stars, SQM, clear fraction, sun, moon
    (with ``site=``, a bridged site's, where it has arrived here)."""
    night_dir, _local = _night_dir(context, site, night)
    path = night_dir / PRODUCTS_FOLDER / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HTTPException(404, f"no summary for the night {night} (yet)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(500, f"the summary of {night} cannot be read: {exc}") from None
    if not isinstance(summary, dict):
        raise HTTPException(500, f"the summary of {night} is not a JSON object")
    return summary
