"""The config's layers: ``defaults <- preset <- row YAML (with its _BASE_ chain) <- --set``, merged with the layer
that set each key remembered (errors name it), the keys of earlier versions refused with their new spelling, and
the ``{type, **settings}`` mapping of ``rpn.assign`` merged key by key. Used by :mod:`rfcn_face.config`."""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from .config_schema import BASE_KEY, ROW_KEYS, Config, ConfigError

__all__ = ["Layer", "MOVED_KEYS", "MAPPING_KEYS", "apply_layers", "file_layers", "override_layer", "parse_override",
           "find_preset", "preset_dirs", "is_number"]

@dataclass
class Layer:
    source: str          # how errors name it: a file path, "preset NAME (path)", "--set k=v"
    data: dict
    identity: bool       # may set name / description / paper


_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")   # 1e-3: YAML 1.1 reads it as a string


def _field_default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_value(key: str, f: dataclasses.Field, value, source: str):
    """Type checking of one value against the dataclass field's default type (numbers must be finite)."""
    default = _field_default(f)
    where = f"{source}: {key}"
    if isinstance(value, str) and _FLOAT_TEXT.match(value) and (default is None or type(default) is float):
        value = float(value)
    if default is None or type(default) is float:
        if value is None and default is None:
            return None
        if not is_number(value):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        return float(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return value
    return value


# keys of earlier versions: an error that gives the new spelling (they are not read any more)
MOVED_KEYS = {
    "train.hard_face_compensation": "rpn: {assign: {type: hc, top_n: N}} (HC(N) is an assignment strategy; "
                                    "0 / off = leave rpn.assign at {type: max_iou})",
    "rpn.hambox_k": "rpn: {assign: {type: hambox, k: K}}",
    "rpn.hambox_t": "rpn: {assign: {type: hambox, t: T}}",
    "rpn.clean_alpha": "rpn: {assign: {type: cleanliness, alpha: A}}",
    "rpn.clean_gamma": "rpn: {assign: {type: cleanliness, gamma: G}}",
    "rpn.clean_top_n": "rpn: {assign: {type: cleanliness, top_n: N}}",
    "rpn.clean_clamp": "rpn: {assign: {type: cleanliness, clamp: C}}",
}
MAPPING_KEYS = ("rpn.assign",)      # {type: NAME, **settings}: merged key by key; a new type starts afresh


def _moved(path: str, source: str) -> ConfigError:
    return ConfigError(f"{source}: config key '{path}' was replaced: write {MOVED_KEYS[path]}")


def _merge_mapping(current: dict, value, path: str, source: str) -> dict:
    """A ``{type: NAME, **settings}`` layer over ``current``: the same type (or none given) updates the settings, a
    different type replaces them (the settings belong to the strategy)."""
    if isinstance(value, str):
        raise ConfigError(f"{source}: {path}: {value!r} is the old spelling; a strategy and its settings are one "
                          f"mapping now: write {path.split('.')[0]}: {{{path.split('.')[-1]}: {{type: {value}}}}}")
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {path} must be a mapping {{type: NAME, setting: value, ...}}, got {value!r}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{source}: {path} keys must be setting names, got {bad[0]!r}")
    if "type" in value and not isinstance(value["type"], str):
        raise ConfigError(f"{source}: {path}.type must be a strategy name, got {value['type']!r}")
    base = {} if value.get("type", current.get("type")) != current.get("type") else dict(current)
    base.update(value)
    return base


def _merge(obj, data, source: str, origins: dict, section: str = ""):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {section or 'the top level'} must be a mapping, got {data!r}")
    known = {f.name: f for f in fields(obj)}
    for key, value in data.items():
        path = f"{section}.{key}" if section else str(key)
        if path in MOVED_KEYS:
            raise _moved(path, source)
        if key not in known:
            raise ConfigError(f"{source}: unknown config key '{path}' (known: {', '.join(sorted(known))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, source, origins, path)
        elif path in MAPPING_KEYS:
            setattr(obj, key, _merge_mapping(current, value, path, source))
            origins.pop(path, None)
            origins[path] = source
        elif path == "imports":
            new = _check_value(path, known[key], value, source)
            if not all(isinstance(m, str) and m.strip() for m in new):
                raise ConfigError(f"{source}: imports must be a list of module names, got {value!r}")
            setattr(obj, key, current + [m for m in new if m not in current])
            origins.pop(path, None)
            origins[path] = source
        else:
            setattr(obj, key, _check_value(path, known[key], value, source))
            origins.pop(path, None)          # insertion order = order of the layers that last set each key
            origins[path] = source


def apply_layers(layers, origins: dict) -> Config:
    cfg = Config()
    for layer in layers:
        data = layer.data or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{layer.source}: a config must be a mapping of sections, got {data!r}")
        if not layer.identity:   # name / description / paper of a base or preset: type-checked, not used
            _merge(Config(), {k: v for k, v in data.items() if k in ROW_KEYS}, layer.source, {})
            data = {k: v for k, v in data.items() if k not in ROW_KEYS}
        _merge(cfg, data, layer.source, origins)
    return cfg


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text (UTF-8) YAML file: byte {e.start} is 0x{e.object[e.start]:02x}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    return data


def file_layers(path: Path, label: str, identity: bool, chain=()) -> list:
    """The layers of one YAML: its ``_BASE_`` chain (base first, recursively), then the file itself."""
    key = Path(os.path.abspath(path)).resolve()
    if key in chain:
        names = " -> ".join(str(p) for p in chain + (key,))
        raise ConfigError(f"{label}: _BASE_ cycle: {names}")
    if path.is_dir():
        raise ConfigError(f"{label}: {path} is a folder, not a YAML config file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    data = dict(_read_yaml(path))
    layers = []
    if BASE_KEY in data:
        base = data.pop(BASE_KEY)
        if not isinstance(base, str) or not base.strip():
            raise ConfigError(f"{label}: {BASE_KEY} must be a relative path to a YAML file, got {base!r}")
        base_path = Path(os.path.normpath(path.parent / base))
        if not base_path.is_file():
            raise ConfigError(f"{label}: {BASE_KEY} file not found: {base_path} ({base!r} relative to {path.parent})")
        layers += file_layers(base_path, str(base_path), False, chain + (key,))
    layers.append(Layer(label, data, identity))
    return layers


# ------------------------------------------------------------------------------------ presets
_PRESET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def preset_dirs() -> list:
    """Where a preset NAME is looked for, in order: ``experiments/presets`` of the repository this package
    sits in (it is installed editable from the repo), then of the current directory."""
    here = Path(__file__).resolve().parent.parent / "experiments" / "presets"
    cwd = Path.cwd() / "experiments" / "presets"
    return [here] if here.resolve() == cwd.resolve() else [here, cwd]


def find_preset(preset) -> tuple:
    """``(path, label)`` of a preset given as a NAME (``experiments/presets/NAME.yaml``) or a PATH."""
    text = str(preset)
    looks_like_path = os.sep in text or "/" in text or text.endswith((".yaml", ".yml"))
    if looks_like_path or not _PRESET_NAME.match(text):
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"preset file not found: {path}")
        return path, f"preset {path}"
    dirs = preset_dirs()
    for d in dirs:
        p = d / f"{text}.yaml"
        if p.is_file():
            return p, f"preset {text} ({p})"
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(f"unknown preset {text!r}: no {text}.yaml in " + " or ".join(str(d) for d in dirs)
                      + (f" (available: {', '.join(known)})" if known else "") + "; or give a path to a YAML")


# ------------------------------------------------------------------------------------ --set overrides
def parse_override(text: str) -> tuple:
    """``"train.lr=0.01"`` -> ``("train.lr", 0.01)``. The value is a YAML scalar or flow list
    (``[[600,1000]]``, ``true``, ``1e-3``); for a string knob the text is taken as written."""
    label = f"--set {text}"
    if "=" not in str(text):
        raise ConfigError(f"{label}: expected KEY.SUB=VALUE (e.g. --set train.lr=0.01)")
    key, raw = str(text).split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"{label}: expected KEY.SUB=VALUE (e.g. --set train.lr=0.01), got key {key!r}")
    if key in MOVED_KEYS:
        raise _moved(key, label)
    obj = Config()
    for i, p in enumerate(parts):
        if ".".join(parts[:i]) in MAPPING_KEYS:        # rpn.assign.<setting>: checked against the strategy later
            if i != len(parts) - 1:
                raise ConfigError(f"{label}: unknown config key '{key}' ({'.'.join(parts[:i + 1])} has no sub-keys)")
            obj = "" if p == "type" else None
            break
        if not dataclasses.is_dataclass(obj):
            raise ConfigError(f"{label}: unknown config key '{key}' ({'.'.join(parts[:i])} has no sub-keys)")
        known = sorted(f.name for f in fields(obj))
        if p not in known:
            raise ConfigError(f"{label}: unknown config key '{key}' (known in {'.'.join(parts[:i]) or 'the top level'}"
                              f": {', '.join(known)})")
        obj = getattr(obj, p)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"{label}: value is not valid YAML: {' '.join(str(e).split())}") from None
    if isinstance(obj, str) and not isinstance(value, str):
        value = raw                                  # a string knob takes the text as written
    elif isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
        value = float(value)
    return key, value


def override_layer(text: str) -> Layer:
    key, value = parse_override(text)
    data: dict = {}
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return Layer(f"--set {text}", data, True)
