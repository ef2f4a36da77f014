"""``python -m bnnhw`` (also under ``torchrun -m bnnhw``)."""
from .cli import entry

entry()
