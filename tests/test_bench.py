"""Smoke test of the benchmark engine (fastconv.bench) on shrunk shapes: it runs, checks, reports."""
import json

import numpy as np
import pytest

from fastconv import bench


def test_tiny_run_writes_checked_results(tmp_path):
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    rc = bench.main(["--tiny", "--quick", "--cases", "c,e,f2", "--no-sweeps", "--no-scipy",
                     "--json", str(out_json), "--out", str(out_md)])
    assert rc == 0
    res = json.loads(out_json.read_text())
    assert set(res["cases"]) == {"c", "e", "f2"}
    assert res["meta"]["threads"]["requested"] == 2 and res["meta"]["dtype"] == "float32"
    for cid, C in res["cases"].items():
        R = C["results"]
        fc = [k for k in R if k.startswith("fastconv")]
        assert "fastconv auto" in fc and len(fc) >= 2, cid
        for name, r in R.items():
            assert r["median"] > 0 and r["min"] <= r["median"] and r["n"] >= 3, (cid, name)
            assert r["err"] is not None and r["err"] < bench.ERR_FLAG, (cid, name, r["err"])
    md = out_md.read_text()
    assert "## Bars" in md and "| c " in md and "max relative error above" in md


def test_tiny_sweep_and_charts(tmp_path):
    pytest.importorskip("matplotlib")
    res = bench.Runner(bench.Config(tiny=True, scipy=False, case_patterns=("d",), sweeps=("kernel",),
                                    first_call=False)).run()
    pts = res["sweeps"]["kernel"]["points"]
    assert [p["value"] for p in pts] == bench.SWEEPS[3].quick_values[:2]
    assert all(p["results"]["fastconv auto"]["err"] < bench.ERR_FLAG for p in pts)
    paths = bench.write_charts(res, str(tmp_path))
    want = {"sweeps.png"} | ({"ratios.png"} if bench._optional("torch") else set())
    assert {p.split("/")[-1] for p in paths} == want
    assert all((tmp_path / name).stat().st_size > 1000 for name in want)


def test_flops_and_references():
    case = next(c for c in bench.ANCHOR_CASES if c.id == "a1")
    assert case.flops == 2 * 8 * 64 * 56 * 56 * 64 * 9
    assert abs(bench.lite0_flops() / 2 - 385e6) < 1e6        # EfficientNet-Lite0: ~385 M MACs
    # the NumPy im2col references agree with a direct loop on a small transposed case
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((2, 1, 2, 2))
    y = bench.np_conv_transpose2d(x, w, 2, 0)
    want = np.zeros((1, 1, 6, 6))
    for c in range(2):
        for i in range(3):
            for j in range(3):
                want[0, 0, 2 * i:2 * i + 2, 2 * j:2 * j + 2] += x[0, c, i, j] * w[c, 0]
    np.testing.assert_allclose(y, want, atol=1e-12)


def test_bars_are_evaluated():
    def r(t):
        return {"median": t, "min": t, "n": 3, "bg": 0.0}
    case = next(c for c in bench.ANCHOR_CASES if c.id == "d")
    res = {"cases": {"d": {"case": bench.dataclasses.asdict(case), "results": {
        "fastconv auto": r(1.0), "torch": r(2.0), "ndimage": r(60.0)}}},
        "first_call": {"first_call_s": 1.5}}
    bars = {b["bar"].split(":")[0] + (" scipy" if "SciPy" in b["bar"] else ""): b for b in bench.evaluate_bars(res)}
    assert bars["d"]["value"] == 0.5 and bars["d"]["met"]
    assert bars["d scipy"]["value"] == 60.0 and bars["d scipy"]["met"]
    assert bars["first conv2d call, new process, warm Numba cache"]["met"] is False


def test_merge_keeps_lowest_median(tmp_path):
    def run(t_auto, t_torch, first):
        def r(t):
            return {"median": t, "min": t * 0.9, "n": 3, "bg": 0.0, "err": 0.0}
        case = next(c for c in bench.ANCHOR_CASES if c.id == "c")
        meta = {"date": "d", "loadavg_start": "0", "total_s": 1.0, "mode": "quick", "dtype": "float32",
                "layout": "NCHW", "malloc": "m", "timer": {"repeats": 5, "min_repeats": 3, "max_time_s": 0.4,
                                                          "warmup": 1},
                "versions": {"cpu": "x", "ncpu": 2, "fastconv": "0", "numpy": "0", "numba": "0", "scipy": "0",
                             "torch": "0", "python": "3"},
                "threads": {"requested": 2, "method": "threadpoolctl", "numba": 2, "pools": []}}
        return {"meta": meta, "sweeps": {}, "first_call": {"first_call_s": first, "import_s": 0.1,
                                                           "second_algo_first_call_s": 0.0, "process_wall_s": 1},
                "cases": {"c": {"case": bench.dataclasses.asdict(case), "flops": case.flops, "auto_algo": "im2col",
                                "results": {"fastconv auto": r(t_auto), "torch": r(t_torch)}}}}
    paths = []
    for i, args in enumerate([(2.0, 1.0, 0.9), (1.0, 3.0, 0.5)]):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(run(*args)))
    out = tmp_path / "m.md"
    assert bench.main(["--merge", *map(str, paths), "--out", str(out), "--json", str(tmp_path / "m.json")]) == 0
    merged = json.loads((tmp_path / "m.json").read_text())
    R = merged["cases"]["c"]["results"]
    assert R["fastconv auto"]["median"] == 1.0 and R["torch"]["median"] == 1.0
    assert merged["first_call"]["first_call_s"] == 0.5 and merged["meta"]["merged_runs"] == 2
    assert "Merged from 2 runs" in out.read_text()
