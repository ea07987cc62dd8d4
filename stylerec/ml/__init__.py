"""Pure numpy/scikit-learn core of the personalization loop: no Django, no torch."""
