"""Modalities: decode records, make augmented views and masks, on the CPU side of the pipeline.

Build one with `modalities.registry.build_modality`. This package module imports nothing, so a process that needs
one light piece (the view spec, the decode error) does not import torch and every modality with it."""
