"""Private plumbing shared by every part of the package (nothing here is public API).

* :mod:`~captum_perturbmask._core.checks` - argument checks (errors name the argument);
* :mod:`~captum_perturbmask._core.forward` - the one layer that calls the model;
* :mod:`~captum_perturbmask._core.random` - seeds and private generators;
* :mod:`~captum_perturbmask._core.ops` - small tensor operations (blur);
* :mod:`~captum_perturbmask._core.ranking` - tie-broken orders and ranks of saliency maps;
* :mod:`~captum_perturbmask._core.captum_compat` - the only importer of Captum's private helpers;
* :mod:`~captum_perturbmask._core.errors` - ``LoadError`` and one-line messages.
"""
