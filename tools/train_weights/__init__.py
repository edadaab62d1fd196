"""Training recipes of the weight files shipped in ``captum_perturbmask/data/weights/``.

``python -m tools.train_weights --out DIR [--only RECIPE ...]`` trains; ``--check`` retrains
and compares with the shipped files tensor by tensor. Recipes: :mod:`.digits` (the digits
classifier), :mod:`.gan` (the digits-patch DCGAN), :mod:`.series` (the GunPoint and
planted-motif classifiers, the series generator, its PPCA baseline, the DTW reference),
:mod:`.sanity` (the generators' checks in ``training_log.json``); :mod:`.recipes` lists them,
:mod:`.check` compares. See README.md in this folder for times and reproduction.
"""
