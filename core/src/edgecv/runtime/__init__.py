"""The real-time runtime behind ``edgecv run``: sources, tracking, thermal throttling, the loop.

``edgecv.Runtime`` / ``edgecv.RunConfig`` / ``edgecv.FrameResult`` are the public names; the
submodules are ``sources`` (capture threads), ``tracker`` (ByteTrack-style), ``thermal``
(sensor + policy), ``inference`` (the watched model thread), ``loop``, ``outputs``, ``recording``
(crash-safe ``--save`` videos), ``threads`` (bounded joins at shutdown), ``stats``,
``hookspecs`` / ``defaults`` / ``observers`` (the service's hooks, its ``trylast``
implementations, and each run's own plugin manager) and ``throughput`` (``edgecv bench --video``).
"""
