"""The GPU runbook's plumbing on CPU: a simulated GPU machine (the packages its image lacks
hidden, a carried wheel installed with pip --target) runs the CPU path end to end into an
output folder; stages past their deadline are killed with their process group; a failing or
non-JSON stage does not stop the next; collect writes the report and the where-table."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "benchmarks" / "gpu" / "runbook.py"
sys.path.insert(0, str(RUNBOOK.parent))

import gpu_collect  # noqa: E402
import gpu_machine  # noqa: E402
import gpu_runner  # noqa: E402
from gpu_plan import Stage, gpu_stages  # noqa: E402

CARRIED = "submitit"  # absent on the GPU image; the wheel below carries a stand-in of it


def _wheel(dest: Path, name: str = CARRIED, version: str = "0+runbook.test") -> Path:
    """A minimal pure-Python wheel of package ``name`` (``CARRIED = True`` in it)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "CARRIED = True\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar if m.isfile()}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> dict:
    """One simulated run: exit code, output folder, the archive's files, collect's folder."""
    tmp = tmp_path_factory.mktemp("runbook")
    _wheel(tmp / "wheels")
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    proc = subprocess.run(
        [sys.executable, str(RUNBOOK), "run", "--simulate-gpu-machine", "--out", str(tmp / "out"),
         "--wheels", str(tmp / "wheels"), "--site", str(tmp / "site"), "--budget-s", "600"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=900,
    )  # fmt: skip
    members = _members(tmp / "out" / gpu_runner.ARCHIVE)
    report = gpu_collect.collect(tmp / "out", tmp / "reports")
    return {"proc": proc, "out": tmp / "out", "files": members, "report": report}


def test_simulated_gpu_machine_runs_every_cpu_stage_and_returns_two_files(simulated):
    proc = simulated["proc"]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # the device tool returns at most 8 files from $OUT: the run leaves exactly two there
    assert sorted(p.name for p in simulated["out"].iterdir()) == ["gpu-run.tar.gz", "summary.md"]
    status = json.loads(simulated["files"]["status.json"])
    assert [(s["name"], s["status"]) for s in status["stages"]] == [
        ("versions", "ok"), ("cuda-tests", "ok"), ("tiny-cpu", "ok")
    ]  # fmt: skip
    assert status["install"]["status"] == "ok" and status["install"]["wheels"] == [
        f"{CARRIED}-0+runbook.test-py3-none-any.whl"
    ]
    assert all(0 < s["seconds"] <= s["deadline_s"] for s in status["stages"])
    # the bench's ratios reach the printed output too, in case no file comes back
    assert "- tiny-cpu: sparse@0: step " in proc.stdout and "sparse@0.8: step " in proc.stdout


def test_the_simulated_machine_lacks_what_the_image_lacks_except_carried_wheels(simulated):
    versions = json.loads(simulated["files"]["versions.json"])
    importable = versions["importable_of_absent_on_image"]
    assert importable.pop(CARRIED) is True  # installed from the carried wheel
    assert set(importable) == set(gpu_machine.ABSENT) - {CARRIED}
    assert not any(importable.values()), importable


def test_cuda_only_tests_skip_on_cpu_with_their_reason(simulated):
    summary = json.loads(simulated["files"]["cuda-tests.json"])
    assert summary["tests"] == summary["skipped"] >= 5 and summary["failures"] == 0
    assert all("needs a CUDA GPU" in s["reason"] for s in summary["skipped_tests"])


def test_collect_writes_the_report_bench_tables_and_where_table(simulated):
    report = simulated["report"]
    assert report.name == "gpu-cpu-simulated"
    result = json.loads((report / "tiny-cpu.json").read_text())
    assert result["schema"].startswith("greentrain.bench.ssprop/")
    readme = (report / "README.md").read_text()
    assert "| tiny-cpu | ok |" in readme and "skipped of" in readme
    where = (report / "where-ssprop-saves.md").read_text()
    assert "resnet18 3x8x8, batch 4" in where and "dense in this layout only" in where
    assert (report / "tiny-cpu.md").read_text().startswith("**ssprop vs dense")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_a_stage_past_its_deadline_dies_with_its_process_group_and_later_stages_run(tmp_path):
    py = sys.executable
    hang = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "open(sys.argv[1], 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(600)\n"
    )
    pid_file = tmp_path / "grandchild.pid"
    stages = [
        Stage("hang", "sleeps past its deadline", ("{py}", "-c", hang, str(pid_file)), 15, 1,
              output="json"),
        Stage("not-json", "prints text", ("{py}", "-c", "print('hello')"), 60, 1, output="json"),
        Stage("fails", "exits 3", ("{py}", "-c", "raise SystemExit(3)"), 60, 1, output="json"),
        Stage("ok", "prints JSON", ("{py}", "-c", "print('{\"a\": 1}')"), 60, 1, output="json"),
        Stage("late", "needs more time than is left", ("{py}", "-c", "1"), 60, 10**6),
    ]  # fmt: skip
    # 15 s: long enough for a loaded machine to start the stage and its child first
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    t0 = time.monotonic()
    status = gpu_runner.run_plan(stages, work=work, out=out, budget_s=600, env=dict(os.environ),
                                 cwd=ROOT, py=py, status={}, log=lambda _: None)  # fmt: skip
    statuses = [s["status"] for s in status["stages"]]
    assert statuses[0] == "timed out after 15 s" and status["stages"][0]["timed_out"]
    assert statuses[1:4] == ["stdout is not JSON", "failed (exit 3)", "ok"]
    assert statuses[4].startswith("not started")
    assert time.monotonic() - t0 < 300
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 60
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild), "the hung stage's child outlived its deadline"
    files = _members(out / gpu_runner.ARCHIVE)
    assert json.loads(files["ok.json"]) == {"a": 1}
    assert files["hang.out"] == b"started\n"  # what a killed stage printed is kept
    assert "| hang | timed out after 15 s |" in (out / gpu_runner.SUMMARY).read_text()


