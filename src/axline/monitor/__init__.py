"""Equipment monitoring: anomaly detectors, alarm latching, remaining useful life, bearing vibration.

- ``detectors``: the abstract ``Detector`` base, one module per detector and the ``DETECTORS``
  registry (robust, pca, mset, iforest, autoencoder, changepoint); ``make_detector(name, **params)``;
  the model file in ``detectors.persistence``.
- ``alarms``: ``AlarmLatch`` (hysteresis: one excursion, one alarm).
- ``metrics``: SKAB point-wise metrics and the NAB changepoint score.
- ``rul``: remaining-useful-life models (``GBRUL``, ``CNNRUL``).
- ``vibration``: bearing features, envelope spectrum, ``BearingClassifier``.
- ``baseline``: the live per-asset baseline monitor.
- ``cli_detect``: ``axline detect``.
"""
