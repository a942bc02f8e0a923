"""Reusable Streamlit widgets: the image grid, a page number input, and notices for link parameters a widget
ignores."""
from __future__ import annotations

import base64
import io
import re
from typing import Callable, Sequence

import streamlit as st

from coreclean import Analysis
from coreclean.data.decode import tile
from coreclean.data.images import ImageUnavailable, image_for

TILE_PX = 180
PNG_LIMIT = 24_000  # bytes: a tile whose PNG is larger (a photo) is sent as JPEG instead


def tile_image(analysis: Analysis, index: int, split: str = "train", px: int = TILE_PX) -> str:
    """Sample ``index``'s ``px`` x ``px`` tile as a ``data:`` URI, sent inside the page itself: ``st.image`` of
    pixels would store each tile on the server for the browser to fetch one by one afterwards, which made a
    12-tile grid appear 0.15-0.2 s after the page's run had finished (bench/map_timing.py). Small and flat images
    stay lossless PNG; photos become JPEG. Encoded once per server (cached). Raises :class:`ImageUnavailable`."""
    return _tile_uri(str(analysis.directory), int(index), split, int(px), analysis)


@st.cache_data(max_entries=4096, show_spinner=False)
def _tile_uri(directory: str, index: int, split: str, px: int, _analysis: Analysis) -> str:
    picture = tile(image_for(_analysis, index, split), px)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    kind = "png"
    if buffer.tell() > PNG_LIMIT:
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=90)
        kind = "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text) -> str:
    """``text`` (a class name, a file name: anything a user named) shown as itself where Streamlit reads Markdown
    (titles, ``st.write``, captions, image captions, messages): every character Markdown or Streamlit's directives
    (``:red[...]``, ``$...$``) would act on is backslash-escaped, so ``[click](http://…)`` is no link and ``**x**``
    not bold. Widgets' options and table cells are plain text already and take names as they are."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def notice_invalid(key: str, valid) -> None:
    """Say so when a deep link carried a value the widget will ignore (Streamlit drops it silently)."""
    raw = st.query_params.get(key)
    if raw is not None and raw != "" and raw not in valid:
        st.warning(f"Link parameter `{key}={raw}` is not valid here; showing the default instead.")


def parse_link_int(raw: str | None) -> int | None:
    """The integer a link parameter spells in ASCII digits (``"12"``), else ``None``: the one parser of integer
    link parameters, so ``²``, ``①`` or ``٣`` (which ``str.isdigit`` accepts and ``int`` may not) never reach
    ``int``."""
    if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return None
    return int(raw)


def link_int(key: str, last: int, *, default: str) -> int | None:
    """``?key=`` as an integer in 0..``last`` (:func:`parse_link_int`); when the link names anything else, a notice
    saying ``default`` is shown instead, and ``None``. ``None`` too when the link has no ``key``."""
    raw = st.query_params.get(key)
    if raw is None:
        return None
    value = parse_link_int(raw)
    if value is None or value > last:
        st.warning(f"Link parameter `{key}={raw[:40]}` is outside 0..{last}; {default}.")
        return None
    return value


def page_number(container, label: str, pages: int, key: str, **kwargs) -> int:
    """A page number input (1..``pages``) in ``container``, kept in the URL as ``?key=``; a page past the end (the
    list shrank, or the link named a longer one) becomes the last."""
    if st.session_state.get(key, 1) > pages:
        st.session_state[key] = pages
    return int(container.number_input(label, 1, pages, 1, key=key, bind="query-params", disabled=pages == 1,
                                      **kwargs))


# URL params a page link must carry itself: the sidebar's bound widgets (source, path, backend, reviewer) re-add
# theirs on every page, and passing them too would repeat them in the URL with each click.
LINK_PARAMS = ("round",)


def details_link(index: int, split: str = "train") -> None:
    """A small link to the Sample page of ``index`` (same dataset, round and reviewer as this page)."""
    params = {k: st.query_params[k] for k in LINK_PARAMS if st.query_params.get(k)}
    params.update(i=str(int(index)), **({"split": split} if split != "train" else {}))
    st.page_link("pages/sample.py", label="details", icon=":material/info:", query_params=params)


def image_grid(analysis: Analysis, indices: Sequence[int], *, split: str = "train", columns: int = 3,
               caption: Callable[[int], str] | None = None, footer: Callable[[int], None] | None = None,
               details: bool = True) -> None:
    """Render only the given samples as square tiles; unreadable ones show a placeholder with the reason.

    Each tile links to its Sample page (``details``); ``footer(index)`` may render widgets under it (the review
    controls)."""
    columns = max(1, int(columns))
    indices = [int(i) for i in indices]
    for start in range(0, len(indices), columns):
        cells = st.columns(columns)
        for cell, index in zip(cells, indices[start:start + columns]):
            with cell:
                text = plain(caption(index)) if caption else f"#{index}"  # captions hold class names
                try:
                    st.image(tile_image(analysis, index, split), caption=text, width=TILE_PX)
                except ImageUnavailable as err:
                    st.info(f"{text}\n\nimage unavailable: {err}")
                if details:
                    details_link(index, split)
                if footer:
                    footer(index)
