"""Precision and the CPU (tuning/precision.py): bfloat16 only where the CPU has it."""

import pytest



@pytest.mark.parametrize("flags, expected", [("fpu sse avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True),
                                             ("fpu sse avx2 avx512f", False), ("", False)])
def test_bfloat16_only_where_the_cpu_has_it(flags, expected):
    from tuning.precision import cpu_has_bfloat16

    assert cpu_has_bfloat16(f"processor\t: 0\nflags\t\t: {flags}\n") is expected


def test_cpu_description_names_the_model_and_bfloat16():
    from tuning.precision import cpu_description

    zen3 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n"
    assert cpu_description(zen3).startswith("AMD EPYC, ") and cpu_description(zen3).endswith(", no bfloat16")
    xeon = "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: avx512f avx512_bf16 amx_bf16\n"
    assert cpu_description(xeon).endswith(", bfloat16 (AVX512_BF16/AMX)")
