"""Device and dtype choices for machines this one is not: a table per platform's facts."""

from __future__ import annotations

import pytest

from backend.services.devices import DeviceFacts, DeviceUnavailable, choose_device, choose_dtype

CPU_ONLY = DeviceFacts()
CPU_BUILD_ON_GPU_MACHINE = DeviceFacts(torch_cuda=None)
AMPERE = DeviceFacts(cuda=True, cuda_devices=1, cuda_bf16=True, torch_cuda="13.0")
TURING = DeviceFacts(cuda=True, cuda_devices=1, cuda_bf16=False, torch_cuda="13.0")
APPLE_M = DeviceFacts(mps=True, mps_bf16=True)
APPLE_OLD_MACOS = DeviceFacts(mps=True, mps_bf16=False)


@pytest.mark.parametrize(("facts", "requested", "device"), [
    (CPU_ONLY, "auto", "cpu"), (AMPERE, "auto", "cuda"), (APPLE_M, "auto", "mps"), (AMPERE, "cpu", "cpu"),
    (APPLE_M, "mps", "mps"), (DeviceFacts(cuda=True, mps=True), "auto", "cuda"),
])
def test_auto_prefers_cuda_then_mps_then_the_cpu(facts: DeviceFacts, requested: str, device: str) -> None:
    assert choose_device(requested, facts) == device


@pytest.mark.parametrize(("facts", "requested", "says"), [
    (CPU_ONLY, "cuda", "CPU build"), (AMPERE, "mps", "does not have it"), (APPLE_M, "cuda", "CPU build"),
])
def test_a_missing_device_is_refused_naming_the_ones_there(facts: DeviceFacts, requested: str, says: str) -> None:
    with pytest.raises(DeviceUnavailable, match=says) as raised:
        choose_device(requested, facts)
    assert raised.value.field == "device" and "cpu" in (raised.value.allowed or [])


@pytest.mark.parametrize(("facts", "device", "requested", "dtype"), [
    (AMPERE, "cuda", "auto", "bfloat16"), (TURING, "cuda", "auto", "float32"), (APPLE_M, "mps", "auto", "bfloat16"),
    (APPLE_OLD_MACOS, "mps", "auto", "float32"), (CPU_ONLY, "cpu", "auto", "float32"),
    (CPU_ONLY, "cpu", "bfloat16", "bfloat16"), (TURING, "cuda", "float16", "float16"),
])
def test_auto_dtype_is_bfloat16_where_the_device_has_it(facts: DeviceFacts, device: str, requested: str,
                                                        dtype: str) -> None:
    assert choose_dtype(requested, device, facts) == dtype


def test_bfloat16_on_a_gpu_without_it_is_refused() -> None:
    with pytest.raises(DeviceUnavailable, match="bfloat16"):
        choose_dtype("bfloat16", "cuda", TURING)
