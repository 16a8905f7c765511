"""Graph passes: plain functions over torch.fx GraphModules, composed into pipelines."""
