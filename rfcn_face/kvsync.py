"""Gradient exchange over devices and workers with MXNet's kvstore, through its public API only.

Gluon's ``Trainer`` would create the kvstore and broadcast worker 0's parameters lazily inside its first ``step``;
there the weight pull of a key is not ordered against the gradient push of the same key (different engine
buffers), and a pull that reaches a ``dist_sync`` server after every worker's push returns the summed gradient
(about 1 launch in 30 on this machine trained from garbage). So the training loop keeps the kvstore here and the
Trainer only updates (``kvstore=None``, :meth:`mxnet.gluon.Trainer.update`):

* :meth:`GradientSync.broadcast` — ``kv.broadcast`` of every trainable parameter (worker 0's values, on every
  device of every worker), then a wait: done before the first gradient push and after a resume;
* :meth:`GradientSync.allreduce` — ``kv.pushpull`` of every trainable gradient list: after it every device of
  every worker holds the sum of the gradients, which the Trainer rescales by ``1 / G`` in its update.

The calls are those the Trainer makes itself (``update_on_kvstore=False``), so the numbers are the same. No kvstore
(one device, one worker) makes both a no-op.
"""
from __future__ import annotations

from typing import Optional

__all__ = ["GradientSync", "KVSTORES"]

KVSTORES = ("local", "device", "dist_sync", "dist_device_sync")   # dist_*: under ``launch`` (MXNet's kvstore)


class GradientSync:
    """``GradientSync(kvstore, params, num_devices)``: ``kvstore`` a name of :data:`KVSTORES` or an
    ``mx.kv.KVStore`` (a dist one is created by the caller, who needs its rank first); ``params`` the trainable
    Parameters in the Trainer's order."""

    def __init__(self, kvstore, params, num_devices: int):
        import mxnet as mx
        self.params = list(params)
        if isinstance(kvstore, str):
            if kvstore not in KVSTORES:
                raise ValueError(f"--kvstore must be one of {', '.join(KVSTORES)}, got {kvstore!r}")
            self.kv: Optional[object] = mx.kv.create(kvstore) if num_devices > 1 and "dist" not in kvstore else None
        else:
            self.kv = kvstore if (num_devices > 1 or kvstore.num_workers > 1) else None

    def broadcast(self) -> None:
        import mxnet as mx
        if self.kv is None:
            return
        for i, p in enumerate(self.params):
            data = p.list_data()
            self.kv.broadcast(i, data[0], out=data)
        mx.nd.waitall()

    def allreduce(self) -> None:
        if self.kv is None:
            return
        for i, p in enumerate(self.params):
            if p.grad_req != "null":
                self.kv.pushpull(i, p.list_grad(), priority=-i)
