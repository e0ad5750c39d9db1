"""The default PyTorch thread count: affinity mask, cgroup quota, busy cores, user settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from geomfeat._threads import cgroup_cpu_limit, cpu_limit, default_threads

CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
needs_two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="needs at least two CPUs")


def _python(code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter without ``OMP_NUM_THREADS``; its stdout."""
    env = {k: v for k, v in (env or os.environ).items() if k != "OMP_NUM_THREADS"}
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout


def _cgroup_v2(tmp_path, cpu_max: str):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "cpu.max").write_text(cpu_max + "\n")
    (tmp_path / "self-cgroup").write_text("0::/job\n")
    return tmp_path, tmp_path / "self-cgroup"


def test_cgroup_v2_quota_is_read_in_cores(tmp_path):
    root, proc = _cgroup_v2(tmp_path, "150000 100000")
    assert cgroup_cpu_limit(root, proc) == 1.5
    assert cpu_limit(root, proc) == 1  # a fractional quota rounds down


def test_cgroup_quota_of_a_parent_applies_and_max_means_none(tmp_path):
    root, proc = _cgroup_v2(tmp_path, "max 100000")
    assert cgroup_cpu_limit(root, proc) is None
    assert cpu_limit(root, proc) == len(CPUS)
    (tmp_path / "cpu.max").write_text("100000 100000\n")  # the parent's quota: one core
    assert cgroup_cpu_limit(root, proc) == 1.0


def test_cgroup_v1_cfs_quota_is_read(tmp_path):
    folder = tmp_path / "cpu,cpuacct" / "slurm" / "job7"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text("200000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "self-cgroup"
    proc.write_text("5:memory:/slurm/job7\n4:cpu,cpuacct:/slurm/job7\n")
    assert cgroup_cpu_limit(tmp_path, proc) == 2.0
    (folder / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(tmp_path, proc) is None


def test_omp_num_threads_set_by_the_user_wins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    assert default_threads(divide=2) == 1


@needs_two_cpus
def test_api_default_follows_an_affinity_mask_set_after_torch_started(weights_url, tmp_path):
    """torch counts the cores once, at import; GeomFeaturizer runs with the current mask."""
    env = {**os.environ, "GEOMFEAT_WEIGHTS_URL": weights_url,
           "GEOMFEAT_CACHE": str(tmp_path / "cache")}
    out = _python(f"""
        import json, os
        import numpy as np
        import torch
        from geomfeat import GeomFeaturizer
        featurizer = GeomFeaturizer(progress=False)
        seen = []
        forward = featurizer.encoder.forward
        def spy(*args, **kwargs):
            seen.append(torch.get_num_threads())
            return forward(*args, **kwargs)
        featurizer.encoder.forward = spy
        before = torch.get_num_threads()
        os.sched_setaffinity(0, {{{CPUS[0]}}})
        pos = np.random.default_rng(0).normal(scale=2.0, size=(3, 5, 3)).astype(np.float32)
        featurizer.transform((pos, np.array([6, 6, 7, 8, 1])))
        print(json.dumps([before, seen, torch.get_num_threads()]))
    """, env)
    before, seen, after = json.loads(out)
    assert before == len(CPUS)
    assert seen == [1]
    assert after == before  # the user's process keeps its setting


@needs_two_cpus
def test_default_leaves_out_cores_that_other_processes_keep_busy():
    """Two busy loops pinned to the process's two CPUs: one thread, not two."""
    pinned = CPUS[:2]
    spin = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); exec('while 1: pass')"
    loops = [subprocess.Popen([sys.executable, "-c", spin, str(cpu)]) for cpu in pinned]
    try:
        out = _python(f"""
            import os, time
            os.sched_setaffinity(0, {set(pinned)})
            from geomfeat import _threads
            start = _threads._busy_snapshot()
            time.sleep(0.5)
            print(_threads.cpu_limit(), _threads.free_cores(start), _threads.default_threads())
        """)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    limit, free, threads = out.split()
    assert int(limit) == 2
    assert float(free) < 1.3
    assert int(threads) == 1
