"""Iris ML platform: train scikit-learn classifiers, serve predictions, record everything in MLflow."""

__version__ = "0.1.0"
