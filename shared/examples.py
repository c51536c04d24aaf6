"""Examples: texts with their labels, the first stage of the data flow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Examples:
    """Parallel lists of texts and integer labels, with the label names (index = label id)."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: list[int]) -> Examples:
        return Examples([self.texts[i] for i in index], [self.labels[i] for i in index], self.label_names)
