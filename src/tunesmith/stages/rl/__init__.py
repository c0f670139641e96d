"""What stage ppo's loss is made of: pure PPO math (losses.py) and the rollout rows it reads (batch.py)."""
