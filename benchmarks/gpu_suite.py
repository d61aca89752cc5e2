"""GPU suite: every figure the CUDA path needs, in one command bounded by a time budget.

    python benchmarks/gpu_suite.py --out /tmp/suite                      # CUDA, 420 s budget
    python benchmarks/gpu_suite.py --out /tmp/suite --device cpu --quick # the same code, tiny sizes

Stages, in order, each in its own process with its own time limit (a failure, a CUDA
out-of-memory or a hang is recorded for that stage and the next one runs):

1. ``cuda_tests``  -- the tests marked ``cuda`` (``pytest -m cuda``; they skip without CUDA).
2. ``physics``     -- MuJoCo Warp env-steps/s and peak memory at 1024 ... 16384 worlds
                      (``benchmarks/sim_scaling.py``'s measurement, one fresh process per point),
                      and the control step with body kinematics from the torch FK vs from
                      MuJoCo Warp's own (``sim.body_kinematics``), side by side.
3. ``train_e2e``   -- PPO (``train.py``'s agent and env) at 4096 and 8192 envs: env-steps/s over
                      a fixed number of epochs, then one profiled epoch split into physics,
                      env work (reference lookup, observations, reward, resets), policy
                      inference and the PPO update; peak memory per env; and a host-sync check
                      of the env step under ``torch.cuda.set_sync_debug_mode("error")``.
4. ``learning``    -- a fixed-time training run on BallPlay-M layup (reward per step against
                      time and frames), then a short evaluation of its checkpoint (success rate
                      and E_b, through ``skillmimic.eval.app.evaluate_checkpoint``; 301 steps cover
                      the layup criterion's window -- ``--quick``'s 4 steps score E_b only).

``DIR/gpu_suite.json`` and ``DIR/gpu_suite.md`` are rewritten after every stage, and each stage
prints its figures as soon as it ends, so a run cut off early keeps what it measured. On the
GPU machine (``../shared/gpu/README.md``): ``python benchmarks/gpu_suite.py --out $OUT 2>&1 |
tee $OUT/log``. The first use of MuJoCo Warp compiles its kernels (1-3 min, cached after).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import skillmimic  # noqa: E402,F401  -- before torch: its OpenMP settings (docs/scaling.md) take effect

SHARED_MOTIONS = REPO.parent / "shared" / "data" / "motions"
STAGES = ("cuda_tests", "physics", "train_e2e", "learning")
# Seconds kept for each stage out of the budget (a stage may use what earlier ones left over).
# The first stage that touches MuJoCo Warp on a fresh machine compiles its kernels (1-3 min).
RESERVE_S = {"cuda_tests": 150, "physics": 100, "train_e2e": 90, "learning": 80}

FULL = {"physics_worlds": [1024, 4096, 8192, 16384], "physics_steps": 50, "physics_warmup": 5,
        "fk_worlds": 4096, "e2e_envs": [4096, 8192], "e2e_epochs": 3, "warmup_epochs": 1,
        "learning_envs": 4096, "learning_s": 40.0, "eval_envs": 64, "eval_steps": 301, "horizon": None}
QUICK = {"physics_worlds": [4], "physics_steps": 2, "physics_warmup": 1,
         "fk_worlds": 4, "e2e_envs": [4], "e2e_epochs": 1, "warmup_epochs": 1,
         "learning_envs": 4, "learning_s": 0.0, "eval_envs": 2, "eval_steps": 4, "horizon": 4}


def layup_motion() -> Path:
    """BallPlay-M layup when the shared data set is there (the GPU kit links it), else the demo clips."""
    layup = SHARED_MOTIONS / "BallPlay-M" / "layup"
    return layup if layup.exists() else REPO / "data" / "motions" / "demo"


# ================================================================================ stages
def stage_cuda_tests(args, sizes, emit) -> None:
    # only the files that mark tests ``cuda`` (collecting the whole suite would take longer than running these)
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                   if "pytest.mark.cuda" in p.read_text())
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *files]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    tail = res.stdout.strip().splitlines()[-1:] or [""]
    counts = {}
    for part in tail[0].split(","):
        bits = part.strip().split()
        if len(bits) >= 2 and bits[0].isdigit():
            counts[bits[1]] = int(bits[0])
    emit({"command": " ".join(cmd[1:]), "exit_code": res.returncode, "summary": tail[0], **counts,
          "failures": [ln for ln in res.stdout.splitlines() if ln.startswith("FAILED")][:20]})
    # pytest exits 5 when every cuda test was deselected/skipped: not a failure on a CPU
    if res.returncode not in (0, 5):
        raise RuntimeError(f"cuda tests failed: {tail[0]}")


def stage_physics(args, sizes, emit) -> None:
    import torch

    points = []
    for n in sizes["physics_worlds"]:
        cmd = [sys.executable, str(REPO / "benchmarks" / "sim_scaling.py"), "--_point", "mjwarp", str(n),
               "--device", args.device, "--steps", str(sizes["physics_steps"]), "--warmup", str(sizes["physics_warmup"])]
        res = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if res.returncode != 0 or not lines:
            points.append({"worlds": n, "error": res.stderr.strip().splitlines()[-1:] or ["no output"]})
        else:
            row = json.loads(lines[-1])
            mem_mb = row.get("warp_peak_mb", 0.0) + row.get("torch_peak_mb", 0.0)
            if not math.isnan(mem_mb) and mem_mb:
                row["gpu_mb_per_world"] = mem_mb / n
            points.append(row)
        emit({"points": points})
    emit({"points": points, "fk": fk_costs(args.device, sizes["fk_worlds"], torch)})


def fk_costs(device: str, n: int, torch) -> dict:
    """Body kinematics per control step both ways (``MujocoWarpSimulator(body_kinematics=...)``):
    the torch FK on the stepped state, or MuJoCo Warp's own kinematics recomputed inside the
    recorded step. Times the whole ``step()`` of each and their largest body-state gap."""
    from skillmimic.sim import make_simulator
    from sim_scaling import standing_state  # noqa: E402  (benchmarks/ is on sys.path)

    sims = {k: make_simulator("mjwarp", n, device=device, body_kinematics=k) for k in ("torch", "warp")}
    targets = torch.zeros(n, 156, device=device)
    on_cuda = torch.device(device).type == "cuda"
    reps = 20 if on_cuda else 3
    ms = {}
    for name, sim in sims.items():
        sim.set_state(None, standing_state(n, device))
        sim.set_pd_targets(targets)
        sim.step()                                   # kernels, graph capture
    for _ in range(2):                               # interleaved, the second round counts
        for name, sim in sims.items():
            if on_cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(reps):
                sim.step()
            if on_cuda:
                torch.cuda.synchronize()
            ms[name] = (time.perf_counter() - t0) / reps * 1000
    a, b = (sims[k].state for k in ("torch", "warp"))
    gap = max(float((getattr(a, k) - getattr(b, k)).abs().max()) for k in ("body_pos", "body_lin_vel"))
    for sim in sims.values():
        sim.close()
    return {"worlds": n, "step_ms_torch_fk": ms["torch"], "step_ms_warp_kinematics": ms["warp"],
            "max_gap": gap, "faster": "torch" if ms["torch"] <= ms["warp"] else "warp"}


def compose_train(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from skillmimic.rl.config import CONFIG_DIR, register_configs

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def _train_overrides(args, sizes, num_envs: int, experiment: str) -> list[str]:
    ov = [f"motion.path={layup_motion()}", "motion.name=suite", f"num_envs={num_envs}", f"device={args.device}",
          "sim=mjwarp", "print_stats=false", f"output_dir={Path(args.out) / 'runs'}", f"experiment={experiment}",
          "train.save_frequency=0", "max_epochs=-1"]
    if sizes["horizon"]:
        ov.append(f"train.horizon_length={sizes['horizon']}")
    return ov


class EpochDriver:
    """The agent's epoch (rollout + PPO update) without its logging, with a clock that waits
    for the device at epoch boundaries only."""

    def __init__(self, agent):
        import torch

        self.agent, self.torch = agent, torch
        self.cuda = torch.device(agent.ppo_device).type == "cuda"
        agent.init_tensors()
        agent.obs = agent.env_reset()
        self.frames = 0

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def epoch(self) -> float:
        a = self.agent
        self.sync()
        t0 = time.perf_counter()
        a.update_epoch()
        a.train_epoch()
        a.dataset.update_values_dict(None)
        self.sync()
        self.frames += a.curr_frames
        return time.perf_counter() - t0


def _memory(torch, device) -> dict:
    if torch.device(device).type != "cuda":
        import resource
        return {"rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    import warp as wp

    wdev = wp.get_device(str(device))
    warp_mb = wp.get_mempool_used_mem_high(wdev) / 2**20 if wp.is_mempool_enabled(wdev) else float("nan")
    return {"torch_peak_mb": torch.cuda.max_memory_allocated() / 2**20, "warp_peak_mb": warp_mb}


def _sync_check(torch, env, steps: int = 4) -> str:
    """Env steps under CUDA's sync debug mode: "ok", or the first synchronising call."""
    if env.device.type != "cuda":
        return "n/a (cpu)"
    actions = torch.zeros(env.num_envs, env.num_actions, device=env.device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(steps):
            env.step(actions)
        return "ok"
    except RuntimeError as e:
        return f"sync: {str(e).splitlines()[0]}"
    finally:
        torch.cuda.set_sync_debug_mode(0)


def stage_train_e2e(args, sizes, emit) -> None:
    import torch

    from skillmimic.rl.runner import build_agent, close_agent

    rows = []
    for n in sizes["e2e_envs"]:
        row: dict = {"envs": n}
        agent = None
        try:
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            agent, _, _ = build_agent(compose_train(_train_overrides(args, sizes, n, f"e2e{n}")))
            env = agent.vec_env.env
            drv = EpochDriver(agent)
            row["warmup_s"] = sum(drv.epoch() for _ in range(sizes["warmup_epochs"]))
            frames0, wall = drv.frames, 0.0
            for _ in range(sizes["e2e_epochs"]):
                wall += drv.epoch()
            frames = drv.frames - frames0
            row.update(epochs=sizes["e2e_epochs"], frames=frames, wall_s=wall, env_steps_s=frames / wall,
                       horizon=agent.horizon_length, minibatch=agent.minibatch_size, mini_epochs=agent.mini_epochs_num)
            # one more epoch with the stage timers on (CUDA events; read once at its end)
            for timer in (agent.timer, env.timer):
                timer.reset()
                timer.enabled = True
            total = drv.epoch()
            t = {**agent.timer.totals(), **env.timer.totals()}
            for timer in (agent.timer, env.timer):
                timer.enabled = False
            split = {"physics": t.get("physics", 0.0), "env_work": t.get("env_step", 0.0) - t.get("physics", 0.0),
                     "inference": t.get("inference", 0.0)}
            split["ppo_update_and_rest"] = total - sum(split.values())
            row["profiled_epoch_s"] = total
            row["split_s"] = split
            row["split_pct"] = {k: 100 * v / total for k, v in split.items()}
            mem = _memory(torch, agent.ppo_device)
            row["memory"] = mem
            if "torch_peak_mb" in mem:
                row["gpu_mb_per_env"] = (mem["torch_peak_mb"] + (0 if math.isnan(mem["warp_peak_mb"])
                                                                 else mem["warp_peak_mb"])) / n
            row["sync_check"] = _sync_check(torch, env)
        except Exception as e:  # noqa: BLE001 -- recorded, the next size still runs
            row["error"] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        finally:
            if agent is not None:
                close_agent(agent)
            del agent
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        rows.append(row)
        emit({"rows": rows})
    if all("error" in r for r in rows):
        raise RuntimeError("every size failed")


def stage_learning(args, sizes, emit) -> None:
    from skillmimic.eval.app import evaluate_checkpoint, register_eval_config
    from skillmimic.rl.runner import build_agent, close_agent

    motion = layup_motion()
    agent, run_dir, _ = build_agent(compose_train(_train_overrides(args, sizes, sizes["learning_envs"], "learning")))
    curve = []
    try:
        drv = EpochDriver(agent)
        t0 = time.perf_counter()
        while True:
            drv.epoch()
            terms = agent._pop_term_means()
            curve.append({"epoch": agent.epoch_num, "t_s": time.perf_counter() - t0, "frames": drv.frames,
                          "reward_per_step": terms.get("reward")})
            if curve[-1]["t_s"] >= sizes["learning_s"] and len(curve) >= 2:
                break
        ckpt = agent.save(Path(run_dir) / "nn" / "learning.pth")
    finally:
        close_agent(agent)
    result = {"motion": str(motion), "envs": sizes["learning_envs"], "curve": curve, "checkpoint": str(ckpt)}
    emit(result)

    from hydra import compose, initialize_config_dir

    from skillmimic.rl.config import CONFIG_DIR

    register_eval_config()
    overrides = [f"checkpoint={ckpt}", f"num_envs={sizes['eval_envs']}", f"device={args.device}", "eval.rounds=1",
                 f"eval.episode_length={sizes['eval_steps']}", f"out_dir={Path(args.out) / 'eval'}"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("eval", overrides=overrides)
    out = evaluate_checkpoint(cfg, overrides)
    summary = out.report.to_dict()["summary"]
    result["eval"] = {"overrides": overrides, "success_rate": summary.get("mean_success_rate"),
                      "e_b_mm": summary.get("mean_e_b_mm"), "summary": summary, "json": str(out.json_path)}
    emit(result)


STAGE_FNS = {"cuda_tests": stage_cuda_tests, "physics": stage_physics, "train_e2e": stage_train_e2e,
             "learning": stage_learning}


def run_stage_child(args) -> int:
    """Inside a stage's own process: run it and keep DIR/stage_<name>.json current."""
    sizes = QUICK if args.quick else FULL
    path = Path(args.out) / f"stage_{args._stage}.json"
    sys.path.insert(0, str(REPO / "benchmarks"))

    def emit(data: dict) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, default=str))
        tmp.replace(path)

    STAGE_FNS[args._stage](args, sizes, emit)
    return 0


