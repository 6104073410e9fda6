"""Test tools shared by several test packages: hostile servers and raw-socket clients."""
