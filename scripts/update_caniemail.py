"""Refresh the HTML check's data (src/mailroom/web/data/caniemail.json) from caniemail.com's
source, https://github.com/hteumeuleu/caniemail (MIT licence, Rémi Parmentier).

    python3 scripts/update_caniemail.py                 # clones the repository (needs git)
    python3 scripts/update_caniemail.py --source DIR    # a checkout you already have

Each feature of caniemail is a Markdown file under ``_features/`` whose front matter (YAML, in
a loose flow style) holds its title, description, category, tags and its support by client
family, platform and version: the same fields caniemail.com's ``/api/data.json`` serves, which
Mailpit's HTML check reads too. The script keeps only what the check needs, records the commit
it read and copies the licence beside the data. Needs PyYAML (``pip install pyyaml``); mailroom
itself only reads the JSON it writes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPOSITORY = "https://github.com/hteumeuleu/caniemail"
SITE = "https://www.caniemail.com"
OUT = Path(__file__).resolve().parents[1] / "src" / "mailroom" / "web" / "data"
_FRONT_MATTER = re.compile(r"---\s*\n(.*?)\n---\s*(?:\n|$)", re.S)
KEPT = ("slug", "title", "description", "url", "category", "tags", "keywords", "stats")


def front_matter(path: Path) -> dict[str, Any]:
    import yaml  # only this script needs it

    match = _FRONT_MATTER.match(path.read_text("utf-8"))
    if match is None:
        raise ValueError(f"{path}: no front matter")
    # Jekyll's YAML reader takes tabs where PyYAML takes none; they are only indentation here.
    data = yaml.safe_load(match[1].replace("\t", "    "))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: front matter is not a mapping")
    return data


def feature(path: Path) -> dict[str, Any]:
    data = front_matter(path)
    slug = path.stem
    stats = {
        family: {
            platform: {str(version): str(support) for version, support in versions.items()}
            for platform, versions in platforms.items()
        }
        for family, platforms in (data.get("stats") or {}).items()
    }
    return {
        "slug": slug,
        "title": str(data.get("title") or slug),
        "description": str(data.get("description") or ""),
        "url": f"{SITE}/features/{slug}/",
        "category": str(data.get("category") or ""),
        "tags": [str(t) for t in data.get("tags") or []],
        "keywords": str(data.get("keywords") or ""),
        "stats": stats,
        "notes_by_num": {str(k): str(v) for k, v in (data.get("notes_by_num") or {}).items()},
    }


def build(source: Path) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    names = front_matter_yaml(source / "_data" / "nicenames.yml")
    features = [
        feature(path)
        for path in sorted((source / "_features").glob("*.md"))
        if not path.name.startswith("_")
    ]
    return {
        "source": REPOSITORY,
        "commit": commit or "unknown",
        "built": datetime.date.today().isoformat(),
        "licence": "MIT, (c) Rémi Parmentier: see caniemail-LICENSE beside this file",
        "nicenames": {"family": names["family"], "platform": names["platform"]},
        "data": features,
    }


def front_matter_yaml(path: Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="a caniemail checkout (default: clone it)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"(default {OUT})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        source = args.source
        if source is None:
            source = Path(scratch) / "caniemail"
            subprocess.run(
                ["git", "clone", "--depth", "1", "--quiet", REPOSITORY, str(source)], check=True
            )
        data = build(source)
        args.out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        (args.out / "caniemail.json").write_text(text + "\n", "utf-8")
        shutil.copyfile(source / "LICENSE", args.out / "caniemail-LICENSE")
    print(
        f"{len(data['data'])} features from {REPOSITORY} at {data['commit'][:12]} "
        f"-> {args.out / 'caniemail.json'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
