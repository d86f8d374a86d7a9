"""The generated YAML files: PyYAML's safe dumper, block style in the order the renderers build, short lists of
scalars on one line, and the named anchors and merge keys that docker-compose.yml uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from reliefhub.deploy.common import GENERATED

MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Anchor:
    """A mapping value to emit with an anchor (`key: &name`)."""

    name: str
    value: dict[str, Any]


@dataclass(frozen=True)
class Alias:
    """A reference to an anchor (`*name`); under the key `<<` it is a merge key."""

    name: str


class _Dumper(yaml.SafeDumper):
    """Anchors only where the renderers ask for them (never PyYAML's own `&id001` for a shared object)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.anchored: dict[str, yaml.Node] = {}
        self.anchor_names: dict[yaml.Node, str] = {}

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def generate_anchor(self, node: yaml.Node) -> str:
        return self.anchor_names[node]


def _anchor(dumper: _Dumper, anchor: Anchor) -> yaml.Node:
    node = dumper.represent_dict(anchor.value)
    dumper.anchored[anchor.name] = node
    dumper.anchor_names[node] = anchor.name
    return node


def _alias(dumper: _Dumper, alias: Alias) -> yaml.Node:
    return dumper.anchored[alias.name]  # the same node again: PyYAML writes `*name`


def _mapping(dumper: _Dumper, data: dict[Any, Any]) -> yaml.Node:
    node = dumper.represent_dict(data)
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "<<":
            key.tag = MERGE_TAG  # a plain `<<`, which YAML reads as a merge key, not the string '<<'
    return node


def _sequence(dumper: _Dumper, data: list[Any]) -> yaml.Node:
    one_line = all(item is None or isinstance(item, str | int | bool) for item in data) and len(str(data)) <= 80
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=one_line)


_Dumper.add_representer(Anchor, _anchor)
_Dumper.add_representer(Alias, _alias)
_Dumper.add_representer(dict, _mapping)
_Dumper.add_representer(list, _sequence)


def to_yaml(*documents: object, comment: str = GENERATED) -> str:
    """Documents as one YAML stream (`---` between them), below `comment` as `#` lines."""
    head = "".join(f"# {line}\n" if line else "#\n" for line in comment.splitlines())
    body = yaml.dump_all(
        documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10_000
    )
    return head + body
