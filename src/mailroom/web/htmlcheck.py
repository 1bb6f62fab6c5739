"""The HTML check: which HTML and CSS features a message's HTML uses, and how well the mail
clients support each, from caniemail.com's data (``data/caniemail.json``, MIT licence, built
by ``scripts/update_caniemail.py``). The answer has Mailpit's ``HTMLCheckResponse`` shape, so
Mailpit clients read it unchanged.

What is looked for, in the HTML (read with the standard library's parser) and its CSS (the
``style`` attributes and ``<style>`` blocks, read with tinycss2):

- elements and attributes (``<video>``, ``<form>``, ``srcset``, ``role``...), ``<script>``;
- images by format (the ``src`` file extension, or a ``data:`` URI);
- CSS properties, each under its own caniemail feature or, failing that, under its shorthand's
  (``margin-top`` counts as ``margin``); values (``display:flex``, ``rgb()``, gradients,
  ``calc()``, units such as ``rem`` or ``vw``, ``!important``, custom properties);
- at-rules (``@media`` and its features, ``@font-face``, ``@import``...), selectors (pseudo
  classes and elements, combinators, ``.class``, ``#id``...), comments and nesting in CSS.

A feature counts once per element or declaration that uses it. Features every client supports
are counted in ``Total.Tests`` but not listed among the ``Warnings``.
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections import Counter
from importlib import resources
from typing import Any

import tinycss2
from tinycss2 import ast

from mailroom.web.htmlparse import BoundedHTMLParser

__all__ = ["check_html", "load_data"]

SUPPORT = {"y": "yes", "n": "no", "a": "partial"}  # "u" (unknown) results are left out
_NOTE = re.compile(r"#(\d+)")
_IMAGE_FORMATS = {
    "apng": "image-apng",
    "avif": "image-avif",
    "bmp": "image-bmp",
    "gif": "image-gif",
    "hdr": "image-hdr",
    "heif": "image-heif",
    "heic": "image-heif",
    "ico": "image-ico",
    "jpg": "image-jpg",
    "jpeg": "image-jpg",
    "mp4": "image-mp4",
    "png": "image-png",
    "svg": "image-svg",
    "tif": "image-tiff",
    "tiff": "image-tiff",
    "webp": "image-webp",
}
# Elements whose feature is named otherwise than html-<element>.
_ELEMENT_FEATURES = {
    "embed": "html-object",
    **{f"h{n}": "html-h1-h6" for n in range(1, 7)},
    **{tag: "html-lists" for tag in ("ul", "ol", "dl")},
    "map": "html-image-maps",
    **{
        tag: "html-semantics"
        for tag in [
            "article",
            "aside",
            "details",
            "figcaption",
            "figure",
            "footer",
            "header",
            "main",
            "mark",
            "nav",
            "section",
            "summary",
            "time",
        ]
    },
}
# Attributes with a feature of their own, on any element.
_ATTRIBUTE_FEATURES = {
    "align": "html-align",
    "background": "html-background",
    "cellpadding": "html-cellpadding",
    "cellspacing": "html-cellspacing",
    "dir": "html-dir",
    "height": "html-height",
    "width": "html-width",
    "hidden": "html-hidden",
    "lang": "html-lang",
    "required": "html-required",
    "role": "html-role",
    "srcset": "html-srcset",
    "target": "html-target",
    "valign": "html-valign",
    "loading": "html-loading-attribute",
    "popover": "html-popover",
    "inert": "css-inert-attribute",
    "usemap": "html-image-maps",
    "aria-describedby": "html-aria-describedby",
    "aria-hidden": "html-aria-hidden",
    "aria-label": "html-aria-label",
    "aria-labelledby": "html-aria-labelledby",
    "aria-live": "html-aria-live",
}
# CSS properties whose feature is named otherwise than css-<property> or its shorthand's.
_PROPERTY_FEATURES = {
    "top": "css-left-right-top-bottom",
    "right": "css-left-right-top-bottom",
    "bottom": "css-left-right-top-bottom",
    "left": "css-left-right-top-bottom",
    "margin-block": "css-margin-inline-block",
    "margin-inline": "css-margin-inline-block",
    "padding-block": "css-padding-inline-block",
    "padding-inline": "css-padding-inline-block",
    "border-inline": "css-border-inline-block",
    "border-block": "css-border-inline-block",
    "columns": "css-column-layout-properties",
    "column-gap": "css-column-layout-properties",
    "column-rule": "css-column-layout-properties",
    "column-span": "css-column-layout-properties",
    "column-width": "css-column-layout-properties",
    "column-fill": "css-column-layout-properties",
}
_LOGICAL_EDGE = re.compile(r"^(margin|padding)-(block|inline)-(start|end)$")
_BORDER_LOGICAL = re.compile(r"^border-(block|inline)-(start|end)(-(width|style|color))?$")
_BORDER_LONGHAND = re.compile(r"^border-(block|inline)-(width|style|color)$")
_RADIUS_LOGICAL = re.compile(r"^border-(start|end)-(start|end)-radius$")
_FUNCTION_FEATURES = {
    "rgb": "css-rgb",
    "rgba": "css-rgba",
    "linear-gradient": "css-linear-gradient",
    "radial-gradient": "css-radial-gradient",
    "conic-gradient": "css-conic-gradient",
    "calc": "css-unit-calc",
    "clamp": "css-function-clamp",
    "min": "css-function-min",
    "max": "css-function-max",
    "light-dark": "css-function-light-dark",
    "var": "css-variables",
    **{name: "css-modern-color" for name in ("lab", "lch", "oklab", "oklch", "color", "hwb")},
}
_UNITS = {"ch", "cm", "em", "ex", "in", "mm", "pc", "pt", "px", "rem", "vh", "vmax", "vmin", "vw"}
_MEDIA_FEATURES = {
    "prefers-color-scheme": "css-at-media-prefers-color-scheme",
    "prefers-reduced-motion": "css-at-media-prefers-reduced-motion",
    "orientation": "css-at-media-orientation",
    "hover": "css-at-media-hover",
    "-webkit-device-pixel-ratio": "css-at-media-device-pixel-ratio",
    "-webkit-min-device-pixel-ratio": "css-at-media-device-pixel-ratio",
    "-webkit-max-device-pixel-ratio": "css-at-media-device-pixel-ratio",
    "min-resolution": "css-at-media-device-pixel-ratio",
    "max-resolution": "css-at-media-device-pixel-ratio",
}
_COMBINATORS = {">": "css-selector-child", "+": "css-selector-adjacent-sibling"}
_COMBINATORS["~"] = "css-selector-general-sibling"


@functools.cache
def load_data() -> dict[str, Any]:
    """caniemail's data as shipped: ``{"nicenames", "data": [feature...], "commit", ...}``."""
    text = resources.files("mailroom.web").joinpath("data/caniemail.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    data["by_slug"] = {feature["slug"]: feature for feature in data["data"]}
    return data


# @media and @supports nest; a stranger's style of 2,000 nested "@media x{" ran the rule
# reader into RecursionError (the HTML check answered 500). Rules deeper than this are not
# read (real mail nests two or three). Functions in a value nest too ("calc(calc(…"): their
# arguments are read as deep, no deeper.
_MAX_RULE_DEPTH = 32


class _Document(BoundedHTMLParser):
    """The elements (tag and attributes), the CSS and the comments of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.style_blocks: list[str] = []
        self.comments = 0
        self.doctype = False
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))
        if tag == "style":
            self._in_style = True
            self.style_blocks.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style_blocks[-1] += data

    def handle_comment(self, data: str) -> None:
        self.comments += 1

    def handle_decl(self, decl: str) -> None:
        if decl.lower().startswith("doctype"):
            self.doctype = True


class _Finder:
    def __init__(self, known: dict[str, Any]) -> None:
        self.known = known
        self.found: Counter[str] = Counter()

    def add(self, slug: str, count: int = 1) -> None:
        if slug in self.known or slug == "html-script":
            self.found[slug] += count

    # -- HTML ----------------------------------------------------------------------------------

    def element(self, tag: str, attrs: dict[str, str]) -> None:
        if tag != "script":  # counted below, unless it holds data rather than code
            self.add(_ELEMENT_FEATURES.get(tag, f"html-{tag}"))
        for name in attrs:
            feature = _ATTRIBUTE_FEATURES.get(name)
            if feature is not None and not (feature == "html-image-maps" and tag == "map"):
                self.add(feature)
        kind = attrs.get("type", "").lower()
        if tag == "script" and kind not in ("application/ld+json", "application/json"):
            self.add("html-script")
        elif tag == "a":
            href = attrs.get("href", "").strip().lower()
            if href.startswith("#"):
                self.add("html-anchor-links")
            elif href.startswith("mailto:"):
                self.add("html-mailto-links")
        elif tag == "button" and kind in ("reset", "submit"):
            self.add(f"html-button-{kind}")
        elif tag == "input":
            self.add(f"html-input-{kind or 'text'}")
        elif tag == "meta" and attrs.get("name", "").lower() in (
            "color-scheme",
            "supported-color-schemes",
        ):
            self.add("html-meta-color-scheme")
        elif tag == "html" and ("amp" in attrs or "⚡4email" in attrs):
            self.add("amp")
        elif tag == "img":
            self.image(attrs.get("src", ""))

    def image(self, src: str) -> None:
        src = src.strip()
        if src.lower().startswith("data:image/"):
            self.add("image-base64")
            return
        path = src.split("?", 1)[0].split("#", 1)[0]
        extension = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
        if extension in _IMAGE_FORMATS:
            self.add(_IMAGE_FORMATS[extension])

    # -- CSS -----------------------------------------------------------------------------------

    def declarations(self, nodes: list[Any]) -> None:
        for node in nodes:
            if isinstance(node, ast.Declaration):
                self.declaration(node)
            elif isinstance(node, ast.Comment):
                self.add("css-comments")
            elif isinstance(node, ast.QualifiedRule | ast.AtRule):
                self.add("css-nesting")  # a rule inside a rule

    def declaration(self, node: ast.Declaration) -> None:
        name = node.lower_name
        if name.startswith("--"):
            self.add("css-variables")
        else:
            self.property(name, node.value)
        if node.important:
            self.add("css-important")
        self.values(node.value)

    def property(self, name: str, value: list[Any]) -> None:
        feature = _PROPERTY_FEATURES.get(name)
        for pattern, slug in (
            (_LOGICAL_EDGE, None),
            (_BORDER_LONGHAND, "css-border-inline-block-longhand"),
            (_BORDER_LOGICAL, "css-border-inline-block-individual"),
            (_RADIUS_LOGICAL, "css-border-radius-logical"),
        ):
            match = pattern.match(name)
            if feature is None and match is not None:
                feature = slug or f"css-{match[1]}-{match[2]}-start-end"
        if feature is None:
            # The property's own feature, or its shorthand's: margin-top counts as margin.
            parts = name.split("-")
            while parts and f"css-{'-'.join(parts)}" not in self.known:
                parts.pop()
            feature = f"css-{'-'.join(parts)}" if parts else None
        if feature is not None:
            self.add(feature)
        words = {t.lower_value for t in value if isinstance(t, ast.IdentToken)}
        if name == "display":
            for word, slug in (("flex", "flex"), ("inline-flex", "flex"), ("grid", "grid")):
                if word in words:
                    self.add(f"css-display-{slug}")
            if "none" in words:
                self.add("css-display-none")
        if name in ("font-family", "font") and "system-ui" in words:
            self.add("css-sytem-ui")

    def values(self, tokens: list[Any], depth: int = 0) -> None:
        for token in tokens:
            if isinstance(token, ast.FunctionBlock):
                slug = _FUNCTION_FEATURES.get(token.lower_name)
                if slug is not None:
                    self.add(slug)
                if depth < _MAX_RULE_DEPTH:
                    self.values(token.arguments, depth + 1)
            elif isinstance(token, ast.DimensionToken) and token.lower_unit in _UNITS:
                self.add(f"css-unit-{token.lower_unit}")
            elif isinstance(token, ast.PercentageToken):
                self.add("css-unit-percent")
            elif isinstance(token, ast.IdentToken) and token.lower_value == "initial":
                self.add("css-unit-initial")

    def stylesheet(self, text: str) -> None:
        for node in tinycss2.parse_stylesheet(text, skip_whitespace=True):
            self.rule(node)

    def rule(self, node: Any, depth: int = 0) -> None:
        if isinstance(node, ast.Comment):
            self.add("css-comments")
        elif isinstance(node, ast.QualifiedRule):
            self.selectors(node.prelude)
            self.declarations(tinycss2.parse_blocks_contents(node.content, skip_whitespace=True))
        elif isinstance(node, ast.AtRule):
            self.add(f"css-at-{node.lower_at_keyword}")
            if node.lower_at_keyword == "media":
                self.media(node.prelude)
            if node.content is None:
                return
            if node.lower_at_keyword in ("media", "supports") and depth < _MAX_RULE_DEPTH:
                for inner in tinycss2.parse_rule_list(node.content, skip_whitespace=True):
                    self.rule(inner, depth + 1)
            elif node.lower_at_keyword == "font-face":
                self.declarations(tinycss2.parse_blocks_contents(node.content, True, True))

    def media(self, prelude: list[Any]) -> None:
        for token in prelude:
            if isinstance(token, ast.ParenthesesBlock):
                for inner in token.content:
                    if isinstance(inner, ast.IdentToken) and inner.lower_value in _MEDIA_FEATURES:
                        self.add(_MEDIA_FEATURES[inner.lower_value])
                        break

    def selectors(self, prelude: list[Any]) -> None:
        previous: Any = None
        for index, token in enumerate(prelude):
            if isinstance(token, ast.LiteralToken):
                if token.value == ",":
                    self.add("css-selector-grouping")
                elif token.value in _COMBINATORS:
                    self.add(_COMBINATORS[token.value])
                elif token.value == "*":
                    self.add("css-selector-universal")
                elif token.value == "&":
                    self.add("css-nesting")
                elif token.value == "." and index + 1 < len(prelude):
                    if isinstance(previous, ast.IdentToken) and previous is not None:
                        self.add("css-selector-chaining")
                    self.add("css-selector-class")
                elif token.value == ":" and index + 1 < len(prelude):
                    after = prelude[index + 1]
                    name = getattr(after, "lower_value", getattr(after, "lower_name", ""))
                    elements = isinstance(previous, ast.LiteralToken) and previous.value == ":"
                    if elements or name in ("before", "after", "first-letter", "first-line"):
                        self.add(f"css-pseudo-element-{name}")
                    elif name:
                        self.add(f"css-pseudo-class-{name}")
            elif isinstance(token, ast.HashToken):
                self.add("css-selector-id")
            elif isinstance(token, ast.SquareBracketsBlock):
                self.add("css-selector-attribute")
            elif isinstance(token, ast.WhitespaceToken):
                nxt = prelude[index + 1] if index + 1 < len(prelude) else None
                plain = not (isinstance(nxt, ast.LiteralToken) and nxt.value in ",>+~")
                after_combinator = (
                    isinstance(previous, ast.LiteralToken) and previous.value in ",>+~"
                )
                if plain and not after_combinator and previous is not None:
                    self.add("css-selector-descendant")
            elif isinstance(token, ast.IdentToken) and not (
                isinstance(previous, ast.LiteralToken) and previous.value in (".", ":")
            ):
                self.add("css-selector-type")
            previous = token


def _warning(feature: dict[str, Any], names: dict[str, Any], found: int) -> dict[str, Any]:
    results = []
    for family, platforms in feature["stats"].items():
        for platform, versions in platforms.items():
            for version, support in versions.items():
                kind = SUPPORT.get(support[:1])
                if kind is None:
                    continue
                note = _NOTE.search(support)
                results.append(
                    {
                        "Name": f"{names['family'].get(family, family)} "
                        f"{names['platform'].get(platform, platform)} ({version})",
                        "Family": family,
                        "Platform": platform,
                        "Version": version,
                        "Support": kind,
                        "NoteNumber": note[1] if note and kind == "partial" else "",
                    }
                )
    counts = Counter(r["Support"] for r in results)
    total = len(results) or 1
    return {
        "Slug": feature["slug"],
        "Title": feature["title"],
        "Description": _markdown(feature["description"]),
        "URL": feature["url"],
        "Category": feature["category"],
        "Tags": feature["tags"],
        "Keywords": feature.get("keywords", ""),
        "Results": results,
        "NotesByNumber": {k: _markdown(v) for k, v in feature.get("notes_by_num", {}).items()},
        "Score": {
            "Found": found,
            "Supported": counts["yes"] / total * 100,
            "Partial": counts["partial"] / total * 100,
            "Unsupported": counts["no"] / total * 100,
        },
    }


_SCRIPT_WARNING: dict[str, Any] = {
    "Slug": "html-script",
    "Title": "<script> element",
    "Description": "JavaScript is not run by any email client.",
    "URL": "",
    "Category": "html",
    "Tags": [],
    "Keywords": "javascript",
    "Results": [],
    "NotesByNumber": {},
}


def _markdown(text: str) -> str:
    """caniemail's Markdown as the little HTML Mailpit gives: escaped, `code` and links."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(
        r"\[([^\]]+)\]\((https?://[^)\s]+)\)",
        lambda m: f'<a href="{html.escape(m[2])}" target="_blank" rel="noopener">{m[1]}</a>',
        out,
    )


