"""lab: a full-system QEMU test lab for Linux kernel modules."""

__version__ = "0.1.0"
