"""Placeholder for the stack interface, which lives on the lead's branch.

The registry copied from that branch (fff/backends/__init__.py) imports ``Backend`` from here;
without this file every ``backend_label``/``backend_color`` call on this branch would raise
instead of falling back. The lead's base.py replaces this one on merge.
"""


class Backend:
    """No stack on this branch subclasses it, so every name takes the registry's fallback label and colour."""
