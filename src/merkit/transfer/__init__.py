"""Pre-trained networks as merkit inputs: checkpoint loaders, front ends, embeddings.

One module per checkpoint family (:mod:`~merkit.transfer.won_crnn` for Won et al.'s CRNN,
:mod:`~merkit.transfer.artist_cnn` for Park et al.'s artist-label encoder), file checks in
:mod:`~merkit.transfer.checkpoints`, cached embeddings as scikit-learn transformers in
:mod:`~merkit.transfer.embedders` and the new head in :mod:`~merkit.transfer.heads`. Weights are
given by path; only :mod:`~merkit.transfer.weights` downloads, when the user runs ``merkit models
download``. Submodules import torch (not ``weights``); import them directly.
"""
