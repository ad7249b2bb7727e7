"""Training and the model registry: what the training set is (``dataset``), training runs and their
lifecycle (``runs``, ``localizer``), the frozen holdout and model versions (``registry``), and the
administrators' exports of the training data (``exports``)."""
