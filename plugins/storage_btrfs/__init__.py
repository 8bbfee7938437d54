"""btrfs: one subvolume per layer, a child a snapshot of its parent."""
