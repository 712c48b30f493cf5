"""How work runs: the precision policy, honest timing, torch.distributed, and the tensor plumbing every floor shares."""
