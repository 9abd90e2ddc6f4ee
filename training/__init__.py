"""Training tools run by a maintainer (`python -m training.train_projector`); the app never imports them."""
