"""Baselines the paper compares against, one readable module each, on the same tasks, MDPs and run format.
They are listed, with the GFlowNet, in :data:`thermogfn.methods.METHODS`."""