def platforms(data: dict[str, Any]) -> dict[str, list[str]]:
    """Each platform with the client families tested on it (nice names), as Mailpit gives."""
    found: dict[str, set[str]] = {}
    for feature in data["data"]:
        for family, per_platform in feature["stats"].items():
            for platform in per_platform:
                nice = data["nicenames"]["family"].get(family, family)
                found.setdefault(platform, set()).add(nice)
    return {platform: sorted(families) for platform, families in sorted(found.items())}


def check_html(markup: str) -> dict[str, Any]:
    """Mailpit's ``HTMLCheckResponse`` for ``markup``."""
    data = load_data()
    known = data["by_slug"]
    document = _Document()
    try:
        document.feed(markup)
        document.close()
    except (AssertionError, ValueError):
        pass  # what was read so far is checked
    finder = _Finder(known)
    for tag, attrs in document.elements:
        finder.element(tag, attrs)
        if "style" in attrs:
            finder.declarations(
                tinycss2.parse_blocks_contents(attrs["style"], skip_whitespace=True)
            )
    for block in document.style_blocks:
        finder.stylesheet(block)
    if document.comments:
        finder.add("html-comments", document.comments)
    if document.doctype:
        finder.add("html-doctype")
    has_body = re.search(r"</body\s*>", markup, re.IGNORECASE) is not None
    skipped = {"html", "head", "meta"} if has_body else {"html", "head", "meta", "title"}
    nodes = sum(1 for tag, _ in document.elements if tag not in skipped) or 1
    warnings = []
    for slug, found in finder.found.items():
        if slug == "html-script":
            warning = dict(_SCRIPT_WARNING)
            warning["Score"] = {"Found": found, "Supported": 0, "Partial": 0, "Unsupported": 100}
        else:
            warning = _warning(known[slug], data["nicenames"], found)
        if warning["Score"]["Supported"] < 100:
            warnings.append(warning)

    def weight(w: dict[str, Any]) -> float:
        score = w["Score"]
        return float((score["Partial"] + score["Unsupported"]) * score["Found"] / nodes)

    warnings.sort(key=weight, reverse=True)
    # The worst feature sets the total, weighted by how much of the document uses it.
    partial = max(
        (w["Score"]["Partial"] * w["Score"]["Found"] / nodes for w in warnings), default=0
    )
    unsupported = max(
        (w["Score"]["Unsupported"] * w["Score"]["Found"] / nodes for w in warnings), default=0
    )
    partial, unsupported = min(partial, 100.0), min(unsupported, 100.0 - min(partial, 100.0))
    return {
        "Warnings": warnings,
        "Platforms": platforms(data),
        "Total": {
            "Tests": len(known) + 1,
            "Nodes": nodes,
            "Supported": 100.0 - partial - unsupported,
            "Partial": partial,
            "Unsupported": unsupported,
        },
    }
