"""Bitwise fingerprints of short training runs: a speed-up must not change any result.

The chapters check stored runs (``book/data``, written by ``book/scripts``) against what
``pgcore.train`` computes; those checks hold only while training is bitwise reproducible
across code changes. Each case below is a short run whose history (every entry but
``wall_time``, floats by their exact hexadecimal form) and final parameters are hashed. If a
change to pgcore alters a hash, it altered results: either undo it, or regenerate the stored
runs with the scripts in ``book/scripts`` and update the hashes here, saying so. The hashes
are for the pinned torch (CPU) and gymnasium of ``requirements.txt``.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from pgcore.training import train

#: (env, algo, total_steps, hyperparameters) -> the first 16 hex digits of the SHA-256
CASES = [
    ("CartPole-v1", "ppo-clip", 2048, {}, "69b17e438a4f724a"),
    ("CartPole-v1", "ppo-kl", 1024, {}, "5cc1de7441dcba1a"),
    (
        "CartPole-v1",
        "ppo-clip",
        1024,
        {"target_kl": 0.001, "ent_coef": 0.01, "clip_vloss": 0.2, "normalize_advantages": False},
        "91eb363b2051a99e",
    ),
    ("CartPole-v1", "trpo", 2048, {}, "fbddcd6c37d1dfa8"),
    ("Pendulum-v1", "ppo-clip", 2048, {}, "f715e9e7c5083c29"),
]


def _encode(value):
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def fingerprint(env: str, algo: str, steps: int, hparams: dict) -> str:
    """SHA-256 (16 hex digits) of a seed-3 run's history and final parameters."""
    result = train(env, algo, total_steps=steps, seed=3, progress=False, **hparams)
    h = hashlib.sha256()
    for row in result.history:
        items = {k: _encode(v) for k, v in sorted(row.items()) if k != "wall_time"}
        h.update(json.dumps(items, default=str).encode())
    for model in (result.policy, result.value_fn):
        for name, tensor in model.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize(("env", "algo", "steps", "hparams", "expected"), CASES)
def test_runs_are_bitwise_unchanged(env, algo, steps, hparams, expected):
    assert fingerprint(env, algo, steps, hparams) == expected, (
        f"{algo} on {env}: the results changed bitwise. Undo the change, or regenerate "
        "book/data with book/scripts and update the hash in tests/test_fingerprints.py"
    )
