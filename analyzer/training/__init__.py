"""Dataset building, fine-tuning and evaluation of the root-cause model."""
