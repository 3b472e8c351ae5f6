"""Pretrained ImageNet weights for the ResNet backbone, from files the user gives (nothing is downloaded).

Three checkpoint styles are recognised (:func:`detect_style`):

* ``mxnet`` — the original MXNet ``resnet_v1_101-0000.params`` the MXNet R-FCN code starts from: Caffe names
  with ``arg:`` / ``aux:`` prefixes (``arg:res5a_branch2b_weight``, ``arg:bn5a_branch2b_gamma``,
  ``aux:bn5a_branch2b_moving_mean``); files without the prefixes are accepted too.
* ``gluon_v1`` — GluonCV / Gluon model zoo ``resnet{18,34,50,101,152}_v1`` saved with ``save_parameters``
  (``features.6.3.body.3.weight``, ``features.0.weight``, ``output.weight``).
* ``gluon_v1b`` — GluonCV ``resnet*_v1b`` (``layer3.4.conv2.weight``, ``layer1.0.downsample.1.gamma``, ``fc.weight``).

Every backbone parameter is looked up, every shape checked. A missing file raises ``FileNotFoundError``
naming it; a shape mismatch or a backbone parameter absent from the file raises :class:`WeightLoadError`
listing them (``allow_missing=True`` turns the latter into a report entry). File entries that the backbone
has no use for (the ImageNet classifier) are listed in the report's ``unused``.

Convolution biases: GluonCV's v1 bottleneck has a bias on its two 1x1 convs, which our Caffe-layout backbone
does not. Because every BatchNorm uses its global statistics, ``BN(conv(x) + b)`` equals ``BN(conv(x))``
with ``running_mean - b``; the loader folds such biases into the following BatchNorm (exact; listed in
``folded``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .resnet import DEPTHS, block_names

__all__ = ["WeightLoadError", "LoadReport", "detect_style", "checkpoint_style", "backbone_slots", "file_key",
           "read_checkpoint", "load_pretrained", "init_detector", "STYLES"]

STYLES = ("mxnet", "gluon_v1", "gluon_v1b")
_BN_FIELDS = ("gamma", "beta", "running_mean", "running_var")
_MXNET_BN = {"gamma": "arg:{}gamma", "beta": "arg:{}beta", "running_mean": "aux:{}moving_mean",
             "running_var": "aux:{}moving_var"}


class WeightLoadError(ValueError):
    """A checkpoint that does not fit the backbone (shape mismatch, missing parameters, unknown format)."""


@dataclass
class LoadReport:
    path: str
    style: str
    loaded: list = field(default_factory=list)     # our parameter names set from the file
    missing: list = field(default_factory=list)    # our parameter names absent from the file (allow_missing)
    unused: list = field(default_factory=list)     # file keys the backbone has no use for
    folded: list = field(default_factory=list)     # conv biases folded into the next BN's running mean
    notes: list = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.path}: {self.style} checkpoint, loaded {len(self.loaded)} backbone parameters"]
        if self.folded:
            lines.append(f"  folded {len(self.folded)} conv biases into BatchNorm running means")
        if self.missing:
            lines.append(f"  NOT loaded (absent from file, left at their initial values): {len(self.missing)}: "
                         + ", ".join(self.missing[:8]) + (" ..." if len(self.missing) > 8 else ""))
        if self.unused:
            lines.append(f"  unused file entries: {len(self.unused)}: " + ", ".join(self.unused[:8])
                         + (" ..." if len(self.unused) > 8 else ""))
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def detect_style(keys) -> str:
    keys = list(keys)
    if any(k.startswith(("arg:", "aux:")) for k in keys) or "conv1_weight" in keys or "bn_conv1_gamma" in keys:
        return "mxnet"
    if any(k.startswith("features.") for k in keys):
        return "gluon_v1"
    if any(k.startswith("layer1.") for k in keys) or "conv1.weight" in keys:
        return "gluon_v1b"
    raise WeightLoadError("unrecognised checkpoint: expected MXNet Caffe-style names (arg:res2a_branch2a_weight), "
                          "GluonCV resnet*_v1 (features.N...) or resnet*_v1b (layerN...) parameters; first keys: "
                          + ", ".join(keys[:5]))


def backbone_slots(depth: int):
    """``(conv_prefix, bn_prefix, gluon_v1_conv, gluon_v1_bn, gluon_v1b_conv, gluon_v1b_bn)`` for every conv +
    BN pair of the backbone, in network order. Our prefixes are the Caffe names (:mod:`symbols.resnet`)."""
    kind, _ = DEPTHS[depth]
    slots = [("conv1_", "bn_conv1_", "features.0.", "features.1.", "conv1.", "bn1.")]
    if kind == "basic":
        body = (("branch2a", "body.0.", "body.1.", "conv1.", "bn1."),
                ("branch2b", "body.3.", "body.4.", "conv2.", "bn2."))
    else:
        body = (("branch2a", "body.0.", "body.1.", "conv1.", "bn1."),
                ("branch2b", "body.3.", "body.4.", "conv2.", "bn2."),
                ("branch2c", "body.6.", "body.7.", "conv3.", "bn3."))
    for i, names in enumerate(block_names(depth)):
        for j, name in enumerate(names):
            g1, g1b = f"features.{4 + i}.{j}.", f"layer{i + 1}.{j}."
            for br, c1, b1, c1b, b1b in body:
                slots.append((f"res{name}_{br}_", f"bn{name}_{br}_", g1 + c1, g1 + b1, g1b + c1b, g1b + b1b))
            if j == 0 and not (kind == "basic" and i == 0):  # projection shortcut (res2 of 18/34: identity)
                slots.append((f"res{name}_branch1_", f"bn{name}_branch1_", g1 + "downsample.0.",
                              g1 + "downsample.1.", g1b + "downsample.0.", g1b + "downsample.1."))
    return slots


def file_key(style: str, our_prefix: str, fld: str, bn: bool, keys=None) -> str:
    """The key of one parameter in a checkpoint of ``style`` (``our_prefix`` already translated for gluon)."""
    if style == "mxnet":
        key = (_MXNET_BN[fld] if bn else "arg:{}" + fld).format(our_prefix)
        if keys is None or key in keys:
            return key
        ours = f"{key[:4]}{our_prefix}{fld}"  # a checkpoint exported by symbols.export (running_mean / _var)
        for alt in (key[4:], ours, ours[4:]):   # ... or saved without arg: / aux:
            if alt in keys:
                return alt
        return key
    return our_prefix + fld


def mxnet_message(e: BaseException, limit: int = 300) -> str:
    """The useful line of an MXNet exception: MXNetError's text is a C++ trace ("Traceback (most recent call
    last): ... MXNetError: Check failed: ..."); this returns the message after the last ``MXNetError:`` (or the
    last non-empty line)."""
    text = str(e).strip()
    if "MXNetError:" in text:
        text = text.rsplit("MXNetError:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("File ", "Traceback"))]
    msg = lines[-1] if lines else type(e).__name__
    return msg[:limit]


def _load_params(path) -> dict:
    """``{name: NDArray}`` of an MXNet ``.params`` file; clear errors for a missing / unreadable file."""
    import mxnet as mx
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {path} (nothing is downloaded: give the path of a "
                                "GluonCV resnet*_v1 / _v1b .params file or MXNet resnet_v1_101-0000.params)")
    try:
        data = mx.nd.load(str(path))
    except Exception as e:  # mxnet raises MXNetError with a C++ trace
        raise WeightLoadError(f"{path}: not a readable MXNet .params file ({mxnet_message(e)})") from None
    if not isinstance(data, dict) or not data:
        raise WeightLoadError(f"{path}: expected a dict of named arrays, got {type(data).__name__}")
    return data


def read_checkpoint(path) -> dict:
    """``{name: numpy array}`` of an MXNet ``.params`` file; clear errors for a missing / unreadable file."""
    return {k: v.asnumpy() for k, v in _load_params(path).items()}


def checkpoint_style(path) -> str:
    """The style (:func:`detect_style`) of the checkpoint at ``path`` from its keys alone (no conversion to
    numpy; same errors as :func:`read_checkpoint`). :func:`rfcn_face.config.resolve_normalisation` uses it to
    pick the pixel normalisation the weights expect."""
    keys = list(_load_params(path))
    try:
        return detect_style(keys)
    except WeightLoadError as e:
        raise WeightLoadError(f"{path}: {e}") from None


def _backbone_of(net):
    return getattr(net, "backbone", net)


def load_pretrained(net, path, allow_missing: bool = False) -> LoadReport:
    """Set the backbone of ``net`` (an :class:`symbols.rfcn.RFCN` or :class:`symbols.resnet.ResNetV1`, already
    initialised) from the checkpoint at ``path``; returns a :class:`LoadReport`."""
    backbone = _backbone_of(net)
    arrays = read_checkpoint(path)
    keys = set(arrays)
    style = detect_style(arrays)
    params = {p.name: p for p in backbone.collect_params().values()}
    report = LoadReport(path=str(path), style=style)
    col = {"mxnet": (0, 1), "gluon_v1": (2, 3), "gluon_v1b": (4, 5)}[style]
    plan, used, mismatched = {}, set(), []
    for slot in backbone_slots(backbone.depth):
        conv_src, bn_src = slot[col[0]], slot[col[1]]
        items = [(slot[0] + "weight", file_key(style, conv_src, "weight", False, keys))]
        items += [(slot[1] + f, file_key(style, bn_src, f, True, keys)) for f in _BN_FIELDS]
        for ours, theirs in items:
            p = params[ours]
            if theirs not in arrays:
                report.missing.append(ours)
                continue
            used.add(theirs)
            if tuple(arrays[theirs].shape) != tuple(p.shape):
                mismatched.append(f"{theirs} {tuple(arrays[theirs].shape)} vs {ours} {tuple(p.shape)}")
                continue
            plan[ours] = arrays[theirs]
        bias_key = file_key(style, conv_src, "bias", False, keys)
        mean = slot[1] + "running_mean"
        if bias_key in arrays and mean in plan:
            used.add(bias_key)
            if arrays[bias_key].shape != plan[mean].shape:
                mismatched.append(f"{bias_key} {arrays[bias_key].shape} vs {mean} {plan[mean].shape}")
                continue
            plan[mean] = plan[mean] - arrays[bias_key]  # BN(conv + b) == BN(conv) with mean - b (global stats)
            report.folded.append(bias_key)
    if mismatched:
        raise WeightLoadError(f"{path}: {len(mismatched)} shape mismatch(es) for a ResNet-{backbone.depth} "
                              "backbone (wrong depth or not a ResNet v1?): " + "; ".join(mismatched[:6])
                              + (" ..." if len(mismatched) > 6 else ""))
    if report.missing and not allow_missing:
        raise WeightLoadError(f"{path}: {len(report.missing)} backbone parameter(s) of ResNet-{backbone.depth} not "
                              f"in this {style} checkpoint: " + ", ".join(report.missing[:6])
                              + (" ..." if len(report.missing) > 6 else ""))
    for ours, arr in plan.items():
        params[ours].set_data(arr.astype(np.float32))
        report.loaded.append(ours)
    report.unused = sorted(keys - used)
    kind, _ = DEPTHS[backbone.depth]
    if kind == "bottleneck":
        if style == "gluon_v1b" and not backbone.stride_in_3x3:
            report.notes.append("v1b weights were trained with the stride in the 3x3 conv; this backbone strides "
                                "the first 1x1 (build it with stride_in_3x3=True to match exactly)")
        if style != "gluon_v1b" and backbone.stride_in_3x3:
            report.notes.append("v1 weights were trained with the stride in the first 1x1 conv; this backbone "
                                "strides the 3x3 (stride_in_3x3=False matches them exactly)")
    return report


def zero_init_residual(backbone) -> list:
    """Set the gamma of the last BatchNorm of every residual branch to 0 (``bn*_branch2b`` of basic blocks,
    ``bn*_branch2c`` of bottlenecks; Goyal et al. 2017), so that a randomly initialised backbone starts as the
    identity through its shortcuts. Only useful when those gammas are trained (``train.freeze: none``).
    Returns the parameter names."""
    last = "branch2b_gamma" if DEPTHS[backbone.depth][0] == "basic" else "branch2c_gamma"
    names = []
    for p in backbone.collect_params().values():
        if p.name.startswith("bn") and p.name.endswith(last):
            p.set_data(p.data().zeros_like())
            names.append(p.name)
    return names


def init_detector(net, pretrained: str = "", ctx=None, allow_missing: bool = False, zero_residual: bool = False):
    """Initialise ``net`` (new layers: their own N(0, 0.01) / bilinear initialisers, backbone: Xavier) and load
    ``pretrained`` into the backbone when given; ``zero_residual`` (random init only) applies
    :func:`zero_init_residual`. Returns the :class:`LoadReport` or ``None``."""
    import mxnet as mx
    net.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2), ctx=ctx)
    if pretrained:
        return load_pretrained(net, pretrained, allow_missing=allow_missing)
    if zero_residual:
        zero_init_residual(_backbone_of(net))
    return None
