"""Latency, memory and load-time profiles of models on devices.

A batch of ``b`` tasks of one model takes ``alpha + beta * b`` seconds on a device (the linear
model that Clockwork, INFaaS and AlpaServe fit to measured serving latency). Both terms are derived
from the real module and the device's public figures, never typed per pair:

* ``alpha`` = layers × per-layer launch overhead + weight bytes ÷ memory bandwidth (every batch
  streams the weights once);
* ``beta``  = FLOPs per sample ÷ (peak FLOPS × achieved efficiency);
* ``load``  = weight bytes ÷ host-to-device bandwidth (cold start).

The zoo's digit models are small stand-ins for production models, so a :class:`ProfileScale`
multiplies their real FLOPs, weight bytes and depth; the relative costs between models, which are
what an allocator exploits, stay the real ones. A scenario may override any (model, device) pair.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtenv.core.devices import DeviceSpec


@dataclass(frozen=True)
class ProfileScale:
    """Factors that turn a zoo model's real size into the size of the model it stands for.

    Attributes:
        flops: multiplies FLOPs per sample.
        weight_bytes: multiplies the weight bytes (memory footprint, load time, streaming).
        layers: multiplies the number of layers (launch overhead).
    """

    flops: float = 1.0
    weight_bytes: float = 1.0
    layers: float = 1.0


@dataclass(frozen=True)
class LatencyProfile:
    """How long one model (or a plan's members together) takes on one device.

    Attributes:
        alpha_s: fixed cost of a batch, seconds.
        beta_s: cost per task in the batch, seconds.
        load_s: time to load the weights onto the device, seconds.
        weight_bytes: memory the weights occupy on the device.
    """

    alpha_s: float
    beta_s: float
    load_s: float
    weight_bytes: float

    def batch_latency(self, batch_size: int) -> float:
        """Seconds to serve a batch of ``batch_size`` tasks."""
        return self.alpha_s + self.beta_s * batch_size

    def __add__(self, other: LatencyProfile) -> LatencyProfile:
        """Members run one after another: times and memory add up."""
        return LatencyProfile(
            self.alpha_s + other.alpha_s,
            self.beta_s + other.beta_s,
            self.load_s + other.load_s,
            self.weight_bytes + other.weight_bytes,
        )


def derive_profile(
    *, flops: float, weight_bytes: float, layers: int, device: DeviceSpec, scale: ProfileScale
) -> LatencyProfile:
    """The roofline-style profile of a model with the given real size on a device."""
    scaled_bytes = weight_bytes * scale.weight_bytes
    alpha = layers * scale.layers * device.layer_overhead_s + scaled_bytes / device.mem_bandwidth
    beta = flops * scale.flops / (device.peak_flops * device.efficiency)
    return LatencyProfile(
        alpha_s=alpha,
        beta_s=beta,
        load_s=scaled_bytes / device.h2d_bandwidth,
        weight_bytes=scaled_bytes,
    )
