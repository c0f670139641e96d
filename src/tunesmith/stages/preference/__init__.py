"""Shared by the preference stages (rm, dpo, kto): loss math, log-prob forward passes, the pairwise base."""
