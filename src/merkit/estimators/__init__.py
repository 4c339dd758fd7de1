"""scikit-learn classifiers and meta-estimators over named inputs: fusion, calibration, chunked
songs, aggregation, oversampling, DeepSMOTE, autoencoders, augmentation.
"""
