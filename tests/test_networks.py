"""Policy trunks (thermogfn.networks): every architecture trains with every conditioning; the token-wise trunks
ignore what lies beyond the filled part, do not mix rows, see positions, and give a proper exact distribution;
chunked scoring of long batches equals the single call; ``architecture`` round-trips through configs and the CLI."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from cli_helpers import TINY_HYPERGRID, assert_clean, new_dir, run_cli

from thermogfn import networks
from thermogfn.conditioning import mlp
from thermogfn.config import ARCHITECTURES, ModelConfig, RunConfig, resolve
from thermogfn.errors import ThermoGFNError
from thermogfn.exact import exact_metrics
from thermogfn.gfn import GFlowNetTrainer
from thermogfn.mdp import PrependAppendMDP, make_mdp
from thermogfn.policy import GFlowNetModel
from thermogfn.tasks.hypergrid import HypergridTask

SEQUENCE_ARCHITECTURES = [a for a in ARCHITECTURES if a != "graph"]  # the graph trunk: tests/test_graph_policy.py
TOKEN_WISE = [a for a in SEQUENCE_ARCHITECTURES if a != "mlp"]
PRIORS = {"none": "constant:1", "layer": "uniform:1:3", "logit": "uniform:1:3", "logit+layer": "uniform:1:3"}


def _trainer(task, architecture: str, conditioning: str = "logit", **kw) -> GFlowNetTrainer:
    model = ModelConfig(conditioning=conditioning, architecture=architecture, hidden=16, layers=1,
                        learn_pb=kw.pop("learn_pb", False))
    cfg = RunConfig(task=task.name, model=model, beta_train=PRIORS[conditioning], batch_size=8, replay_batch=8,
                    steps=3, seed=0, **kw)
    return GFlowNetTrainer(cfg, task=task)


@pytest.mark.parametrize("conditioning", list(PRIORS))
@pytest.mark.parametrize("architecture", SEQUENCE_ARCHITECTURES)
def test_every_architecture_trains_with_every_conditioning(tiny_task, architecture: str, conditioning: str):
    trainer = _trainer(tiny_task, architecture, conditioning, learn_pb=conditioning == "logit+layer")
    before = {k: v.clone() for k, v in trainer.model.trunk.state_dict().items()}
    for _ in range(3):
        stats = trainer.train_round()
        assert torch.isfinite(torch.tensor([stats.loss, stats.loss_replay])).all()
    assert trainer.skipped == 0
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.trunk.state_dict().items())


@pytest.mark.parametrize("objective", ["db", "subtb"])
def test_token_wise_trunks_carry_flows(tiny_task, objective: str):
    for architecture in TOKEN_WISE:
        trainer = _trainer(tiny_task, architecture, objective=objective)
        for _ in range(2):
            trainer.train_round()
        assert trainer.skipped == 0


def _model(architecture: str, vocab: int = 4, length: int = 6, conditioning: str = "logit+layer",
           hidden: int = 16) -> GFlowNetModel:
    torch.manual_seed(0)
    mdp = PrependAppendMDP(vocab, length)
    return GFlowNetModel(mdp, ModelConfig(conditioning=conditioning, architecture=architecture, hidden=hidden,
                                          layers=2, learn_pb=True), (1.0, 3.0), with_flow=True)


def _states(rows: list[list[int]], vocab: int = 4, length: int = 6) -> torch.Tensor:
    return torch.tensor([r + [vocab] * (length - len(r)) for r in rows])


def _features(model: GFlowNetModel, states: torch.Tensor) -> torch.Tensor:
    return model._features(states, model.context(torch.full((states.shape[0],), 2.0)))


@pytest.mark.parametrize("architecture", TOKEN_WISE)
def test_nothing_beyond_the_filled_part_leaks(architecture: str):
    model = _model(architecture)
    states = _states([[], [1], [0, 2, 3], [3, 3, 1, 0, 2], [0, 1, 2, 3, 0, 1]])
    ref = _features(model, states)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):  # anything after the first pad: other tokens, more pads
        noisy = states.clone()
        lengths = (states != 4).sum(-1)
        after = torch.arange(6) > lengths[:, None]
        noisy[after] = torch.randint(5, (int(after.sum()),), generator=g)
        assert torch.allclose(_features(model, noisy), ref, atol=1e-5)
    # each row alone, or beside longer rows (the batch is cut to its longest filled part), gives the same features
    for i in range(states.shape[0]):
        assert torch.allclose(_features(model, states[i: i + 1]), ref[i: i + 1], atol=1e-5)
    assert torch.isfinite(ref).all()


@pytest.mark.parametrize("architecture", TOKEN_WISE)
def test_positions_are_seen(architecture: str):
    model = _model(architecture)
    ab, ba = [0, 1], [1, 0]
    states = _states([ab, ba, [2] + ab, ab + [2], [2, 2] + ab])
    h = _features(model, states)
    for i in range(len(h)):
        for j in range(i + 1, len(h)):
            assert not torch.allclose(h[i], h[j], atol=1e-4), (i, j)


def test_transformer_positions_follow_the_filled_length():
    """Without token identities (and without the CLS's length embedding) the transformer still tells lengths apart,
    through positions counted from the end of the filled part, and nothing else."""
    model = _model("transformer")
    with torch.no_grad():
        model.trunk.token.weight.zero_()
        model.trunk.filled_length.weight.zero_()
    h = _features(model, _states([[0, 1, 2], [3, 3, 3], [1, 2], [2, 1, 0, 3]]))
    assert torch.allclose(h[0], h[1], atol=1e-5)
    assert not torch.allclose(h[0], h[2], atol=1e-4) and not torch.allclose(h[0], h[3], atol=1e-4)


@pytest.mark.parametrize("architecture", TOKEN_WISE)
def test_chunked_long_batches_equal_the_single_call(architecture: str, monkeypatch):
    model = _model(architecture, vocab=3, length=12)
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(0, 13, (40,), generator=g)
    states = torch.where(torch.arange(12) < lengths[:, None], torch.randint(3, (40, 12), generator=g), 3)
    beta = 1.0 + 2.0 * torch.rand(40, generator=g)

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        out = model.step_outputs(states, model.context(beta))
        (out.log_pf.clamp_min(-50).sum() + out.log_flow.sum()).backward()
        return out.log_pf, [p.grad.clone() for p in model.trunk.parameters() if p.grad is not None]

    whole, whole_grads = run()
    monkeypatch.setattr(networks, "CHUNK_TOKENS", 64)
    monkeypatch.setattr(networks, "CHECKPOINT_FLOATS", 0)  # and recompute each chunk in backward
    chunked, chunked_grads = run()
    assert torch.allclose(chunked, whole, atol=1e-5)
    assert len(chunked_grads) == len(whole_grads)
    for a, b in zip(chunked_grads, whole_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("architecture", TOKEN_WISE)
def test_exact_distribution_sums_to_one(tiny_task, architecture: str):
    trainer = _trainer(tiny_task, architecture)
    trainer.train_round()
    for beta in (1.0, 3.0):
        m = exact_metrics(trainer.model, tiny_task, beta)
        assert m["mass"] == pytest.approx(1.0, abs=1e-6)
        assert 0.0 <= m["tv"] < 1.0


def test_mlp_parameter_names_are_unchanged(tiny_task):
    """Checkpoints of the MLP from before the trunks moved to thermogfn.networks load as they are."""
    model = _trainer(tiny_task, "mlp").model
    old = mlp([model.mdp.encoding_dim + 0, 16, 16])  # how policy.py built it: layers=1, hidden=16, no embedding
    old.append(torch.nn.LeakyReLU())
    assert list(model.trunk.state_dict()) == list(old.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_architecture_config_round_trip_and_defaults(tiny_task):
    cfg = RunConfig(task=tiny_task.name, model=ModelConfig(architecture="transformer", hidden=16))
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert resolve(cfg, tiny_task).model.architecture == "transformer"
    assert resolve(RunConfig(task=tiny_task.name), tiny_task).model.architecture == "mlp"
    old = resolve(RunConfig(task=tiny_task.name), tiny_task).identity()
    del old["model"]["architecture"]  # a checkpoint written before the option existed: an MLP
    assert RunConfig.from_dict(old).identity() == resolve(RunConfig(task=tiny_task.name), tiny_task).identity()
    with pytest.raises(ThermoGFNError, match="architecture"):
        resolve(dataclasses.replace(cfg, model=ModelConfig(architecture="lstm")), tiny_task)
    with pytest.raises(ThermoGFNError, match="multiple of 4"):
        resolve(dataclasses.replace(cfg, model=ModelConfig(architecture="transformer", hidden=18)), tiny_task)
    with pytest.raises(ThermoGFNError, match="hypergrid"):
        resolve(RunConfig(task="hypergrid", model=ModelConfig(architecture="conv")), HypergridTask(2, 3))


@pytest.mark.parametrize("architecture", ["transformer", "conv", "graph"])
def test_cli_refuses_token_wise_and_graph_trunks_on_the_hypergrid(architecture: str):
    code, out, err = run_cli("train", *TINY_HYPERGRID, "--steps", "2", "--architecture", architecture,
                             "--out", str(new_dir() / "run"))
    assert code == 2 and assert_clean(code, out, err) != "ok"
    assert "--architecture" in err and len(err.strip().splitlines()) == 1


def test_cli_trains_and_resumes_a_transformer(tmp_path):
    run = tmp_path / "run"
    args = ["--task", "custom", "--alphabet", "AB", "--length", "5", "--hidden", "8", "--layers", "1",
            "--batch-size", "4", "--replay-batch", "4", "--checkpoint-every", "1", "--no-progress"]
    # a custom reward through the CLI needs a file: the tiny one below
    reward = tmp_path / "r.py"
    reward.write_text("def f(seqs):\n    return [1.0 + s.count('A') for s in seqs]\n")
    args[1] = f"{reward}:f"
    code, _, err = run_cli("train", *args, "--architecture", "transformer", "--steps", "2", "--out", str(run))
    assert code == 0, err
    assert '"architecture": "transformer"' in (run / "config.json").read_text()
    code, _, err = run_cli("train", "--resume", str(run), "--steps", "3")
    assert code == 0, err
    assert "trained 3 rounds" in err


@pytest.mark.parametrize("kind,classes,positions,beta_dim", [("prepend-append", 20, 32, 0), ("append", 20, 32, 4),
                                                             ("hypergrid", 40, 16, 3)])
def test_wide_one_hot_rollout_features_equal_the_dense_product(kind, classes, positions, beta_dim):
    from thermogfn.networks import WIDE_INPUT, MLPTrunk

    torch.manual_seed(0)
    mdp = make_mdp(kind, classes, positions)
    assert mdp.encoding_dim > WIDE_INPUT
    trunk = MLPTrunk(mdp, 32, 2, beta_dim)
    states = mdp.initial(9)
    for _ in range(6):
        actions = torch.randint(0, mdp.n_actions, (9,))
        states = mdp.step(states, actions)
    embedding = torch.randn(9, beta_dim) if beta_dim else None
    with torch.no_grad():
        assert torch.allclose(trunk.snapshot()(states, embedding), trunk(states, embedding), atol=1e-5)