# ================================================================================ report
def fmt(v, spec=".0f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def stage_lines(name: str, st: dict) -> list[str]:
    """Markdown for one stage (also what is printed when it ends)."""
    head = f"### {name}: {st.get('status')} ({fmt(st.get('seconds'), '.0f')} s)"
    out = [head]
    if st.get("error"):
        out.append(f"error: `{st['error']}`")
    r = st.get("result") or {}
    if name == "cuda_tests" and r:
        out.append(f"`{r.get('command')}`: {r.get('summary')}")
        out += [f"- {f}" for f in r.get("failures", [])]
    elif name == "physics" and r:
        out += ["| worlds | env-steps/s | physics-steps/s | warp MB | torch MB | GPU MB/world | setup s |",
                "|---:|---:|---:|---:|---:|---:|---:|"]
        for p in r.get("points", []):
            if "error" in p:
                out.append(f"| {p['worlds']} | error: {p['error']} | | | | | |")
            else:
                out.append(f"| {p['worlds']} | {fmt(p['env_steps_s'])} | {fmt(p['physics_steps_s'])} | "
                           f"{fmt(p.get('warp_peak_mb'))} | {fmt(p.get('torch_peak_mb'))} | "
                           f"{fmt(p.get('gpu_mb_per_world'), '.3f')} | {fmt(p['setup_s'], '.1f')} |")
        fk = r.get("fk")
        if fk:
            out.append(f"control step at {fk['worlds']} worlds with body kinematics from the torch FK "
                       f"{fk['step_ms_torch_fk']:.2f} ms, from MuJoCo Warp {fk['step_ms_warp_kinematics']:.2f} ms "
                       f"(max body gap {fk['max_gap']:.1e}); faster: sim.body_kinematics={fk['faster']}")
    elif name == "train_e2e" and r:
        out += ["| envs | env-steps/s | epochs | physics % | env work % | inference % | PPO update+rest % | "
                "GPU MB/env | sync check |", "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for row in r.get("rows", []):
            if "error" in row and "env_steps_s" not in row:
                out.append(f"| {row['envs']} | error: {row['error']} | | | | | | | |")
                continue
            p = row.get("split_pct", {})
            out.append(f"| {row['envs']} | {fmt(row.get('env_steps_s'))} | {row.get('epochs')} | "
                       f"{fmt(p.get('physics'), '.1f')} | {fmt(p.get('env_work'), '.1f')} | "
                       f"{fmt(p.get('inference'), '.1f')} | {fmt(p.get('ppo_update_and_rest'), '.1f')} | "
                       f"{fmt(row.get('gpu_mb_per_env'), '.3f')} | {row.get('sync_check', '-')} |")
    elif name == "learning" and r:
        out.append(f"motion {r.get('motion')}, {r.get('envs')} envs")
        out += ["| epoch | time s | frames | reward/step |", "|---:|---:|---:|---:|"]
        curve = r.get("curve", [])
        step = max(1, len(curve) // 12)
        for c in curve[::step] + ([curve[-1]] if curve and (len(curve) - 1) % step else []):
            out.append(f"| {c['epoch']} | {c['t_s']:.0f} | {c['frames']} | {fmt(c['reward_per_step'], '.4f')} |")
        ev = r.get("eval")
        if ev:
            out.append(f"eval: success {fmt(ev.get('success_rate'), '.3f')}, E_b {fmt(ev.get('e_b_mm'), '.1f')} mm")
    return out


def write_report(out: Path, report: dict) -> None:
    tmp = out / "gpu_suite.json.tmp"
    tmp.write_text(json.dumps(report, indent=1, default=str))
    tmp.replace(out / "gpu_suite.json")
    md = [f"# GPU suite ({report['device']}{', quick' if report['quick'] else ''}, budget {report['budget_s']} s)", "",
          f"machine: {report.get('machine')}", ""]
    for name in STAGES:
        if name in report["stages"]:
            md += stage_lines(name, report["stages"][name]) + [""]
    (out / "gpu_suite.md").write_text("\n".join(md))


def machine_info(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}"
    return f"cpu x{os.cpu_count()}, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for gpu_suite.json / gpu_suite.md / runs")
    ap.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget of the whole suite")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI on the CPU)")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--_stage", choices=STAGES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args._stage:
        return run_stage_child(args)

    t_start = time.perf_counter()
    report = {"device": args.device, "quick": args.quick, "budget_s": args.budget_s,
              "machine": machine_info(args.device), "command": " ".join([sys.executable, *sys.argv]),
              "sizes": QUICK if args.quick else FULL, "stages": {}}
    write_report(out, report)
    for i, name in enumerate(args.stages):
        left = args.budget_s - (time.perf_counter() - t_start)
        later = sum(RESERVE_S[s] for s in args.stages[i + 1:])
        limit = max(min(left, 30.0), left - later)
        if args.quick:
            limit = max(limit, 120.0)      # CI on a loaded CPU: the budget is for the GPU run
        cmd = [sys.executable, __file__, "--_stage", name, "--out", str(out), "--device", args.device] + \
              (["--quick"] if args.quick else [])
        print(f"== {name} (limit {limit:.0f} s)", flush=True)
        stage_file = out / f"stage_{name}.json"
        stage_file.unlink(missing_ok=True)
        t0 = time.perf_counter()
        st: dict = {}
        try:
            res = subprocess.run(cmd, cwd=REPO, timeout=limit, stdout=sys.stdout, stderr=subprocess.PIPE, text=True)
            st["status"] = "ok" if res.returncode == 0 else "error"
            if res.returncode != 0:
                st["error"] = (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]
                sys.stderr.write(res.stderr[-4000:])
        except subprocess.TimeoutExpired:
            st["status"], st["error"] = "timeout", f"stopped after {limit:.0f} s (partial results kept)"
        st["seconds"] = time.perf_counter() - t0
        if stage_file.exists():
            st["result"] = json.loads(stage_file.read_text())
        report["stages"][name] = st
        write_report(out, report)
        print("\n".join(stage_lines(name, st)), flush=True)
    report["total_s"] = time.perf_counter() - t_start
    write_report(out, report)
    print(f"\nwrote {out / 'gpu_suite.json'} and {out / 'gpu_suite.md'} ({report['total_s']:.0f} s)", flush=True)
    return 0 if all(s.get("status") == "ok" for s in report["stages"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
