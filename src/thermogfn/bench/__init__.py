"""The paper's protocols as commands: online mode seeking and offline generalisation across temperatures."""
