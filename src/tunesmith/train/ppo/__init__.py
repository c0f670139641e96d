"""Stage ppo: set-up of the policy, value head, reference and reward (run.py) and the PPO loop (loop.py)."""
