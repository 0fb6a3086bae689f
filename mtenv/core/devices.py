"""Device kinds: the hardware a scenario can put models on.

Each :class:`DeviceSpec` carries the public figures that the simulator needs to time work on the
device: memory capacity, on-device memory bandwidth, dense FP16 throughput, the fraction of that
peak a small inference kernel really reaches, per-layer launch overhead, the host-to-device
bandwidth that bounds cold-start loads, idle / busy power and the price per hour.

Sources for the figures (vendor datasheets and public cloud price lists, 2024–2026):

* T4: 16 GB GDDR6, 320 GB/s, 65 TFLOPS FP16, 70 W; AWS g4dn ≈ $0.53/h.
* L4: 24 GB, 300 GB/s, 121 TFLOPS FP16, 72 W; GCP g2 ≈ $0.80/h.
* A10G: 24 GB, 600 GB/s, 125 TFLOPS FP16, 150 W; AWS g5 ≈ $1.00/h.
* A100 (40 GB): 1.6 TB/s, 312 TFLOPS FP16, 400 W; ≈ $2.50/h.
* H100 SXM: 80 GB, 3.35 TB/s, 989 TFLOPS FP16, 700 W; ≈ $6.00/h.
* Jetson Orin NX 16 GB (edge): 102 GB/s LPDDR5 shared with the CPU, ≈ 25 W; loads come from
  NVMe (≈ 2 GB/s); price is amortised hardware.
* CPU: a 16-vCPU server socket running FP32 kernels; loads come from local disk.

The ``efficiency`` of 5 % for data-centre GPUs is calibrated on Clockwork's ResNet-50 figures on a
V100 (batch 1/2/4/8 in 3.3/5.3/7.5/12.4 ms: about 1.3 ms per extra image for 8.2 GFLOPs, i.e.
≈ 6 TFLOPS achieved of 125 peak). Host-to-device bandwidth follows the PCIe generation (Clockwork
loads 112 MB in 8.4 ms over PCIe 3: ≈ 13 GB/s).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace

GB = 1e9


@dataclass(frozen=True)
class DeviceSpec:
    """The static description of one device kind.

    Attributes:
        kind: catalogue name, e.g. ``"t4"``.
        memory_bytes: memory available for model weights.
        mem_bandwidth: on-device memory bandwidth in bytes per second.
        peak_flops: dense FP16 (FP32 for the CPU) floating-point operations per second.
        efficiency: fraction of ``peak_flops`` a small batched inference kernel achieves.
        layer_overhead_s: fixed launch / dispatch cost per layer per batch.
        h2d_bandwidth: bytes per second when loading weights onto the device (cold start).
        idle_watts: power drawn while idle.
        busy_watts: power drawn while running a batch or loading weights.
        price_per_hour: US dollars per hour of use.
        label: a human-readable name for tables and the renderer.
    """

    kind: str
    memory_bytes: float
    mem_bandwidth: float
    peak_flops: float
    efficiency: float
    layer_overhead_s: float
    h2d_bandwidth: float
    idle_watts: float
    busy_watts: float
    price_per_hour: float
    label: str

    def with_overrides(self, **changes: float) -> DeviceSpec:
        """A copy with some figures replaced (a scenario's per-device overrides)."""
        return replace(self, **changes)


DEVICE_KINDS: dict[str, DeviceSpec] = {
    spec.kind: spec
    for spec in (
        DeviceSpec("t4", 16 * GB, 320 * GB, 65e12, 0.05, 40e-6, 12 * GB, 10, 70, 0.53, "NVIDIA T4"),
        DeviceSpec(
            "l4", 24 * GB, 300 * GB, 121e12, 0.05, 35e-6, 25 * GB, 16, 72, 0.80, "NVIDIA L4"
        ),
        DeviceSpec(
            "a10g", 24 * GB, 600 * GB, 125e12, 0.05, 35e-6, 25 * GB, 25, 150, 1.00, "NVIDIA A10G"
        ),
        DeviceSpec(
            "a100", 40 * GB, 1600 * GB, 312e12, 0.05, 30e-6, 25 * GB, 50, 400, 2.50, "NVIDIA A100"
        ),
        DeviceSpec(
            "h100", 80 * GB, 3350 * GB, 989e12, 0.05, 25e-6, 50 * GB, 70, 700, 6.00, "NVIDIA H100"
        ),
        DeviceSpec(
            "jetson", 16 * GB, 102 * GB, 25e12, 0.05, 80e-6, 2 * GB, 5, 25, 0.05, "Jetson Orin NX"
        ),
        DeviceSpec(
            "cpu", 32 * GB, 80 * GB, 1.5e12, 0.30, 10e-6, 2 * GB, 40, 150, 0.68, "CPU 16 vCPU"
        ),
    )
}


class UnknownDeviceKind(KeyError):
    """A device kind that is not in :data:`DEVICE_KINDS`."""

    def __str__(self) -> str:
        return str(self.args[0])


def device_spec(kind: str) -> DeviceSpec:
    """Look up a device kind, suggesting the closest names when it is unknown."""
    try:
        return DEVICE_KINDS[kind]
    except KeyError:
        close = difflib.get_close_matches(kind, DEVICE_KINDS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(DEVICE_KINDS)
        raise UnknownDeviceKind(f"unknown device kind {kind!r} (known: {known}){hint}") from None
