"""The inference core, free of PyTorch: what a model file says about itself (:mod:`.model`), how a photo
is decoded (:mod:`.images`) and preprocessed (:mod:`.preprocessing`), how probabilities become an answer
(:mod:`.answer`: top-k, "not sure", :mod:`.open_set`, :mod:`.safety`) and the input statistics drift is
measured on (:mod:`.stats`). Training, evaluation, export, predict, drift and the service all import it;
``tests/test_install.py`` keeps it importable without PyTorch.
"""
