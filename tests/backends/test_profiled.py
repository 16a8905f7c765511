"""ProfiledBackend: unit times from a profile, everything else from the base backend."""

from __future__ import annotations

import pytest

from chipcut.backends.loader import rebuild
from chipcut.backends.profiled import ProfiledBackend, from_table
from chipcut.backends.protocol import Placement, Work
from chipcut.backends.registry import get_backend, validate
from chipcut.core.errors import ChipcutError

CONV = Work(macs=10**6, elem_ops=2000, weight_bytes=4096, in_bytes=8192, out_bytes=8192,
            op="conv2d", key="conv2d+relu")


@pytest.fixture
def chip() -> ProfiledBackend:
    return ProfiledBackend(get_backend("cpu"), {"conv2d+relu": 3.25e-4, "linear": 1e-5},
                           {"conv2d+relu": 10**6 + 2000, "linear": 4096}, "profile.json")


def test_a_unit_costs_exactly_its_profiled_time(chip) -> None:
    for placement in (Placement(), Placement(True, True, True)):
        assert chip.cost(CONV, placement).time_s == 3.25e-4


def test_bytes_energy_and_everything_else_are_the_base_backends(chip) -> None:
    base = get_backend("cpu")
    for placement in (Placement(), Placement(True, True, False)):
        mine, theirs = chip.cost(CONV, placement), base.cost(CONV, placement)
        assert (mine.dram_bytes, mine.sram_bytes, mine.energy_j, mine.bound) == (
            theirs.dram_bytes, theirs.sram_bytes, theirs.energy_j, theirs.bound)
        # the roofline's split of the time, scaled to the measured total
        assert max(mine.compute_s, mine.memory_s) == pytest.approx(
            mine.time_s * max(theirs.compute_s, theirs.memory_s) / theirs.time_s)
    assert chip.memory() == base.memory() and chip.link() == base.link()
    assert chip.link_time_s(10**6) == base.link_time_s(10**6)
    assert chip.weights_resident(10**6) == base.weights_resident(10**6)
    assert chip.dtypes() == base.dtypes() and chip.static_power_w() == base.static_power_w()
    assert chip.supports_op("conv2d") == base.supports_op("conv2d")


def test_work_at_another_batch_scales_the_measured_time(chip) -> None:
    batch8 = Work(8 * CONV.macs, 8 * CONV.elem_ops, CONV.weight_bytes, 8 * CONV.in_bytes,
                  8 * CONV.out_bytes, op="conv2d", key=CONV.key)
    assert chip.cost(batch8).time_s == pytest.approx(8 * 3.25e-4)


def test_a_unit_not_in_the_profile_is_a_one_line_error(chip) -> None:
    with pytest.raises(ChipcutError, match=r"no measured time for unit 'add_3'") as e:
        chip.cost(Work(0, 10, 0, 0, 0, op="add", key="add_3"))
    assert "\n" not in str(e.value)


def test_name_protocol_and_description(chip) -> None:
    assert validate(chip) is chip
    assert chip.name == "profiled:profile.json"
    assert chip.describe().startswith("profiled:profile.json: measured times of 2 units over cpu:")


def test_to_dict_rebuilds_the_same_backend(chip) -> None:
    again = rebuild(chip.to_dict(), "plan")
    assert isinstance(again, ProfiledBackend) and again.name == chip.name
    assert again.times_s == chip.times_s and again.ops == chip.ops
    assert again.cost(CONV) == chip.cost(CONV)
    assert again.base.to_dict() == get_backend("cpu").to_dict()


@pytest.mark.parametrize(("table", "message"), [
    ([], "must be a table"),
    ({"times_s": "fast"}, "needs source"),
    ({"times_s": {"a": -1.0}}, r"times_s\['a'\] = -1.0 must be a finite number >= 0"),
    ({"times_s": {"a": float("nan")}}, "must be a finite number"),
    ({"times_s": {"a": 1.0}, "ops": {"a": 1.5}}, r"ops\['a'\] = 1.5 must be a whole number"),
])
def test_a_bad_profile_table_is_a_one_line_error(table, message) -> None:
    with pytest.raises(ChipcutError, match=message) as e:
        from_table(get_backend("cpu"), table, "plan chip_specs entry 'x'")
    assert "\n" not in str(e.value)
