"""overlay: kernel overlayfs storage driver."""
