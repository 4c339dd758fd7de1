"""A trained model as a product: export, the model directory, its card, the shipped models,
prediction, relative placement and adaptation.
"""
