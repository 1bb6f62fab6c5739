"""The arrows between mailroom's parts, read from the code's own imports (docs/architecture.md).

Every ``import`` and ``from ... import`` of every file under ``src/mailroom`` counts: at module
level, inside functions (lazy imports), and under ``if TYPE_CHECKING:`` — a type-only import
is still an arrow a reader follows and a cycle a refactoring trips on. Importing a submodule
runs its package's ``__init__`` too, but that is not counted as an arrow to the ``__init__``:
a package that re-exports its submodules would otherwise be a cycle with each of them.

Three rules:

1. No import cycle between files.
2. No arrow up the layers of :data:`LAYERS` (an arrow may point down, or sideways to a part
   of the same layer), and none of the arrows :data:`FORBIDDEN` names.
3. No cycle between parts (sideways arrows may not go both ways).

A file no row of :data:`LAYERS` covers fails the test: a new part is placed on purpose.
The checker is tested on small synthetic packages below, so a rule that cannot fail is caught.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src"

# Each part of mailroom and its layer, bottom (0) to top. A part is a package or a module;
# a file belongs to the longest part name that is it or contains it. ``mailroom`` itself means
# only src/mailroom/__init__.py.
LAYERS: dict[str, tuple[int, str]] = {
    # 0 -- the foundations: import nothing of mailroom's
    "mailroom": (0, "the package: its version"),
    "mailroom.codes": (0, "the reply model and catalogue, explain, classification"),
    "mailroom.settings_types": (0, "plain values settings are made of: Listener, sizes"),
    "mailroom.logsafe": (0, "a peer's text made fit for one log line (escapes)"),
    "mailroom.filemodes": (0, "the data directory private: 0700 directories, 0600 files"),
    "mailroom.sqlite_files": (0, "an SQLite database's files, set aside when damaged"),
    "mailroom.header_section": (0, "where a header section ends, its fields, encoded words"),
    "mailroom.mimeshape": (0, "how many MIME parts a message has and how deep, before parsing"),
    # 1 -- the sans-IO protocol: both sides of SMTP over codes
    "mailroom.protocol": (1, "SMTP as pure state machines: no sockets, no clock"),
    # 2 -- the parts that decide, keep and talk, each over the protocol
    "mailroom.policy": (2, "decisions from values it is given, never the configuration"),
    "mailroom.store": (2, "Maildirs, the index, group commit; the queue's files"),
    "mailroom.queue": (2, "the queue's entries and settings (plain data)"),
    "mailroom.bounces": (
        2,
        "bounces, DSNs, complaints, auto-replies read into per-recipient records: over codes",
    ),
    "mailroom.authentication": (2, "SPF, DKIM, DMARC, ARC, iprev, signing, SRS: decisions, DNS"),
    "mailroom.resolver": (2, "the async DNS resolver policy and delivery ask"),
    "mailroom.tlsa": (2, "TLSA records asked for and read in wire form (beneath the resolver)"),
    "mailroom.tls_publish": (2, "what the local domains publish: MTA-STS policy, TLS records"),
    "mailroom.activity": (
        2,
        "transcripts, live events, counters: written by the server, read by the web",
    ),
    "mailroom.client": (2, "the asyncio SMTP client over protocol's client side"),
    "mailroom.loadgen": (2, "the load generator behind `mailroom bench-client`: a client"),
    "mailroom.submission": (
        2,
        "what a submission server fetches: BURL's message parts from IMAP (RFC 4468)",
    ),
    # 3 -- outbound
    "mailroom.delivery": (3, "the queue runner, routing, DSNs, `mailroom queue`"),
    "mailroom.postgres": (
        3,
        "a fleet's PostgreSQL back end: store, queue leases, directory, counters, NOTIFY",
    ),
    # 4 -- the SMTP server
    "mailroom.server": (4, "listeners, sessions, limits, shutdown: given its parts"),
    # 5 -- the faces that read the configuration or serve people
    "mailroom.web": (5, "the HTTP API and UI: narrow interfaces, never the server"),
    "mailroom.config": (5, "every setting, from flags and TOML"),
    "mailroom.mailconfig": (5, "the mail server sections: builds policy and queue objects"),
    "mailroom.roles": (5, "what a listener's role offers: SessionSettings from a Config"),
    "mailroom.dns_commands": (5, "`mailroom dkim keygen`, `dns-records`: read the configuration"),
    "mailroom.config_warnings": (5, "what check-config warns of: settings that cannot work"),
    # 6 -- the composition root
    "mailroom.app": (6, "builds every part from a Config, starts and stops them in order"),
    "mailroom.workers": (6, "one worker process of --workers: a Mailroom serving SMTP only"),
    "mailroom.supervisor": (6, "--workers: the ports, the web, the runner; starts the workers"),
    # 7 -- what runs the root: `mailroom serve` and the pytest plugin use it
    "mailroom.cli": (7, "the command line (serve runs the composition root)"),
    "mailroom.__main__": (7, "python -m mailroom"),
    "mailroom.testing": (7, "the pytest plugin: a running mailroom per test"),
}

# Arrows the layers would allow but the design does not (importer part, imported part, why).
FORBIDDEN: list[tuple[str, str, str]] = [
    ("mailroom.web", "mailroom.server", "the web reads narrow interfaces, not the server"),
    ("mailroom.web", "mailroom.config", "the web is given WebSettings, not the configuration"),
    ("mailroom.web", "mailroom.mailconfig", "the web is given WebSettings"),
    ("mailroom.web", "mailroom.roles", "listener roles are the SMTP side's"),
]


# -- reading the imports -----------------------------------------------------------------------


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file, for every .py file of ``package`` under ``root``."""
    found = {}
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _containing(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module ``name`` is, or the innermost module that holds it (a class, a function)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The modules of ``modules`` that ``module`` imports, anywhere in its file."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _containing(alias.name, modules)
                if target is not None:
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                # ``from pkg import sub`` imports the submodule; ``from pkg import name``, pkg.
                target = _containing(f"{base}.{alias.name}", modules)
                if target is not None:
                    found.add(target)
    found.discard(module)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    modules = modules_of(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


# -- the rules ---------------------------------------------------------------------------------


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def part_of(module: str, layers: Mapping[str, tuple[int, str]]) -> str | None:
    """The row of ``layers`` that covers ``module``: the longest name that is it or holds it
    (the package's own name, ``mailroom``, covers only its ``__init__``)."""
    best = None
    for name in layers:
        top_level_only = "." not in name
        covers = module == name or (not top_level_only and module.startswith(name + "."))
        if covers and (best is None or len(name) > len(best)):
            best = name
    return best


@dataclass(frozen=True)
class Violation:
    importer: str
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported}: {self.why}"


def unplaced(
    graph: Mapping[str, Iterable[str]], layers: Mapping[str, tuple[int, str]]
) -> list[str]:
    return sorted(module for module in graph if part_of(module, layers) is None)


def arrows_up(
    graph: Mapping[str, Iterable[str]],
    layers: Mapping[str, tuple[int, str]],
    forbidden: Iterable[tuple[str, str, str]] = (),
) -> list[Violation]:
    rules = list(forbidden)
    found = []
    for importer, targets in sorted(graph.items()):
        source = part_of(importer, layers)
        for imported in sorted(targets):
            target = part_of(imported, layers)
            if source is None or target is None or source == target:
                continue
            if layers[target][0] > layers[source][0]:
                found.append(
                    Violation(
                        importer,
                        imported,
                        f"{source} (layer {layers[source][0]}) imports {target} "
                        f"(layer {layers[target][0]}), above it",
                    )
                )
            for low, high, why in rules:
                if source == low and target == high:
                    found.append(Violation(importer, imported, why))
    return found


def part_graph(
    graph: Mapping[str, Iterable[str]], layers: Mapping[str, tuple[int, str]]
) -> dict[str, set[str]]:
    parts: dict[str, set[str]] = {}
    for importer, targets in graph.items():
        source = part_of(importer, layers)
        if source is None:
            continue
        arrows = parts.setdefault(source, set())
        for imported in targets:
            target = part_of(imported, layers)
            if target is not None and target != source:
                arrows.add(target)
    return parts


# -- mailroom ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = import_graph(SOURCE, "mailroom")
    assert "mailroom.app" in found and "mailroom.protocol.server" in found  # read the right tree
    return found


def test_every_file_has_a_place(graph: dict[str, set[str]]) -> None:
    assert unplaced(graph, LAYERS) == [], "add the new part to LAYERS (and docs/architecture.md)"


def test_no_import_cycle_between_files(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_no_arrow_up_the_layers(graph: dict[str, set[str]]) -> None:
    assert [str(v) for v in arrows_up(graph, LAYERS, FORBIDDEN)] == []


def test_no_cycle_between_parts(graph: dict[str, set[str]]) -> None:
    assert cycles(part_graph(graph, LAYERS)) == []


def test_nothing_below_imports_the_composition_root(graph: dict[str, set[str]]) -> None:
    importers = sorted(module for module, targets in graph.items() if "mailroom.app" in targets)
    # The supervisor and its workers are the root's own for --workers (layer 6, beside it).
    assert importers == [
        "mailroom.cli",
        "mailroom.supervisor",
        "mailroom.testing",
        "mailroom.workers",
    ]


def test_the_layers_hold_what_the_design_says() -> None:
    """The order of docs/architecture.md (and DESIGN.md): codes <- protocol <- policy, store,
    queue <- delivery <- server <- web <- the root."""
    chain = [
        "mailroom.codes",
        "mailroom.protocol",
        "mailroom.policy",
        "mailroom.delivery",
        "mailroom.server",
        "mailroom.web",
        "mailroom.app",
    ]
    levels = [LAYERS[name][0] for name in chain]
    assert levels == sorted(levels) and len(set(levels)) == len(levels)
    assert (
        LAYERS["mailroom.store"][0] == LAYERS["mailroom.queue"][0] == LAYERS["mailroom.policy"][0]
    )


# -- the checker itself, on synthetic packages -------------------------------------------------


def write_package(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


TINY_LAYERS = {
    "tiny": (0, "the package"),
    "tiny.low": (0, "bottom"),
    "tiny.mid": (1, "middle"),
    "tiny.side": (1, "beside the middle"),
    "tiny.top": (2, "top"),
}


def tiny(tmp_path: Path, **extra: str) -> dict[str, set[str]]:
    files = {
        "tiny/__init__.py": "",
        "tiny/low.py": "X = 1\n",
        "tiny/mid/__init__.py": "from tiny.mid.a import A\n",
        "tiny/mid/a.py": "from tiny.low import X\nA = X\n",
        "tiny/side.py": "from tiny import low\n",
        "tiny/top.py": "import tiny.mid.a\nfrom .side import low\n",
    }
    files.update({name.replace("__", "/") + ".py": text for name, text in extra.items()})
    return import_graph(write_package(tmp_path, files), "tiny")


def test_checker_reads_every_kind_of_import(tmp_path: Path) -> None:
    graph = tiny(
        tmp_path,
        tiny__lazy="def f():\n    from tiny.mid import a\n    return a\n",
        tiny__typed=(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tiny.side import low\n"
        ),
        tiny__mid__b="from . import a\nfrom ..low import X\n",
    )
    assert graph["tiny.top"] == {"tiny.mid.a", "tiny.side"}  # absolute; relative, a name in it
    assert graph["tiny.mid"] == {"tiny.mid.a"}
    assert graph["tiny.side"] == {"tiny.low"}  # ``from package import module``
    assert graph["tiny.lazy"] == {"tiny.mid.a"}  # inside a function
    assert graph["tiny.typed"] == {"tiny.side"}  # under TYPE_CHECKING
    assert graph["tiny.mid.b"] == {"tiny.mid.a", "tiny.low"}  # relative, up two
    assert graph["tiny.low"] == set()


def test_checker_accepts_a_clean_package(tmp_path: Path) -> None:
    graph = tiny(tmp_path)
    assert cycles(graph) == []
    assert arrows_up(graph, TINY_LAYERS) == []
    assert cycles(part_graph(graph, TINY_LAYERS)) == []
    assert unplaced(graph, TINY_LAYERS) == []


def test_checker_finds_a_cycle_between_files(tmp_path: Path) -> None:
    # a lazy import back, as server/session.py once imported server/app.py
    graph = tiny(tmp_path, tiny__mid__c="def f():\n    from tiny.mid import a\n")
    graph_cyclic = tiny(
        tmp_path / "2",
        tiny__mid__a="from tiny.low import X\nA = X\ndef f():\n    from tiny.mid import c\n",
        tiny__mid__c="def f():\n    from tiny.mid import a\n",
    )
    assert cycles(graph) == []
    assert cycles(graph_cyclic) == [["tiny.mid.a", "tiny.mid.c"]]


def test_checker_finds_a_cycle_through_type_checking(tmp_path: Path) -> None:
    graph = tiny(
        tmp_path,
        tiny__low="from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tiny.side import low\n",
    )
    assert cycles(graph) == [["tiny.low", "tiny.side"]]


def test_checker_finds_an_arrow_up(tmp_path: Path) -> None:
    graph = tiny(tmp_path, tiny__low="def f():\n    import tiny.top\n")
    found = arrows_up(graph, TINY_LAYERS)
    assert [(v.importer, v.imported) for v in found] == [("tiny.low", "tiny.top")]
    assert "layer 0" in found[0].why and "layer 2" in found[0].why


def test_checker_finds_a_forbidden_arrow_and_a_cycle_between_parts(tmp_path: Path) -> None:
    # sideways both ways: tiny.mid -> tiny.side (a file of mid) and tiny.side -> tiny.mid
    graph = tiny(
        tmp_path,
        tiny__mid__c="from tiny.side import low\n",
        tiny__side="from tiny import low\nfrom tiny.mid.a import A\n",
    )
    assert cycles(graph) == []  # no cycle between files...
    assert cycles(part_graph(graph, TINY_LAYERS)) == [["tiny.mid", "tiny.side"]]  # ...but parts
    forbidden = [("tiny.side", "tiny.mid", "side may not use mid")]
    assert [str(v) for v in arrows_up(graph, TINY_LAYERS, forbidden)] == [
        "tiny.side -> tiny.mid.a: side may not use mid"
    ]


def test_checker_finds_a_file_without_a_place(tmp_path: Path) -> None:
    graph = tiny(tmp_path, tiny__stray="")
    assert unplaced(graph, TINY_LAYERS) == ["tiny.stray"]
    assert part_of("tiny.mid.a", TINY_LAYERS) == "tiny.mid"
    assert part_of("tiny", TINY_LAYERS) == "tiny"
    assert part_of("tinyx", TINY_LAYERS) is None
