"""The answer core, free of PyTorch: what a model file says about itself (:mod:`.onnx_model`), how a photo
is decoded (:mod:`.images`) and preprocessed (:mod:`.preprocessing`), how probabilities become an answer
(:mod:`.answer`: top-k, "not sure", :mod:`.open_set`, :mod:`.safety`), the input statistics drift is
measured on (:mod:`.stats`), and the genus a folder name stands for (:mod:`.taxonomy`). Training,
evaluation, export, predict, drift and the service all import it; ``tests/test_install.py`` keeps it
importable without PyTorch. (Running a PyTorch model over a DataLoader is :mod:`mushroom.inference`.)
"""
