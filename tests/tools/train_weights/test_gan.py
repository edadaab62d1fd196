"""The DCGAN recipe."""

from __future__ import annotations

import torch

from tools.train_weights.gan import train_gan


def test_training_smoke() -> None:
    state = torch.random.get_rng_state()
    g, d, log = train_gan(seed=0, steps=3, batch_size=8, pool_size=32, bn_batches=1)
    assert not g.training and not d.training and log["steps"] == 3
    assert g.latent_dim == 64 and g(torch.zeros(1, 64)).shape == (1, 3, 32, 32)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched
    g2, _, _ = train_gan(seed=0, steps=3, batch_size=8, pool_size=32, bn_batches=1, max_steps=2)
    changed = [k for k, v in g.state_dict().items() if not torch.equal(v, g2.state_dict()[k])]
    assert changed  # max_steps stopped the run one step early
