"""Training: the one loop (fit), distribution, losses, transfer surgery, ImageNet weights,
resumable backups."""
