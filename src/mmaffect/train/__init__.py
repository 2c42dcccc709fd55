"""Training and evaluation loops (🤗 Accelerate).

* :mod:`mmaffect.train.lgsrr` - LGSRR and the text-only baseline, the paper's protocol (§4.1);
* :mod:`mmaffect.train.evaluate` - ``mmaffect evaluate classifier --model DIR --dataset NAME``;
* :mod:`mmaffect.train.model_card` - the generated model card;
* :mod:`mmaffect.train.features_cache` - frozen-encoder features for the fast modes;
* :mod:`mmaffect.train.cli` - ``mmaffect train`` / ``train.py``, dispatching on the config's ``model_type``
  (``lgsrr`` here, ``nano_emox`` -> :mod:`mmaffect.train.p2e`).

Submodules are imported on use, so ``import mmaffect.train`` stays light.
"""
