"""The RL-Tune agent (Mahmud et al. 2022, section 3.3): an actor-critic trained with PPO.

Actor: each unit's state feature goes through a linear layer, then an LSTM runs over the
sequence of units (first layer to last), and a linear layer gives each unit a categorical
distribution over K learning rates. Critic: an MLP on the whole state vector.

PPO (Schulman et al. 2017) with the clipped objective per unit (each unit's probability
ratio is clipped on its own: the ratio of the joint action of 50 units leaves [1 − ε, 1 + ε]
after tiny per-unit changes), generalized advantage estimation
(bootstrapped where the buffer ends mid-episode, cut at episode ends), rewards normalised
by their running mean and standard deviation, an entropy bonus per unit (the mean over
units, so its weight does not grow with the number of layers) and a value loss.
"""

from __future__ import annotations

import math
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

    def start_at(self, action: int, prob: float) -> None:
        """Make the policy choose ``action`` with probability ``prob`` for every unit,
        whatever the state (the policy layer's weights zeroed, its bias set)."""
        others = (1 - prob) / (self.actions - 1)
        with torch.no_grad():
            self.policy.weight.zero_()
            self.policy.bias.fill_(math.log(others))
            self.policy.bias[action] = math.log(prob)

    def forward(self, state: torch.Tensor) -> tuple[torch.distributions.Categorical, torch.Tensor]:
        """``state``: [batch, units, features] → per-unit distributions, state values [batch]."""
        hidden, _ = self.lstm(torch.relu(self.embed(state)))
        dist = torch.distributions.Categorical(logits=self.policy(hidden))
        return dist, self.critic(state.flatten(1)).squeeze(-1)

    @torch.no_grad()
    def act(
        self, state: torch.Tensor, greedy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One action per unit for one state [units, features], sampled (or the most
        likely one when ``greedy``): actions [units], their log-probabilities [units], the
        state's value."""
        dist, value = self(state.unsqueeze(0))
        actions = dist.probs.argmax(-1) if greedy else dist.sample()
        return actions[0], dist.log_prob(actions)[0], value[0]


@dataclass
class Buffer:
    """One epoch of interactions."""

    states: list[torch.Tensor] = field(default_factory=list)
    actions: list[torch.Tensor] = field(default_factory=list)
    log_probs: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    #: whether the interaction ended an episode (the target restarts after it)
    dones: list[bool] = field(default_factory=list)

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
        self.dones.append(False)

    def end_episode(self) -> None:
        """Mark the last interaction as the end of an episode."""
        if self.dones:
            self.dones[-1] = True

    def __len__(self) -> int:
        return len(self.rewards)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    gamma: float,
    lam: float,
    last_value: float = 0.0,
    dones: list[bool] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages A_t = Σ_k (γλ)^k δ_{t+k}, δ_t = r_t + γ V_{t+1} − V_t, and returns A_t + V_t.

    ``dones[t]``: the episode ends after step t, so V_{t+1} = 0 and the sum stops there;
    ``last_value`` is V of the state after the last step (0 when that step ends an episode)."""
    done = dones or [False] * len(rewards)
    advantages = torch.zeros_like(rewards)
    running = 0.0
    next_value = last_value
    for t in range(len(rewards) - 1, -1, -1):
        keep = 0.0 if done[t] else 1.0
        delta = float(rewards[t]) + gamma * next_value * keep - float(values[t])
        running = delta + gamma * lam * running * keep
        advantages[t] = running
        next_value = float(values[t])
    return advantages, advantages + values


@dataclass
class RunningStats:
    """Running mean and variance (Welford) of the rewards seen so far."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def update(self, values: list[float]) -> None:
        for value in values:
            self.count += 1
            delta = value - self.mean
            self.mean += delta / self.count
            self.m2 += delta * (value - self.mean)

    def normalise(self, values: torch.Tensor) -> torch.Tensor:
        std = math.sqrt(self.m2 / self.count) if self.count > 1 else 1.0
        return (values - self.mean) / (std + 1e-8)


class PPO:
    """Clipped-objective PPO updates of an :class:`Agent` from a :class:`Buffer`."""

    def __init__(self, agent: Agent, settings: PPOSettings | None = None) -> None:
        self.agent = agent
        self.settings = settings or PPOSettings()
        self.optimizer = torch.optim.Adam(agent.parameters(), lr=self.settings.lr)
        self.rewards = RunningStats()

    def update(self, buffer: Buffer, last_value: float = 0.0) -> dict[str, float]:
        """Several passes over the buffer; returns the last pass's losses. ``last_value``:
        V of the state after the buffer's last interaction, when that did not end an
        episode."""
        s = self.settings
        states = torch.stack(buffer.states)
        actions = torch.stack(buffer.actions)
        old_log_probs = torch.stack(buffer.log_probs)
        values = torch.stack(buffer.values)
        self.rewards.update(buffer.rewards)
        rewards = self.rewards.normalise(torch.tensor(buffer.rewards, dtype=torch.float32))
        advantages, returns = gae(rewards, values, s.gamma, s.gae_lambda, last_value, buffer.dones)
        if len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        stats: dict[str, float] = {}
        advantages = advantages.unsqueeze(-1)  # shared by the units
        for _ in range(s.update_epochs):
            dist, value = self.agent(states)
            ratio = torch.exp(dist.log_prob(actions) - old_log_probs)  # [steps, units]
            policy_loss = -torch.min(
                ratio * advantages, ratio.clamp(1 - s.clip, 1 + s.clip) * advantages
            ).mean()
            value_loss = nn.functional.mse_loss(value, returns)
            entropy = dist.entropy().mean()  # per unit
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
