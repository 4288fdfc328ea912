"""RL-Tune: a PPO agent that sets a learning rate per layer or block (Mahmud et al. 2022)."""
