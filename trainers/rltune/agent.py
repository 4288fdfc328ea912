"""The RL-Tune agent (Mahmud et al. 2022, section 3.3): an actor-critic trained with PPO.

Actor: each unit's state feature goes through a linear layer, then an LSTM runs over the
sequence of units (first layer to last), and a linear layer gives each unit a categorical
distribution over K learning rates. Critic: an MLP on the whole state vector.

PPO (Schulman et al. 2017) with the clipped objective, generalized advantage estimation,
an entropy bonus and a value loss, over a buffer of one epoch's interactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class PPOSettings:
    """PPO hyper-parameters (defaults: ε from the paper, the rest the usual ones)."""

    clip: float = 0.1
    gamma: float = 0.99
    gae_lambda: float = 0.95
    entropy: float = 0.01
    value: float = 0.5
    lr: float = 3e-4
    update_epochs: int = 4
    max_grad_norm: float = 0.5


class Agent(nn.Module):
    """``features_per_unit`` inputs per unit, ``actions`` choices per unit."""

    def __init__(
        self, units: int, actions: int, features_per_unit: int = 1, hidden: int = 32
    ) -> None:
        super().__init__()
        self.units, self.actions, self.features = units, actions, features_per_unit
        self.embed = nn.Linear(features_per_unit, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.policy = nn.Linear(hidden, actions)
        self.critic = nn.Sequential(
            nn.Linear(units * features_per_unit, 64),
            nn.Tanh(),
            nn.Linear(64, 64),
            nn.Tanh(),
            nn.Linear(64, 1),
        )

    def forward(self, state: torch.Tensor) -> tuple[torch.distributions.Categorical, torch.Tensor]:
        """``state``: [batch, units, features] → per-unit distributions, state values [batch]."""
        hidden, _ = self.lstm(torch.relu(self.embed(state)))
        dist = torch.distributions.Categorical(logits=self.policy(hidden))
        return dist, self.critic(state.flatten(1)).squeeze(-1)

    @torch.no_grad()
    def act(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample one action per unit for one state [units, features]: actions [units],
        their summed log-probability, the state's value."""
        dist, value = self(state.unsqueeze(0))
        actions = dist.sample()
        return actions[0], dist.log_prob(actions).sum(-1)[0], value[0]


@dataclass
class Buffer:
    """One epoch of interactions."""

    states: list[torch.Tensor] = field(default_factory=list)
    actions: list[torch.Tensor] = field(default_factory=list)
    log_probs: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)

    def add(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        log_prob: torch.Tensor,
        value: torch.Tensor,
        reward: float,
    ) -> None:
        self.states.append(state)
        self.actions.append(action)
        self.log_probs.append(log_prob)
        self.values.append(value)
        self.rewards.append(reward)

    def __len__(self) -> int:
        return len(self.rewards)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float, last_value: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages A_t = Σ_k (γλ)^k δ_{t+k}, δ_t = r_t + γ V_{t+1} − V_t, and returns A_t + V_t."""
    advantages = torch.zeros_like(rewards)
    running = 0.0
    next_value = last_value
    for t in range(len(rewards) - 1, -1, -1):
        delta = float(rewards[t]) + gamma * next_value - float(values[t])
        running = delta + gamma * lam * running
        advantages[t] = running
        next_value = float(values[t])
    return advantages, advantages + values


class PPO:
    """Clipped-objective PPO updates of an :class:`Agent` from a :class:`Buffer`."""

    def __init__(self, agent: Agent, settings: PPOSettings | None = None) -> None:
        self.agent = agent
        self.settings = settings or PPOSettings()
        self.optimizer = torch.optim.Adam(agent.parameters(), lr=self.settings.lr)

    def update(self, buffer: Buffer) -> dict[str, float]:
        """Several passes over the buffer; returns the last pass's losses."""
        s = self.settings
        states = torch.stack(buffer.states)
        actions = torch.stack(buffer.actions)
        old_log_probs = torch.stack(buffer.log_probs)
        values = torch.stack(buffer.values)
        rewards = torch.tensor(buffer.rewards, dtype=torch.float32)
        advantages, returns = gae(rewards, values, s.gamma, s.gae_lambda)
        if len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        stats: dict[str, float] = {}
        for _ in range(s.update_epochs):
            dist, value = self.agent(states)
            log_probs = dist.log_prob(actions).sum(-1)
            ratio = torch.exp(log_probs - old_log_probs)
            policy_loss = -torch.min(
                ratio * advantages, ratio.clamp(1 - s.clip, 1 + s.clip) * advantages
            ).mean()
            value_loss = nn.functional.mse_loss(value, returns)
            entropy = dist.entropy().sum(-1).mean()
            loss = policy_loss + s.value * value_loss - s.entropy * entropy
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.agent.parameters(), s.max_grad_norm)
            self.optimizer.step()
            stats = {
                "policy_loss": float(policy_loss.detach()),
                "value_loss": float(value_loss.detach()),
                "entropy": float(entropy.detach()),
            }
        return stats
