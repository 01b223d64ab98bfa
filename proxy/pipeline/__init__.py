"""Everything a model request passes through, in the order it passes."""
