"""PPO building blocks shared by stage ppo and its training loop: pure math, rollouts, rewards."""