def test_targets_are_met_only_when_the_whole_interval_is_under_them():
    judge = gpu_collect.judge
    assert judge(0.90, {"low": 0.88, "high": 0.93}, 0.95) == "met"
    assert judge(0.99, {"low": 0.97, "high": 1.01}, 0.95) == "not met"
    assert judge(0.94, {"low": 0.90, "high": 0.99}, 0.95).startswith("undecided")
    assert judge(0.90, None, 0.95) == "met (point estimate, no interval)"
    assert judge(None, None, 0.95) == "n/a (not measured)"


def test_the_gpu_plan_keeps_the_priority_order_and_needs_no_store():
    stages = gpu_stages()
    names = [s.name for s in stages]
    assert names[:6] == ["versions", "cuda-tests", "resnet50-graphs", "resnet50-graphs-aten",
                         "layers-triton", "layers-aten"]  # fmt: skip
    assert not any(s.optional for s in stages[:6]) and all(s.optional for s in stages[6:])
    for s in stages:
        if "bench" in s.argv:
            assert "--no-record" in s.argv and "--store" not in s.argv, s.name
    # the priority stages fit the first call's budget even if each runs to its own minimum
    assert sum(s.min_s for s in stages[:6]) < 510


def test_a_runbook_stopped_by_sigterm_ends_the_running_stage_group_and_publishes(tmp_path):
    pid_file, out, work = tmp_path / "grandchild.pid", tmp_path / "out", tmp_path / "work"
    out.mkdir()
    work.mkdir()
    hang = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "open(sys.argv[1], 'w').write(str(child.pid))\n"
        "time.sleep(600)\n"
    )
    driver = (
        "import os, sys\n"
        f"sys.path.insert(0, {str(RUNBOOK.parent)!r})\n"
        "from pathlib import Path\n"
        "import gpu_runner\n"
        "from gpu_plan import Stage\n"
        "gpu_runner.exit_on_sigterm()\n"
        f"stage = Stage('hang', 'sleeps', ('{{py}}', '-c', {hang!r}, {str(pid_file)!r}), 600, 1)\n"
        f"gpu_runner.run_plan([stage], work=Path({str(work)!r}), out=Path({str(out)!r}),\n"
        "    budget_s=600, env=dict(os.environ), cwd=Path('.'), py=sys.executable, status={},\n"
        "    log=lambda _: None)\n"
    )
    runbook = subprocess.Popen([sys.executable, "-c", driver], cwd=ROOT)
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    runbook.terminate()
    assert runbook.wait(timeout=120) == 143
    deadline = time.monotonic() + 60
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild), "the running stage outlived the runbook"
    status = json.loads(_members(out / gpu_runner.ARCHIVE)["status.json"])
    assert status["interrupted"] is True and status["running"] == "hang"


def test_pack_fetches_wheels_for_the_gpu_python_and_writes_a_manifest(tmp_path):
    import gpu_wheels

    index = tmp_path / "index"
    wheel = _wheel(index)
    offline = ("--no-index", "--find-links", str(index))
    wanted = ((f"{CARRIED}==0+runbook.test", "a test wheel"),)
    manifest = gpu_wheels.pack(tmp_path / "dest", wanted, index_args=offline)
    (entry,) = manifest["wheels"]
    assert entry["file"] == wheel.name and (tmp_path / "dest" / wheel.name).exists()
    assert entry["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert manifest["python"] == "3.12" and "manylinux2014_x86_64" in manifest["platforms"]
    saved = json.loads((tmp_path / "dest" / gpu_wheels.MANIFEST).read_text())
    assert saved == manifest and saved["why"] == {f"{CARRIED}==0+runbook.test": "a test wheel"}
    with pytest.raises(RuntimeError, match="over"):
        gpu_wheels.pack(tmp_path / "dest", wanted, max_bytes=10, index_args=offline)
    with pytest.raises(RuntimeError, match="pip download nothing-here==1 failed"):
        gpu_wheels.pack(tmp_path / "dest", (("nothing-here==1", ""),), index_args=offline)
